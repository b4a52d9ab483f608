"""Headless Chromium for the browser tests (Selenium, Debian's packages only).

The browser is Debian's ``/usr/bin/chromium`` driven through Debian's
``/usr/bin/chromedriver``. Both paths are given to Selenium explicitly, so
Selenium Manager never runs and nothing is downloaded. ``.ci/run`` installs the
``chromium`` and ``chromium-driver`` packages.

Fixtures (imported into ``tests/conftest.py``):

* ``browser``: a :class:`Browser` whose pages ask for English;
* ``browser_factory``: ``browser_factory(language="zh-CN")`` for another
  ``Accept-Language``.

Each test gets its own Chromium, quit when the test ends. Tests that use it are
marked ``browser``; without Chromium they are skipped with the reason, except
under ``CI=true``, where a missing browser is a failure.

Screenshots go to ``var/screenshots/`` (a CI artefact); :meth:`Browser.capture`
takes one per window width and checks that the page has no horizontal scroll.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "var" / "screenshots"

#: Window widths every page is checked at: a phone and a desktop.
PHONE_WIDTH = 375
DESKTOP_WIDTH = 1280
WINDOW_HEIGHT = 900

#: Seconds an explicit wait may take (a bound, not a target).
WAIT_SECONDS = 15

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def _require_browser() -> None:
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


def _start_chromium(language: str, javascript: bool = True):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--lang={language}")
    options.add_argument(f"--window-size={DESKTOP_WIDTH},{WINDOW_HEIGHT}")
    prefs: dict[str, object] = {"intl.accept_languages": language}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    return driver


class Browser:
    """One Chromium window and the checks the page tests share."""

    def __init__(self, driver, *, language: str, test_name: str) -> None:
        self.driver = driver
        self.language = language
        self.test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")

    # --- navigation and the window ------------------------------------------------

    def visit(self, url: str) -> None:
        self.driver.get(url)

    def resize(self, width: int, height: int = WINDOW_HEIGHT) -> None:
        """Make the page's viewport ``width`` CSS pixels wide."""
        self.driver.set_window_size(width, height)
        # The window includes no browser chrome in headless mode, but make sure.
        inner = self.driver.execute_script("return window.innerWidth")
        if inner != width:
            self.driver.set_window_size(width + (width - inner), height)

    # --- finding and typing -------------------------------------------------------

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def wait_for(self, condition: Callable, message: str = "", timeout: float = WAIT_SECONDS):
        """Poll ``condition(driver)`` until it returns something truthy (bounded)."""
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition, message)

    def wait_for_text(self, css: str, text: str, timeout: float = WAIT_SECONDS) -> None:
        def has_text(driver):
            elements = self.find_all(css)
            return any(text in (element.text or "") for element in elements)

        self.wait_for(has_text, f"{text!r} never appeared in {css}", timeout)

    def wait_for_url(self, pattern: str, timeout: float = WAIT_SECONDS) -> None:
        self.wait_for(lambda driver: re.search(pattern, driver.current_url),
                      f"URL never matched {pattern!r}", timeout)

    @property
    def text(self) -> str:
        return self.find("body").text

    def console_errors(self) -> list[str]:
        """SEVERE entries of the browser console since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry.get("level") == "SEVERE"]

    # --- layout checks ------------------------------------------------------------

    def horizontal_overflow(self) -> int:
        """CSS pixels by which the page is wider than its viewport (0: no scroll)."""
        return int(self.driver.execute_script(
            "var d = document.documentElement;"
            "return Math.max(d.scrollWidth, document.body ? document.body.scrollWidth : 0)"
            " - d.clientWidth;"
        ))

    def assert_no_horizontal_scroll(self) -> None:
        overflow = self.horizontal_overflow()
        if overflow > 0:
            wide = self.driver.execute_script(
                "var w = document.documentElement.clientWidth, out = [];"
                "document.querySelectorAll('body *').forEach(function (e) {"
                "  var r = e.getBoundingClientRect();"
                "  if (r.right > w + 0.5) out.push(e.tagName + (e.id ? '#' + e.id : '')"
                "    + (e.className ? '.' + e.className : '') + ' right=' + Math.round(r.right));"
                "}); return out.slice(0, 10);"
            )
            raise AssertionError(
                f"{self.driver.current_url} scrolls sideways by {overflow}px at "
                f"{self.driver.execute_script('return window.innerWidth')}px; "
                f"too wide: {wide}"
            )

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}--{name}.png"
        # The whole page, not only the viewport: resize to the document's height.
        width = self.driver.execute_script("return window.innerWidth")
        height = self.driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, window.innerHeight)")
        self.resize(width, min(int(height), 4000))
        self.driver.save_screenshot(str(path))
        self.resize(width)
        return path

    def capture(self, name: str, widths: tuple[int, ...] = (PHONE_WIDTH, DESKTOP_WIDTH)) -> list[Path]:
        """Screenshot the current page at each width; fail if the phone width scrolls
        sideways. Leaves the window at the last width."""
        paths = []
        for width in widths:
            self.resize(width)
            if width <= PHONE_WIDTH:
                self.assert_no_horizontal_scroll()
            paths.append(self.screenshot(f"{name}-{width}"))
        return paths


@pytest.fixture
def browser_factory(request) -> Iterator[Callable[..., Browser]]:
    """``browser_factory(language="en", javascript=True)``: a fresh :class:`Browser`
    whose requests carry ``Accept-Language: <language>``, optionally with
    JavaScript switched off."""
    _require_browser()
    started: list[Browser] = []

    def make(language: str = "en", javascript: bool = True) -> Browser:
        browser = Browser(_start_chromium(language, javascript), language=language,
                          test_name=request.node.name)
        browser.resize(DESKTOP_WIDTH)
        started.append(browser)
        return browser

    yield make
    # Quit before the test's database goes: a request thread of the live server
    # ends (and closes its database connection) only when the browser closes its
    # kept-alive socket, which must happen while the test still owns the database.
    for browser in started:
        browser.driver.quit()


@pytest.fixture
def browser(browser_factory) -> Browser:
    return browser_factory("en")
