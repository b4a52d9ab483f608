"""The account pages' shell: the browser fixture's layout check, the base template
in both languages, at a phone's and a desktop's width."""

from __future__ import annotations

import pytest

from tests.browser import DESKTOP_WIDTH, PHONE_WIDTH

WIDE_PAGE = (
    "data:text/html;charset=utf-8,<meta name=viewport content='width=device-width'>"
    "<div id=wide style='width:600px'>wide</div>"
)


@pytest.mark.browser
def test_the_no_scroll_check_catches_a_page_wider_than_a_phone(browser):
    browser.visit(WIDE_PAGE)
    browser.resize(PHONE_WIDTH)
    with pytest.raises(AssertionError, match=r"scrolls sideways by 233px at 375px.*DIV#wide right=608"):
        browser.assert_no_horizontal_scroll()
    browser.resize(DESKTOP_WIDTH)
    browser.assert_no_horizontal_scroll()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("language", "lang", "skip_link"), [
    ("en", "en", "Skip to content"),
    ("zh-CN", "zh-hans", "跳到内容"),
])
def test_base_page_follows_the_browser_language_and_fits_a_phone(
        browser_factory, live_server, language, lang, skip_link):
    browser = browser_factory(language)
    browser.visit(live_server.url + "/tests/base/")
    assert browser.find("html").get_attribute("lang") == lang
    assert browser.find(".skip-link").get_attribute("textContent") == skip_link
    shots = browser.capture("base")
    assert [path.name for path in shots] == [
        f"{browser.test_name}--base-{PHONE_WIDTH}.png",
        f"{browser.test_name}--base-{DESKTOP_WIDTH}.png",
    ]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in shots)


@pytest.mark.parametrize(("accept", "expected"), [
    ("en-US,en;q=0.9", "Skip to content"),
    ("zh-CN,zh;q=0.9", "跳到内容"),
    ("zh-Hans", "跳到内容"),
    ("fr-FR", "Skip to content"),  # not offered: the default language
])
def test_page_language_comes_from_accept_language(client, accept, expected):
    response = client.get("/tests/base/", HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert "Accept-Language" in response["Vary"]
