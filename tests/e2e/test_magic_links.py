"""Magic links through Logto's Python SDK in its Flask sample, in headless Chromium: an invitation
email's link (`https://<app>/landing-page?type=...&token=...&email=...`) lands on the sample
app, which starts a sign-in carrying the token, and the invitee ends up registered and signed in
although public registration is off; an organization invitation does the same and makes them a
member. Uses the harness of test_sdk_flow.py.

tests/api/magic_links.rs starts idledger with registration closed (sign-in mode `SignIn`),
creates the application and the tokens, runs this file, then checks the users and memberships:

    IDLEDGER_ENDPOINT, APP_ID, APP_SECRET, APP_PORT   as for test_sdk_flow.py
    INVITE_TOKEN, INVITE_EMAIL      an invitation for a new user
    ORG_INVITE_TOKEN, ORG_INVITE_EMAIL  an invitation into an organization, for a new user
    NEW_PASSWORD                    the password the invitees choose
    SCREENSHOT_DIR                  where every idledger page shown is saved as a PNG
"""

from urllib.parse import urlencode

from test_sdk_flow import (
    APP_BASE,
    assert_back_authenticated,
    assert_identity,
    body_text,
    browser,
    claims_of,
    describe,
    env,
    fill_experience,
    on_idledger,
    path_of,
    playwright,  # noqa: F401 (the fixture)
    sample_app,
    shoot,
    start_sign_in,
)


def landing_page(kind: str, token: str, email: str) -> str:
    return f"{APP_BASE}/landing-page?" + urlencode({"type": kind, "token": token, "email": email})


def follow_invitation(page, kind: str, token: str, email: str) -> None:
    page.goto(landing_page(kind, token, email))
    page.wait_for_url(lambda url: on_idledger(url))
    page.wait_for_load_state("load")


def test_an_invitation_registers_the_invitee_although_registration_is_closed(playwright):
    token, email = env("INVITE_TOKEN"), env("INVITE_EMAIL")
    username, password = "invitee", env("NEW_PASSWORD")
    with sample_app("invitation", interaction_mode="signUp"), browser(playwright, "invitation") as page:
        # Public registration is off: the app's sign-up leads to a refusal.
        start_sign_in(page)
        assert path_of(page.url) == "/register", describe(page)
        shoot(page, "invitation-0-register-refused")
        assert "not enabled" in body_text(page), describe(page)

        follow_invitation(page, "registrationInvitation", token, email)
        assert path_of(page.url) == "/one-time-token", describe(page)
        assert "Complete your account" in body_text(page), describe(page)
        shown = fill_experience(page, username, password, "invitation")
        assert_back_authenticated(page)
        assert any(path_of(u) == "/callback" for u in page.visited), describe(page)
        claims = claims_of(page)
        assert_identity(claims, username)
        print(f"registered by invitation through {shown}; claims: {claims}")

    # The link was used: another browser following it is told so, and what to do.
    with sample_app("invitation-again"), browser(playwright, "invitation-again") as page:
        follow_invitation(page, "registrationInvitation", token, email)
        assert path_of(page.url) == "/one-time-token", describe(page)
        shoot(page, "invitation-used")
        text = body_text(page)
        assert "This link has already been used." in text, describe(page)
        assert "Each link works once." in text, describe(page)


def test_an_organization_invitation_registers_a_member(playwright):
    token, email = env("ORG_INVITE_TOKEN"), env("ORG_INVITE_EMAIL")
    username, password = "new_member", env("NEW_PASSWORD")
    with sample_app("organization"), browser(playwright, "organization", locale="ja") as page:
        follow_invitation(page, "organizationMemberInvitation", token, email)
        assert path_of(page.url) == "/one-time-token", describe(page)
        assert "アカウント情報の入力" in body_text(page), describe(page)
        shown = fill_experience(page, username, password, "organization-ja")
        assert_back_authenticated(page)
        assert_identity(claims_of(page), username)
        print(f"joined by invitation through {shown}")
        page.goto(APP_BASE + "/")
        assert body_text(page).strip().startswith("Authenticated"), describe(page)
