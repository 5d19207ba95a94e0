"""Logto's Python SDK, in its Flask sample, signing in, up and out against idledger in headless
Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser is downloaded).

tests/api/sdk_e2e.rs starts idledger, creates the application and the user, and runs this file
with everything in environment variables:

    IDLEDGER_ENDPOINT            idledger's public endpoint (issuer = <endpoint>/oidc)
    APP_ID, APP_SECRET           a Traditional app; its redirect URI is
                                 http://localhost:<APP_PORT>/callback and its post-logout
                                 redirect URI http://localhost:<APP_PORT>/
    APP_PORT                     where the sample app listens
    USER_USERNAME, USER_PASSWORD an existing user, and USER_NAME, their display name
    SIGNUP_USERNAME, SIGNUP_PASSWORD  a user the sign-up variant registers
    SCREENSHOT_DIR               optional; default <repo>/test-artifacts/screenshots

Every idledger page the browser shows is saved as a PNG in SCREENSHOT_DIR.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHROMIUM = "/usr/bin/chromium"
# This machine's network is closed: without these, Chromium keeps calling home and fails.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run this through `cargo test --test api sdk_e2e`")
    return value


ENDPOINT = os.environ.get("IDLEDGER_ENDPOINT", "").rstrip("/")
APP_PORT = os.environ.get("APP_PORT", "")
APP_BASE = f"http://localhost:{APP_PORT}"
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "test-artifacts" / "screenshots")
LOGS = SCREENSHOTS.parent


# --- the sample app -------------------------------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the sample app exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the sample app did not listen on {port}:\n{log.read_text()}")


def die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies (PR_SET_PDEATHSIG), so a killed test
    leaves no app holding the port."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@contextmanager
def sample_app(name: str, interaction_mode: str = ""):
    """Runs tests/e2e/sample_app.py on APP_PORT; its output goes to test-artifacts/."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", int(env("APP_PORT")))) == 0:
            pytest.fail(f"port {APP_PORT} is already taken; the sample app cannot use it")
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"sample-app-{name}.log"
    child_env = dict(
        os.environ,
        LOGTO_ENDPOINT=env("IDLEDGER_ENDPOINT"),
        LOGTO_APP_ID=env("APP_ID"),
        LOGTO_APP_SECRET=env("APP_SECRET"),
        PORT=env("APP_PORT"),
        INTERACTION_MODE=interaction_mode,
        PYTHONUNBUFFERED="1",
    )
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "sample_app.py")],
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        wait_for_port(int(APP_PORT), process, log)
        yield log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Shown by pytest only when the test failed.
        print(f"--- sample app log ({log}) ---\n{log.read_text()}")


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/ensure-browser installs it")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as p:
        yield p


@contextmanager
def browser(playwright, name: str, locale: str = "en-US"):
    """A fresh Chromium with an empty profile; `locale` sets navigator.language and
    Accept-Language. On failure, the page the browser was showing is saved as
    failed-<name>.png."""
    profile = tempfile.mkdtemp(prefix="idledger-e2e-profile-")
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        locale=locale,
        viewport={"width": 1000, "height": 800},
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        page = context.pages[0] if context.pages else context.new_page()
        # Every URL the main frame requested, redirect hops included.
        page.visited = []
        page.on(
            "request",
            lambda request: page.visited.append(request.url)
            if request.is_navigation_request() and request.frame == page.main_frame
            else None,
        )
        try:
            yield page
        except BaseException:
            try:
                shoot(page, f"failed-{name}")
            except Exception:
                pass
            raise
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def shoot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def on_idledger(url: str) -> bool:
    return url.startswith(ENDPOINT + "/")


def path_of(url: str) -> str:
    return urlparse(url).path


def body_text(page: Page) -> str:
    return page.locator("body").inner_text()


def describe(page: Page) -> str:
    try:
        text = body_text(page)
    except Exception as error:  # the page may be mid-navigation
        text = f"<unreadable: {error}>"
    return f"url: {page.url}\nvisited: {json.dumps(page.visited, indent=1)}\npage text:\n{text[:2000]}"


def home_says(page: Page) -> str:
    page.goto(APP_BASE + "/")
    return body_text(page).strip()


def assert_not_authenticated(page: Page) -> None:
    text = home_says(page)
    assert text.startswith("Not authenticated"), describe(page)


# --- idledger's pages -----------------------------------------------------------------------

IDENTIFIER_INPUTS = (
    'input[name="identifier"]:visible, input[name="username"]:visible, '
    'input[autocomplete="username"]:visible'
)
PASSWORD_INPUTS = 'input[type="password"]:visible'
SUBMIT_BUTTONS = 'button[type="submit"]:visible, input[type="submit"]:visible, form button:visible'


def fill_experience(page: Page, username: str, password: str, shot_prefix: str) -> list:
    """Fills idledger's sign-in or registration pages, one screen after another (a single form,
    or an identifier screen followed by a password screen), until the browser leaves idledger.
    Each screen is saved as a screenshot. Returns the idledger paths shown."""
    shown = []
    for step in range(1, 6):
        page.wait_for_load_state("load")
        if not on_idledger(page.url):
            return shown
        path = path_of(page.url)
        shown.append(path)
        slug = path.strip("/").replace("/", "-") or "root"
        shoot(page, f"{shot_prefix}-{step}-{slug}")
        identifier = page.locator(IDENTIFIER_INPUTS)
        passwords = page.locator(PASSWORD_INPUTS)
        if identifier.count() == 0 and passwords.count() == 0:
            pytest.fail(f"idledger page {path} has no identifier or password field\n{describe(page)}")
        if identifier.count() > 0:
            identifier.first.fill(username)
        for index in range(passwords.count()):
            passwords.nth(index).fill(password)
        before = page.url
        submit = page.locator(SUBMIT_BUTTONS)
        if submit.count() == 0:
            pytest.fail(f"idledger page {path} has no submit button\n{describe(page)}")
        submit.first.click()
        try:
            page.wait_for_url(lambda url: url != before, timeout=TIMEOUT_MS)
        except Exception:
            shoot(page, f"{shot_prefix}-{step}-{slug}-stuck")
            pytest.fail(f"submitting {path} led nowhere\n{describe(page)}")
    pytest.fail(f"still on idledger after 5 screens\n{describe(page)}")


def shoot_html(page: Page, html: str, name: str) -> Path:
    """A screenshot of a page's HTML, rendered without its scripts in a side page that may
    load nothing: for pages that leave too fast to be photographed (idledger's sign-out
    confirmation submits itself as soon as it is parsed)."""
    side = page.context.new_page()
    try:
        side.route("**/*", lambda route: route.abort())
        side.set_content(re.sub(r"(?is)<script\b.*?</script>", "", html))
        path = SCREENSHOTS / f"{name}.png"
        side.screenshot(path=str(path), full_page=True)
        return path
    finally:
        side.close()


@contextmanager
def documents_of(page: Page, path: str):
    """Collects the HTML of every idledger document at `path` the page receives, as received.
    (Playwright's `route` skips requests reached through a redirect, as the SDK's sign-out is;
    the browser's own Fetch domain does not.)"""
    import base64

    cdp = page.context.new_cdp_session(page)
    documents = []

    def paused(event):
        url, status = event["request"]["url"], event.get("responseStatusCode")
        if status == 200 and on_idledger(url) and path_of(url) == path:
            body = cdp.send("Fetch.getResponseBody", {"requestId": event["requestId"]})
            raw = body["body"]
            documents.append(base64.b64decode(raw).decode() if body["base64Encoded"] else raw)
        cdp.send("Fetch.continueResponse", {"requestId": event["requestId"]})

    cdp.on("Fetch.requestPaused", paused)
    pattern = {"urlPattern": f"{ENDPOINT}{path}*", "resourceType": "Document", "requestStage": "Response"}
    cdp.send("Fetch.enable", {"patterns": [pattern]})
    try:
        yield documents
    finally:
        cdp.send("Fetch.disable")
        cdp.detach()


def sign_out(page: Page, shot: str) -> None:
    """Clicks the app's sign-out link: the SDK sends the browser to idledger's end-session
    endpoint, whose confirmation page submits itself; idledger ends its session and returns to
    the app. The confirmation page leaves too fast to be photographed in place, so the HTML the
    browser received is photographed afterwards."""
    try:
        with documents_of(page, "/oidc/session/end") as confirmation, page.expect_response(
            lambda r: on_idledger(r.url) and path_of(r.url) == "/oidc/session/end/confirm",
            timeout=TIMEOUT_MS,
        ) as confirmed:
            page.get_by_role("link", name="Sign out").click()
            page.wait_for_url(APP_BASE + "/", timeout=TIMEOUT_MS)
        page.wait_for_load_state("load")
    except Exception as error:
        pytest.fail(f"sign-out did not go through idledger back to the app: {error}\n{describe(page)}")
    assert len(confirmation) == 1, f"end-session pages shown: {len(confirmation)}\n{describe(page)}"
    shoot_html(page, confirmation[0], shot)
    response = confirmed.value
    assert response.request.method == "POST", response.request
    assert response.status in (302, 303), f"confirmation answered {response.status}"


def claims_of(page: Page) -> dict:
    response = page.goto(APP_BASE + "/claims")
    assert response is not None and response.status == 200, describe(page)
    return json.loads(body_text(page))


def start_sign_in(page: Page) -> None:
    assert_not_authenticated(page)
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(lambda url: on_idledger(url), timeout=TIMEOUT_MS)
    page.wait_for_load_state("load")


def assert_back_authenticated(page: Page) -> None:
    assert path_of(page.url) == "/", f"not back on the app's home\n{describe(page)}"
    assert page.url.startswith(APP_BASE), describe(page)
    assert body_text(page).strip().startswith("Authenticated"), describe(page)


def assert_identity(claims: dict, username: str) -> None:
    assert claims.get("sub"), claims
    assert claims["iss"] == f"{ENDPOINT}/oidc", claims
    assert claims["aud"] == env("APP_ID"), claims
    assert claims.get("username") == username, claims
    assert "name" in claims or "username" in claims, claims


# --- the variants ---------------------------------------------------------------------------


def test_sign_in_and_out_with_an_existing_user(playwright):
    username, password = env("USER_USERNAME"), env("USER_PASSWORD")
    with sample_app("sign-in"), browser(playwright, "sign-in") as page:
        start_sign_in(page)
        assert path_of(page.url) == "/sign-in", f"expected idledger's /sign-in\n{describe(page)}"
        shown = fill_experience(page, username, password, "en-sign-in")
        assert_back_authenticated(page)
        # The code went to the app's registered callback, which the SDK handled.
        assert any(path_of(u) == "/callback" for u in page.visited), describe(page)
        claims = claims_of(page)
        assert_identity(claims, username)
        assert claims.get("name") == env("USER_NAME"), claims
        print(f"signed in through {shown}; claims: {json.dumps(claims)}")

        page.goto(APP_BASE + "/")
        sign_out(page, "en-sign-out-confirmation")
        assert body_text(page).strip().startswith("Not authenticated"), describe(page)
        # idledger's session ended too: signing in again asks for credentials.
        start_sign_in(page)
        assert path_of(page.url) == "/sign-in", f"idledger still had a session\n{describe(page)}"


def test_sign_up_registers_a_new_user(playwright):
    username, password = env("SIGNUP_USERNAME"), env("SIGNUP_PASSWORD")
    with sample_app("sign-up", interaction_mode="signUp"), browser(playwright, "sign-up") as page:
        start_sign_in(page)
        assert path_of(page.url) == "/register", f"expected idledger's /register\n{describe(page)}"
        shown = fill_experience(page, username, password, "en-register")
        assert_back_authenticated(page)
        claims = claims_of(page)
        assert_identity(claims, username)
        print(f"registered through {shown}; claims: {json.dumps(claims)}")
        page.goto(APP_BASE + "/")
        sign_out(page, "en-register-sign-out-confirmation")
        assert body_text(page).strip().startswith("Not authenticated"), describe(page)


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def test_pages_speak_japanese_to_a_japanese_browser(playwright):
    username, password = env("USER_USERNAME"), env("USER_PASSWORD")
    with sample_app("ja"), browser(playwright, "ja", locale="ja") as page:
        start_sign_in(page)
        assert path_of(page.url) == "/sign-in", describe(page)
        text = body_text(page)
        assert JAPANESE.search(text), f"no Japanese on the sign-in page\n{describe(page)}"
        expected = ["サインイン", "パスワード", "ユーザー名"]
        assert any(word in text for word in expected), (
            f"none of {expected} on the Japanese sign-in page\n{describe(page)}"
        )
        shown = fill_experience(page, username, password, "ja-sign-in")
        assert_back_authenticated(page)
        assert_identity(claims_of(page), username)
        print(f"signed in (ja) through {shown}")
        page.goto(APP_BASE + "/")
        sign_out(page, "ja-sign-out-confirmation")
        assert body_text(page).strip().startswith("Not authenticated"), describe(page)

    # The registration page in Japanese, shown but not submitted.
    with sample_app("ja-sign-up", interaction_mode="signUp"), browser(
        playwright, "ja-sign-up", locale="ja"
    ) as page:
        start_sign_in(page)
        assert path_of(page.url) == "/register", describe(page)
        shoot(page, "ja-register")
        assert JAPANESE.search(body_text(page)), f"no Japanese on the register page\n{describe(page)}"
