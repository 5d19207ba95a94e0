"""Logto's Python SDK, in its Flask sample, with email verification codes against idledger in
headless Chromium: register by a code read from a real SMTP server, sign out, sign in by a code,
then reset the password by a code and sign in with the new one.

tests/api/email_e2e.rs starts idledger, the SMTP server (tests/smtp/smtp_server.py) and the
Email connector, configures email sign-up and sign-in, and runs this file with the variables of
test_sdk_flow.py (IDLEDGER_ENDPOINT, APP_ID, APP_SECRET, APP_PORT, SCREENSHOT_DIR) plus:

    MAIL_DIR            where the SMTP server writes each message it accepts (<n>.json)
    USER_EMAIL          the address that registers
    USER_PASSWORD       the password it registers with
    NEW_PASSWORD        the password the reset sets
"""

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

import test_sdk_flow as sdk
from test_sdk_flow import playwright  # noqa: F401  (the module's browser fixture)

TIMEOUT_S = 30


def received(recipient: str) -> list:
    directory = Path(sdk.env("MAIL_DIR"))
    messages = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    return [m for m in messages if recipient in m["rcpt_tos"]]


def next_code(recipient: str, seen: int) -> str:
    """The code of the first message to `recipient` after the `seen` earlier ones."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        messages = received(recipient)
        if len(messages) > seen:
            match = re.search(r"\b(\d{6})\b", messages[seen]["body"])
            assert match, messages[seen]
            return match.group(1)
        time.sleep(0.2)
    pytest.fail(f"no mail to {recipient} within {TIMEOUT_S} s")


def submit(page: Page, shot: str) -> None:
    """Submits the page's form and waits for whatever the post leads to."""
    sdk.shoot(page, shot)
    with page.expect_navigation(timeout=sdk.TIMEOUT_MS):
        page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state("load")


def request_code(page: Page, email: str, shot: str) -> None:
    page.locator('input[name="email"]').fill(email)
    submit(page, shot)
    assert page.locator('input[name="code"]').count() == 1, sdk.describe(page)


def test_register_sign_in_and_reset_the_password_by_email_code(playwright):  # noqa: F811
    email, password, new_password = (
        sdk.env("USER_EMAIL"),
        sdk.env("USER_PASSWORD"),
        sdk.env("NEW_PASSWORD"),
    )

    # Registration: the sample asks for the sign-up page, which asks for the email first.
    with sdk.sample_app("email-sign-up", interaction_mode="signUp"), sdk.browser(
        playwright, "email-sign-up"
    ) as page:
        sdk.start_sign_in(page)
        assert sdk.path_of(page.url) == "/register/email", sdk.describe(page)
        request_code(page, email, "email-register-1-email")
        page.locator('input[name="code"]').fill(next_code(email, 0))
        page.locator('input[name="password"]').fill(password)
        page.locator('input[name="password_confirm"]').fill(password)
        submit(page, "email-register-2-code")
        sdk.assert_back_authenticated(page)
        claims = sdk.claims_of(page)
        assert claims.get("sub"), claims
        page.goto(sdk.APP_BASE + "/")
        sdk.sign_out(page, "email-register-sign-out")
        assert sdk.body_text(page).strip().startswith("Not authenticated"), sdk.describe(page)

    # Sign-in by code, from the sign-in page's link.
    with sdk.sample_app("email-sign-in"), sdk.browser(playwright, "email-sign-in") as page:
        sdk.start_sign_in(page)
        assert sdk.path_of(page.url) == "/sign-in", sdk.describe(page)
        page.get_by_role("link", name="Sign in with an email code").click()
        page.wait_for_load_state("load")
        assert sdk.path_of(page.url) == "/sign-in/email", sdk.describe(page)
        request_code(page, email, "email-sign-in-1-email")
        page.locator('input[name="code"]').fill(next_code(email, 1))
        submit(page, "email-sign-in-2-code")
        sdk.assert_back_authenticated(page)
        assert sdk.claims_of(page)["sub"] == claims["sub"]
        page.goto(sdk.APP_BASE + "/")
        sdk.sign_out(page, "email-sign-in-sign-out")

    # A password reset, then a sign-in with the new password.
    with sdk.sample_app("email-reset"), sdk.browser(playwright, "email-reset") as page:
        sdk.start_sign_in(page)
        page.get_by_role("link", name="Forgot your password?").click()
        page.wait_for_load_state("load")
        assert sdk.path_of(page.url) == "/forgot-password", sdk.describe(page)
        request_code(page, email, "email-reset-1-email")
        page.locator('input[name="code"]').fill(next_code(email, 2))
        page.locator('input[name="password"]').fill(new_password)
        page.locator('input[name="password_confirm"]').fill(new_password)
        submit(page, "email-reset-2-code")
        assert "reset" in sdk.body_text(page), sdk.describe(page)
        page.get_by_role("link", name="Sign in").first.click()
        page.wait_for_load_state("load")
        assert sdk.path_of(page.url) == "/sign-in", sdk.describe(page)
        shown = sdk.fill_experience(page, email, new_password, "email-reset-3-sign-in")
        sdk.assert_back_authenticated(page)
        assert sdk.claims_of(page)["sub"] == claims["sub"]
        print(f"signed in with the new password through {shown}")
