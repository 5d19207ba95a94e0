"""The admin console at /console, walked in headless Chromium (Debian's, through Playwright, as
test_sdk_flow.py does): the operator signs in through idledger's own OIDC, adds a user and
copies the password shown once, the user signs in with it through the SDK's Flask sample, the
operator finds the user by each column, suspends (the sign-in is refused) and reactivates them,
resets the password, edits the profile, works the tabs (logs, timeline and the as-of view,
roles, organizations, identities, MFA, access tokens), makes and revokes a one-time token,
sends a test email through the SMTP connector, edits the sign-in experience, erases one user
and deletes another. Every page is
photographed at 1280 and 375 px wide and checked with axe-core (no serious or critical
violations).

tests/api/console_e2e.rs starts idledger, provisions the operator and the sample app, and runs
this file with everything in environment variables:

    IDLEDGER_ENDPOINT              idledger's public endpoint
    ADMIN_USERNAME, ADMIN_PASSWORD an operator holding the console administrator role
    ADMIN_ID                       the operator's user id
    CAROL_ID                       a user with a role, an organization, an identity, a TOTP
                                   factor and two access tokens
    APP_ID, APP_SECRET, APP_PORT   the sample app (a Traditional app registered for that port)
    CONSOLE_SHOTS                  where the PNGs go (default <repo>/target/artefacts/console)
"""

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from test_sdk_flow import (
    CHROMIUM,
    CHROMIUM_ARGS,
    IDENTIFIER_INPUTS,
    PASSWORD_INPUTS,
    REPO,
    TIMEOUT_MS,
    assert_back_authenticated,
    browser as app_browser,
    describe,
    fill_experience,
    sample_app,
    start_sign_in,
)

ENDPOINT = os.environ.get("IDLEDGER_ENDPOINT", "").rstrip("/")
SHOTS = Path(os.environ.get("CONSOLE_SHOTS") or REPO / "target" / "artefacts" / "console")
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 375)
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

NEW_USER = {
    "username": "console_bob",
    "primaryEmail": "bob@example.com",
    "primaryPhone": "+81 80 1234 5678",
    "name": "Bob Console",
}


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run this through `cargo test --test api console_e2e`")
    return value


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/ensure-browser installs it")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: scripts/test runs `npm ci --prefix tests/e2e`")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as p:
        yield p


@contextmanager
def operator_browser(playwright):
    """The operator's Chromium. CSP is bypassed only so that axe-core can be injected; the
    console's own pages never need it."""
    profile = tempfile.mkdtemp(prefix="idledger-console-profile-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        locale="en-US",
        bypass_csp=True,
        viewport={"width": WIDTHS[0], "height": 900},
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ENDPOINT)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        page = context.pages[0] if context.pages else context.new_page()
        try:
            yield page
        except BaseException:
            page.screenshot(path=str(SHOTS / "failed.png"), full_page=True)
            raise
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


SHOT_NAMES = []


def check(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; the page is photographed at each width."""
    page.wait_for_load_state("load")
    assert page.url.startswith(ENDPOINT + "/console"), page.url
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations {bad}"
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    SHOT_NAMES.append(name)


def sign_in_to_console(page: Page) -> None:
    page.goto(ENDPOINT + "/console")
    page.wait_for_url(lambda url: "/sign-in" in url)
    page.locator(IDENTIFIER_INPUTS).first.fill(env("ADMIN_USERNAME"))
    page.locator(PASSWORD_INPUTS).first.fill(env("ADMIN_PASSWORD"))
    page.locator('button[type="submit"]').first.click()
    page.wait_for_url(lambda url: url.startswith(ENDPOINT + "/console/users"))


def search(page: Page, keyword: str) -> None:
    page.goto(ENDPOINT + "/console/users")
    page.get_by_label("Search users").fill(keyword)
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state("load")


def user_action(page: Page, label: str) -> None:
    """Opens the three-dot menu with the keyboard and presses one of its actions."""
    page.locator("details.menu summary").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name=label).click()
    page.wait_for_load_state("load")


def app_sign_in(playwright, name: str, username: str, password: str) -> str:
    """Signs in through the sample app in a fresh browser; returns where it ended."""
    with app_browser(playwright, name) as page:
        start_sign_in(page)
        try:
            fill_experience(page, username, password, name)
        except BaseException:
            # Still on idledger after submitting: the sign-in was refused.
            return "refused: " + describe(page)
        assert_back_authenticated(page)
        return "signed in"


def test_the_console_walk(playwright):
    with operator_browser(playwright) as page, sample_app("console"):
        # Keyboard: the first Tab reaches the skip link.
        sign_in_to_console(page)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        check(page, "users")

        # Add a user; the generated password is shown once and copied with one click.
        page.get_by_role("link", name="Add user").click()
        check(page, "user-new")
        for field, value in NEW_USER.items():
            page.locator(f"#{field}").fill(value)
        page.get_by_role("button", name="Create").click()
        page.wait_for_url(lambda url: url.endswith("/console/users"))
        expect(page.get_by_role("status").first).to_contain_text("created")
        shown = page.locator("#shown-password").input_value()
        assert len(shown) >= 8, shown
        page.get_by_role("button", name="Copy").click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == shown
        check(page, "user-created")
        user_id = page.locator(".meta code").first.inner_text()

        # The user signs in with the copied password through the sample app.
        assert app_sign_in(playwright, "console-bob", NEW_USER["username"], copied) == "signed in"

        # Found by each column of the table, and by id.
        for keyword in ["Bob Console", user_id, "console_bob", "8012345678", "bob@example.com"]:
            search(page, keyword)
            rows = page.locator("table.users tbody tr")
            assert rows.count() == 1, f"searching {keyword!r}: {rows.count()} rows"
            expect(rows.first).to_contain_text("Bob Console")
        # The latest sign-in is the one just made.
        expect(page.locator("table.users tbody tr").first).not_to_contain_text("Never")
        check(page, "users-search")
        search(page, "nobody-like-this")
        expect(page.get_by_text("No users found.")).to_be_visible()

        # Suspended: the sign-in is refused. Reactivated: it works again.
        page.goto(f"{ENDPOINT}/console/users/{user_id}")
        user_action(page, "Suspend user")
        expect(page.locator(".user-head .badge")).to_have_text("Suspended")
        check(page, "user-suspended")
        refused = app_sign_in(playwright, "console-bob-suspended", NEW_USER["username"], copied)
        assert refused.startswith("refused"), refused
        user_action(page, "Reactivate user")
        expect(page.locator(".user-head .badge")).to_have_count(0)

        # A reset shows a new password once; the old one stops working.
        user_action(page, "Reset password")
        expect(page.get_by_role("status").first).to_contain_text("reset")
        fresh = page.locator("#shown-password").input_value()
        assert fresh and fresh != copied
        check(page, "user-password-reset")
        page.goto(f"{ENDPOINT}/console/users/{user_id}")
        assert page.locator("#shown-password").count() == 0, "shown once only"
        assert app_sign_in(playwright, "console-bob-reset", NEW_USER["username"], fresh) == "signed in"

        # Details: name, custom data, profile claims.
        page.locator("#name").fill("Robert Console")
        page.locator("#customData").fill('{"plan": "gold"}')
        page.locator("#profile").fill('{"nickname": "Bobby"}')
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status").first).to_have_text("Saved.")
        expect(page.locator("h1")).to_have_text("Robert Console")
        assert '"gold"' in page.locator("#customData").input_value()
        check(page, "user-details")
        page.locator("#customData").fill("[1, 2]")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("alert")).to_contain_text("customData must be a JSON object")
        page.goto(f"{ENDPOINT}/console/users/{user_id}")

        # Japanese, chosen in the header.
        with page.expect_navigation():
            page.get_by_label("Language").select_option("ja")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert JAPANESE.search(page.locator("main").inner_text())
        check(page, "user-details-ja")
        page.goto(ENDPOINT + "/console/users")
        check(page, "users-ja")
        with page.expect_navigation():
            page.get_by_label("言語").select_option("en")
        assert page.locator("html").get_attribute("lang") == "en"

        # User logs, with a detail view: IP, user agent, raw data.
        page.goto(f"{ENDPOINT}/console/users/{user_id}/logs")
        check(page, "user-logs")
        page.locator("table.users tbody tr a").first.click()
        page.wait_for_url(lambda url: "/logs/" in url)
        expect(page.locator(".log-ip")).not_to_have_text("—")
        expect(page.locator(".log-ua")).to_contain_text("Chrome")
        expect(page.locator("pre.raw")).to_contain_text('"userAgent"')
        check(page, "user-log")

        # The timeline: every change with actor, IP, request id, before and after; and the
        # profile as of a moment before the rename.
        page.goto(f"{ENDPOINT}/console/users/{user_id}/timeline")
        renamed = page.locator("li.entry", has=page.locator("code", has_text="user.updated"))
        expect(renamed.first).to_contain_text("Robert Console")
        expect(renamed.first).to_contain_text("Bob Console")
        suspended = page.locator("li.entry", has=page.locator("code", has_text="user.suspended"))
        expect(suspended.first).to_contain_text(env("ADMIN_ID"))
        check(page, "user-timeline")
        reset = page.locator("li.entry", has=page.locator("code", has_text="user.password_set"))
        reset.first.locator("a").first.click()
        page.wait_for_url(lambda url: "asOf=" in url)
        expect(page.locator("dl.as-of-profile")).to_contain_text("Bob Console")
        expect(page.locator("h1")).to_have_text("Bob Console")
        check(page, "user-as-of")
        page.get_by_role("button", name="Show").click()
        page.wait_for_load_state("load")
        expect(page.locator("dl.as-of-profile")).to_contain_text("Bob Console")
        page.get_by_role("link", name="Now").click()
        expect(page.locator("h1")).to_have_text("Robert Console")

        # Carol's tabs: roles, organizations, identities, MFA, access tokens.
        carol = env("CAROL_ID")
        page.goto(f"{ENDPOINT}/console/users/{carol}/roles")
        expect(page.locator("main table")).to_contain_text("Support agent")
        check(page, "user-roles")
        page.get_by_role("link", name="Organizations").click()
        expect(page.locator("main table")).to_contain_text("Acme Corp")
        expect(page.locator("main table")).to_contain_text("billing-admin")
        check(page, "user-organizations")
        page.get_by_role("link", name="Identities").click()
        expect(page.locator("main table")).to_contain_text("gh-4242")
        check(page, "user-identities")
        page.get_by_role("link", name="Remove github").click()
        expect(page.get_by_role("alert")).to_contain_text("only way to sign in")
        check(page, "user-identity-remove")
        page.get_by_role("button", name="Remove").click()
        expect(page.get_by_role("status")).to_have_text("The identity was removed.")
        expect(page.get_by_text("Nothing here yet.")).to_be_visible()
        page.get_by_role("link", name="Multi-factor authentication").click()
        expect(page.locator("main table")).to_contain_text("Totp")
        check(page, "user-mfa")
        page.get_by_role("button", name="Delete Totp").click()
        expect(page.get_by_role("status")).to_have_text("The factor was deleted.")
        expect(page.get_by_text("No MFA factors.")).to_be_visible()
        page.get_by_role("link", name="Personal access tokens").click()
        check(page, "user-tokens")
        page.get_by_role("link", name="View ci-deploy").click()
        value = page.get_by_label("Token ci-deploy").input_value()
        assert len(value) >= 16, value
        page.get_by_role("button", name="Copy").click()
        assert page.evaluate("navigator.clipboard.readText()") == value
        check(page, "user-token-view")
        page.get_by_label("New name (laptop)").fill("old-laptop")
        page.get_by_role("button", name="Rename laptop").click()
        expect(page.locator("li.token strong")).to_have_text(["ci-deploy", "old-laptop"])
        page.get_by_role("button", name="Delete ci-deploy").click()
        expect(page.get_by_role("status")).to_have_text("The token was deleted.")
        expect(page.locator("li.token strong")).to_have_text(["old-laptop"])
        page.get_by_label("Token name").fill("release-bot")
        page.get_by_label("Expires").fill("2031-01-31")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_label("Token release-bot")).to_be_visible()
        expect(page.locator("li.token", has_text="release-bot")).to_contain_text("2031-01-31")

        # One-time tokens: create a magic link's token, copy its parameters, revoke it.
        page.get_by_role("link", name="One-time tokens").click()
        check(page, "one-time-tokens-empty")
        page.get_by_label("Email address").fill("magic@example.com")
        page.get_by_label("Lifetime (minutes)").fill("15")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_role("status")).to_contain_text("The token was created.")
        link = page.get_by_label("Magic-link parameters magic@example.com").input_value()
        assert link.startswith("one_time_token=") and "login_hint=magic%40example.com" in link
        page.get_by_role("button", name="Copy").click()
        assert page.evaluate("navigator.clipboard.readText()") == link
        expect(page.locator("li.ott .badge-status")).to_have_text("active")
        check(page, "one-time-tokens")
        page.get_by_role("button", name="Revoke magic@example.com").click()
        expect(page.get_by_role("status")).to_have_text("The token was revoked.")
        expect(page.locator("li.ott .badge-status")).to_have_text("revoked")

        # Connectors: the SMTP connector sends a test email.
        page.get_by_role("link", name="Connectors").click()
        expect(page.locator("li.connector")).to_contain_text("simple-mail-transfer-protocol")
        check(page, "connectors")
        page.get_by_label("Send a test email to").fill("ops@example.com")
        page.get_by_role("button", name="Send test email").click()
        expect(page.get_by_role("status")).to_have_text("The test email was sent.")

        # The sign-in experience.
        page.get_by_role("link", name="Sign-in experience").click()
        check(page, "sign-in-experience")
        page.get_by_label("Terms of use URL").fill("https://example.com/terms")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        expect(page.get_by_label("Terms of use URL")).to_have_value("https://example.com/terms")

        # Erasure, distinct from deletion, after its own warning.
        page.goto(f"{ENDPOINT}/console/users/{carol}")
        page.locator("details.menu summary").click()
        page.get_by_role("link", name="Erase personal data").click()
        expect(page.get_by_role("alert")).to_contain_text("cannot be undone")
        check(page, "user-erase")
        page.get_by_role("button", name="Erase").click()
        page.wait_for_url(lambda url: "/console/users?done=erased" in url)
        expect(page.get_by_role("status")).to_have_text("The user's personal data was erased.")

        # Delete, after a confirmation page.
        page.goto(f"{ENDPOINT}/console/users/{user_id}")
        page.locator("details.menu summary").click()
        page.get_by_role("link", name="Delete user").click()
        check(page, "user-delete")
        page.get_by_role("button", name="Delete").click()
        page.wait_for_url(lambda url: "/console/users?done=deleted" in url)
        expect(page.get_by_role("status")).to_have_text("The user was deleted.")
        search(page, "console_bob")
        expect(page.get_by_text("No users found.")).to_be_visible()

        # Sign out ends the console session and, once confirmed, the OIDC session.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(lambda url: "/oidc/session/end" in url)
        page.locator('button[type="submit"]').first.click()
        page.wait_for_url(lambda url: url.startswith(ENDPOINT + "/console") or "/sign-in" in url)
        page.goto(ENDPOINT + "/console/users")
        page.wait_for_url(lambda url: "/sign-in" in url)

    (SHOTS / "pages.txt").write_text("\n".join(SHOT_NAMES) + "\n")
