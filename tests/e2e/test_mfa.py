"""Second factors on idledger's hosted pages, in headless Chromium, with Logto's Python SDK in its
Flask sample as the application: a user enrols a TOTP by scanning the QR code the enrolment page
shows (decoded from the image, as an authenticator app reads it), saves the backup codes, signs
out; then the password leads to the TOTP step, where a wrong code is refused on the page and the
right one signs in; a magic link (a one-time token) is a first factor like any other and is
asked for the second too, which a backup code answers; the same backup code is refused the next
time. Uses the harness of test_sdk_flow.py.

tests/api/mfa_browser.rs starts idledger with TOTP and backup codes mandatory, creates the
application, the user and the one-time token, runs this file, then checks the log:

    IDLEDGER_ENDPOINT, APP_ID, APP_SECRET, APP_PORT   as for test_sdk_flow.py
    USER_USERNAME, USER_PASSWORD   a user without second factors
    MAGIC_TOKEN, MAGIC_EMAIL       a one-time token for the user's email
    SCREENSHOT_DIR                 where every idledger page shown is saved as a PNG
"""

import base64
import hashlib
import hmac
import io
import struct
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import zxingcpp
from PIL import Image

from test_sdk_flow import (
    APP_BASE,
    IDENTIFIER_INPUTS,
    PASSWORD_INPUTS,
    TIMEOUT_MS,
    assert_back_authenticated,
    assert_identity,
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
    sign_out,
    start_sign_in,
)

STEP_SECONDS = 30


def totp(secret: str, at: float) -> str:
    """RFC 6238's code of `secret` (base32) for the time step of `at` (Unix seconds):
    HMAC-SHA-1 over the step counter, RFC 4226's dynamic truncation, six digits."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // STEP_SECONDS), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def wrong_code(secret: str) -> str:
    """The code of a time step a day away: well formed, but none of the codes the server's
    ±1-step window accepts now (another day's step is tried on the rare collision)."""
    now = time.time()
    window = {totp(secret, now + step * STEP_SECONDS) for step in (-2, -1, 0, 1, 2)}
    for days in range(1, 10):
        candidate = totp(secret, now - days * 86_400)
        if candidate not in window:
            return candidate
    pytest.fail("no code outside the window")


def qr_secret(page) -> str:
    """Reads the QR code the enrolment page shows: the image the browser rendered (its data URL,
    decoded to pixels) holds an otpauth:// URI whose `secret` is the TOTP key."""
    image = page.locator("img#totp-qr")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0"), describe(page)
    source = image.get_attribute("src") or ""
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix), f"the QR code is no PNG data URL: {source[:60]}"
    png = Image.open(io.BytesIO(base64.b64decode(source[len(prefix) :])))
    found = zxingcpp.read_barcodes(png)
    assert len(found) == 1, f"QR codes found in the image: {len(found)}"
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode, found[0].format
    uri = urlparse(found[0].text)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp"), found[0].text
    query = parse_qs(uri.query)
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"], found[0].text
    assert query.get("digits", ["6"]) == ["6"], found[0].text
    assert query.get("period", ["30"]) == ["30"], found[0].text
    return query["secret"][0]


def wait_for_path(page, path: str) -> None:
    try:
        page.wait_for_url(lambda url: on_idledger(url) and path_of(url) == path, timeout=TIMEOUT_MS)
    except Exception:
        pytest.fail(f"expected idledger's {path}\n{describe(page)}")
    page.wait_for_load_state("load")


def submit_password(page, shot: str) -> None:
    """Fills idledger's sign-in page with the user's name and password and submits it."""
    assert path_of(page.url) == "/sign-in", describe(page)
    page.locator(IDENTIFIER_INPUTS).first.fill(env("USER_USERNAME"))
    page.locator(PASSWORD_INPUTS).first.fill(env("USER_PASSWORD"))
    shoot(page, shot)
    page.locator("form:has(input[type=password]) button[type=submit]").first.click()


def submit_code(page, field: str, code: str) -> None:
    """Types `code` into the form holding `field` (#code: the TOTP, #backup_code: a backup code)
    and submits that form."""
    form = page.locator(f"form:has({field})")
    form.locator(field).fill(code)
    # A refusal answers at the same URL: waiting for the navigation, not for a new URL.
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.wait_for_load_state("load")


def assert_refused_here(page, path: str, shot: str) -> str:
    """The page stayed at `path` and shows its refusal; the refusal's text."""
    assert on_idledger(page.url) and path_of(page.url) == path, describe(page)
    alert = page.get_by_role("alert")
    assert alert.is_visible(), f"no visible refusal\n{describe(page)}"
    shoot(page, shot)
    return alert.inner_text().strip()


def back_at_the_app(page) -> None:
    try:
        page.wait_for_url(lambda url: url.startswith(APP_BASE), timeout=TIMEOUT_MS)
    except Exception:
        pytest.fail(f"did not return to the app\n{describe(page)}")
    page.wait_for_load_state("load")
    assert_back_authenticated(page)
    assert_identity(claims_of(page), env("USER_USERNAME"))
    page.goto(APP_BASE + "/")


def test_totp_enrolled_from_the_qr_code_is_asked_after_every_first_factor(playwright):
    with sample_app("mfa"), browser(playwright, "mfa") as page:
        # Enrolment: the password, then the mandatory TOTP, scanned from the QR code.
        start_sign_in(page)
        submit_password(page, "mfa-1-sign-in")
        wait_for_path(page, "/mfa-binding/totp")
        shoot(page, "mfa-2-totp-binding")
        secret = qr_secret(page)
        assert page.locator("#secret").inner_text().strip() == secret, "the key beside the QR code"
        enrolled_at = time.time()
        submit_code(page, "#code", totp(secret, enrolled_at))

        # The backup codes, shown once; saving them finishes the sign-in at the app.
        wait_for_path(page, "/mfa-binding/backup-code")
        shoot(page, "mfa-3-backup-codes")
        codes = [c.strip() for c in page.locator("#backup-codes code").all_inner_texts()]
        assert len(codes) == 10 and len(set(codes)) == 10, codes
        page.locator("form button[type=submit]").click()
        back_at_the_app(page)
        sign_out(page, "mfa-4-sign-out")

        # The password again: the TOTP is asked, a wrong code is refused on the page.
        start_sign_in(page)
        submit_password(page, "mfa-5-sign-in")
        wait_for_path(page, "/mfa-verification")
        shoot(page, "mfa-6-verification")
        submit_code(page, "#code", wrong_code(secret))
        refusal = assert_refused_here(page, "/mfa-verification", "mfa-7-wrong-code")
        assert "code" in refusal.lower(), refusal
        # The enrolment spent its time step's code (each code counts once), so the right code
        # now is the next step's, which the ±1-step window accepts.
        submit_code(page, "#code", totp(secret, max(time.time(), enrolled_at) + STEP_SECONDS))
        back_at_the_app(page)
        sign_out(page, "mfa-8-sign-out")

        # A magic link (the sample's landing page, carrying a one-time token) is a first factor
        # too: the second is still asked, and a backup code answers it.
        link = f"{APP_BASE}/landing-page?" + urlencode(
            {"type": "magicLink", "token": env("MAGIC_TOKEN"), "email": env("MAGIC_EMAIL")}
        )
        page.goto(link)
        wait_for_path(page, "/mfa-verification")
        shoot(page, "mfa-9-magic-link-verification")
        assert any(path_of(u) == "/one-time-token" for u in page.visited), describe(page)
        submit_code(page, "#backup_code", codes[0])
        back_at_the_app(page)
        sign_out(page, "mfa-10-sign-out")

        # The same backup code does not work twice; another one does.
        start_sign_in(page)
        submit_password(page, "mfa-11-sign-in")
        wait_for_path(page, "/mfa-verification")
        submit_code(page, "#backup_code", codes[0])
        assert_refused_here(page, "/mfa-verification", "mfa-12-used-backup-code")
        submit_code(page, "#backup_code", codes[1])
        back_at_the_app(page)
        print(f"walk done; the wrong code's refusal read: {refusal!r}")
        assert body_text(page).strip().startswith("Authenticated"), describe(page)
