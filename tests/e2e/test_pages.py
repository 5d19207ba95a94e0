"""Every hosted page idledger renders, photographed in English and Japanese in headless Chromium
(Debian's /usr/bin/chromium driven by Playwright, as test_sdk_flow.py does): sign-in, register,
consent, error, sign-out confirmation and signed-out.

tests/api/pages_e2e.rs starts idledger, creates a third-party application and a user, and runs
this file with everything in environment variables:

    IDLEDGER_ENDPOINT            idledger's public endpoint (issuer = <endpoint>/oidc)
    APP_ID, APP_REDIRECT_URI     a third-party Traditional app and its registered redirect URI
    USER_USERNAME, USER_PASSWORD an existing user
    SCREENSHOT_DIR               optional; default <repo>/test-artifacts/screenshots

The PNGs go to SCREENSHOT_DIR/<lang>-<page>.png.
"""

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest
from playwright.sync_api import Page, sync_playwright

from test_sdk_flow import CHROMIUM, CHROMIUM_ARGS, REPO, TIMEOUT_MS

ENDPOINT = os.environ.get("IDLEDGER_ENDPOINT", "").rstrip("/")
PAGES = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "test-artifacts" / "screenshots" / "pages")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
LANGUAGES = [("en", "en-US"), ("ja", "ja")]


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run this through `cargo test --test api pages_e2e`")
    return value


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/ensure-browser installs it")
    PAGES.mkdir(parents=True, exist_ok=True)
    for old in PAGES.glob("*.png"):
        old.unlink()
    with sync_playwright() as p:
        yield p


@contextmanager
def browser(playwright, locale: str, javascript: bool = True):
    """A fresh Chromium with an empty profile speaking `locale` (navigator.language and
    Accept-Language)."""
    profile = tempfile.mkdtemp(prefix="idledger-pages-profile-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        locale=locale,
        java_script_enabled=javascript,
        viewport={"width": 1000, "height": 800},
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def shoot(page: Page, lang: str, name: str, title_words: list) -> Path:
    """Checks the page is idledger's, in `lang`, showing one of `title_words`; saves it."""
    page.wait_for_load_state("load")
    assert page.url.startswith(ENDPOINT + "/"), page.url
    assert page.locator("html").get_attribute("lang") == lang, f"{name}: {page.url}"
    text = page.locator("body").inner_text()
    assert any(word in text for word in title_words), f"{name} ({lang}) shows none of {title_words}:\n{text}"
    if lang == "ja":
        assert JAPANESE.search(text), f"no Japanese on {name}:\n{text}"
    path = PAGES / f"{lang}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, path
    return path


def authorize_url(lang: str, **extra) -> str:
    query = {
        "client_id": env("APP_ID"),
        "redirect_uri": env("APP_REDIRECT_URI"),
        "response_type": "code",
        "scope": "openid profile email offline_access",
        "prompt": "consent",
        "state": "pages",
        "ui_locales": lang,
        **extra,
    }
    return f"{ENDPOINT}/oidc/auth?{urlencode(query)}"


@pytest.mark.parametrize("lang,locale", LANGUAGES)
def test_sign_in_consent_register_and_error_pages(playwright, lang, locale):
    with browser(playwright, locale) as page:
        page.goto(authorize_url(lang, first_screen="register"))
        assert urlparse(page.url).path == "/register", page.url
        shoot(page, lang, "register", ["Create your account", "アカウントを作成"])

        page.goto(authorize_url(lang))
        assert urlparse(page.url).path == "/sign-in", page.url
        shoot(page, lang, "sign-in", ["Sign in", "サインイン"])
        page.locator('input[name="identifier"]').fill(env("USER_USERNAME"))
        page.locator('input[name="password"]').fill(env("USER_PASSWORD"))
        page.locator('button[type="submit"]').click()
        page.wait_for_url(lambda url: urlparse(url).path == "/consent")
        shoot(page, lang, "consent", ["Authorize access", "アクセスの許可"])

        page.goto(f"{ENDPOINT}/error?{urlencode({'code': 'session.not_found', 'ui_locales': lang})}")
        shoot(page, lang, "error", ["Something went wrong", "エラーが発生しました"])


@pytest.mark.parametrize("lang,locale", LANGUAGES)
def test_sign_out_pages(playwright, lang, locale):
    # Without JavaScript the confirmation stays on screen (with it, it submits itself at once).
    with browser(playwright, locale, javascript=False) as page:
        page.goto(f"{ENDPOINT}/oidc/session/end?{urlencode({'ui_locales': lang})}")
        shoot(page, lang, "sign-out-confirmation", ["Signing out", "サインアウトしています"])
        page.locator('button[type="submit"]').click()
        page.wait_for_url(lambda url: urlparse(url).path == "/oidc/session/end/confirm")
        shoot(page, lang, "signed-out", ["Signed out", "サインアウトしました"])
