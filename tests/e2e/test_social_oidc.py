"""Social sign-in through the OIDC connector, in Logto's Python SDK Flask sample driven by
headless Chromium: the app sends the browser to idledger's sign-in page, "Continue with
Upstream" goes to an independent OpenID provider (oidc-provider, tests/upstream/provider.mjs),
whose own sign-in and consent pages send it back to idledger, which signs the person in (a new
user the first time, the same one the next) and returns to the app. Uses the harness of
test_sdk_flow.py.

tests/api/social_oidc_provider.rs starts idledger and the provider, creates the application and
the connector, runs this file, then checks the user idledger created:

    IDLEDGER_ENDPOINT, APP_ID, APP_SECRET, APP_PORT   as for test_sdk_flow.py
    UPSTREAM_ISSUER     the provider's issuer (on another loopback address than idledger's,
                        so that the browser keeps their cookies apart, as across real sites)
    UPSTREAM_LOGIN      the login typed at the provider (it becomes the subject)
    SCREENSHOT_DIR      where the pages shown are saved as PNGs
"""

from test_sdk_flow import (
    APP_BASE,
    assert_back_authenticated,
    body_text,
    browser,
    claims_of,
    describe,
    env,
    on_idledger,
    path_of,
    playwright,  # noqa: F401 (the fixture)
    sample_app,
    shoot,
    start_sign_in,
)


def sign_in_upstream(page, shot: str) -> None:
    """From idledger's sign-in page: the connector's button, then the provider's pages."""
    assert path_of(page.url) == "/sign-in", describe(page)
    shoot(page, f"{shot}-1-sign-in")
    page.get_by_role("button", name="Continue with Upstream").click()
    page.wait_for_url(lambda url: url.startswith(env("UPSTREAM_ISSUER")))
    page.wait_for_load_state("load")
    shoot(page, f"{shot}-2-upstream-login")
    page.locator("input[name=login]").fill(env("UPSTREAM_LOGIN"))
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.wait_for_url(lambda url: "/interaction/" in url and url.startswith(env("UPSTREAM_ISSUER")))
    page.wait_for_load_state("load")
    shoot(page, f"{shot}-3-upstream-consent")
    assert "Authorize" in body_text(page) or "Continue" in body_text(page), describe(page)
    page.get_by_role("button", name="Continue").click()
    # Back through idledger's callback to the application.
    page.wait_for_url(lambda url: url.startswith(APP_BASE + "/") and path_of(url) == "/")
    page.wait_for_load_state("load")
    assert any(on_idledger(u) and "/callback/upstream" in u for u in page.visited), describe(page)


def test_continue_with_the_provider_signs_in_and_comes_back(playwright):
    with sample_app("social"), browser(playwright, "social") as page:
        start_sign_in(page)
        sign_in_upstream(page, "social-first")
        assert_back_authenticated(page)
        first = claims_of(page)
        assert first.get("sub"), first
        assert first["name"] == f"{env('UPSTREAM_LOGIN')} upstream", first
        print(f"first social sign-in registered {first['sub']}")

    # A fresh browser, the same upstream person: the same user, signed in again.
    with sample_app("social-again"), browser(playwright, "social-again") as page:
        start_sign_in(page)
        sign_in_upstream(page, "social-again")
        assert_back_authenticated(page)
        again = claims_of(page)
        assert again["sub"] == first["sub"], (first, again)
        page.goto(APP_BASE + "/")
        assert body_text(page).strip().startswith("Authenticated"), describe(page)
