"""The audit report written by `replay report`, photographed whole in headless Chromium
(Debian's /usr/bin/chromium driven by Playwright, as test_sdk_flow.py does).

tests/api/audit.rs writes the report for its test data and runs this file with:

    REPORT_HTML   the report file
    SCREENSHOT    where the full-page PNG goes
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from test_sdk_flow import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run this through `cargo test --test api audit::`")
    return value


def test_the_report_renders_its_charts_without_any_network():
    report = Path(env("REPORT_HTML")).resolve()
    screenshot = Path(env("SCREENSHOT"))
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri())
        # The charts are server-rendered inline SVG, and they have a size on screen.
        charts = page.locator("svg")
        assert charts.count() >= 1
        box = charts.first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    # Nothing but the file itself was loaded: no CDN, no font, no script.
    assert requests == [report.as_uri()], requests
