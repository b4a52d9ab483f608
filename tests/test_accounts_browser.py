"""A person's journey through the account pages in headless Chromium.

Sign up with the code from the SMS (the locmem outbox), log out, log in by code,
change the number, reset the password and log in with it; once in English, once
with CAPTCHA forced, once in Chinese, once with JavaScript off. Every page is
photographed at 375 px and 1280 px (``var/screenshots/``) and must not scroll
sideways on the phone.
"""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import caches

from sms_service import caching
from sms_service.backends import locmem
from sms_service.models import AppUser
from tests.accounts_support import (
    OTHER_E164,
    OTHER_PHONE,
    PAGES,
    PASSWORD,
    PHONE,
    PHONE_E164,
    last_code,
    sent_to,
    use_site_app,
)
from tests.browser import ROOT, Browser
from tests.captcha_support import captcha_answer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a brand new secret"


@pytest.fixture
def site_url(live_server, app, signature, settings) -> str:
    app.allow_sms_login = True  # the app's option for logging in with a code
    app.save()
    use_site_app(settings, app)
    return live_server.url


def time_passes() -> None:
    """The sending limits' counters forgotten, as if a day went by (the journey
    sends several codes to one number within a minute)."""
    for cache in caches.all():
        cache.clear()
    caching.clear_process()


def submit(b: Browser) -> None:
    b.find("form button.primary").click()


def send_code(b: Browser, expect: str) -> None:
    """Press "send code" and wait for the page to say ``expect``."""
    b.find("button[data-send-code]").click()
    b.wait_for_text("[data-send-status], .field-error, .form-error", expect)


def sign_up(b: Browser, base: str, phone: str = PHONE, phone_e164: str = PHONE_E164) -> None:
    b.visit(f"{base}{PAGES}signup/")
    b.fill("#id_phone", phone)
    send_code(b, "We sent a code")
    b.fill("#id_code", last_code(phone_e164))
    b.fill("#id_password", PASSWORD)
    submit(b)
    b.wait_for_url(r"/tests/base/$")


def log_out(b: Browser) -> None:
    b.find(".site-header form button").click()
    b.wait_for_url(rf"{PAGES}login/$")


def test_journey_sign_up_log_out_log_in_change_number_reset_password(browser, site_url):
    b, base = browser, site_url

    # Sign up. A number with letters first: the message sits beside the field,
    # which keeps what was typed and gets the focus.
    b.visit(f"{base}{PAGES}signup/")
    b.capture("signup")
    b.fill("#id_phone", "186abc45678")
    send_code(b, "The mobile phone number was invalid.")
    phone = b.find("#id_phone")
    assert phone.get_attribute("value") == "186abc45678"
    assert phone.get_attribute("aria-invalid") == "true"
    assert "id_phone_error" in phone.get_attribute("aria-describedby")
    assert b.driver.switch_to.active_element == phone
    b.capture("signup-error")

    b.fill("#id_phone", PHONE)
    send_code(b, f"We sent a code to {PHONE}.")
    button = b.find("button[data-send-code]")
    assert not phone.get_attribute("aria-invalid")
    assert b.find("#id_phone_error").text == ""
    assert button.get_attribute("disabled") is not None
    assert re.fullmatch(r"Send again in (60|59|58) s", button.text), button.text
    assert b.driver.switch_to.active_element == b.find("#id_code")
    assert b.driver.current_url.endswith(f"{PAGES}signup/")  # no reload
    b.fill("#id_code", last_code(PHONE_E164))
    b.fill("#id_password", PASSWORD)
    submit(b)
    b.wait_for_url(r"/tests/base/$")
    assert "Welcome! Your account is ready." in b.text
    member = AppUser.objects.get(phone=PHONE_E164)
    assert member.phone_verified

    b.visit(f"{base}{PAGES}verify/")
    assert f"Your number {PHONE_E164} is verified." in b.text
    b.capture("verify")

    # Change the number.
    b.visit(f"{base}{PAGES}change/")
    b.capture("change")
    b.fill("#id_phone", OTHER_PHONE)
    send_code(b, f"We sent a code to {OTHER_PHONE}.")
    b.fill("#id_code", last_code(OTHER_E164))
    submit(b)
    b.wait_for_text(".messages", f"Your phone number is now {OTHER_E164}.")

    # Log out, log in by code.
    log_out(b)
    b.capture("login-code")
    time_passes()
    b.fill("#id_phone", OTHER_PHONE)
    send_code(b, "We sent a code")
    b.fill("#id_code", last_code(OTHER_E164))
    submit(b)
    b.wait_for_url(r"/tests/base/$")
    assert "You are logged in." in b.text

    # Log out, reset the password by SMS, log in with it.
    log_out(b)
    b.visit(f"{base}{PAGES}password/reset/")
    b.capture("reset")
    time_passes()
    b.fill("#id_phone", OTHER_PHONE)
    send_code(b, "We sent a code")
    b.fill("#id_code", last_code(OTHER_E164))
    b.fill("#id_password", NEW_PASSWORD)
    b.fill("#id_password_again", NEW_PASSWORD)
    submit(b)
    b.wait_for_url(rf"{PAGES}login/password/$")
    b.capture("login-password")
    b.fill("#id_phone", OTHER_PHONE)
    b.fill("#id_password", NEW_PASSWORD)
    submit(b)
    b.wait_for_url(r"/tests/base/$")
    member.user.refresh_from_db()
    assert member.user.check_password(NEW_PASSWORD)

    b.visit(f"{base}{PAGES}logout/")
    b.capture("logout")
    # No script error; refused sends are answered 400, which Chromium logs too.
    assert [e for e in b.console_errors() if "status of 400" not in e] == []


def test_journey_with_captcha_forced(browser, site_url, app):
    app.require_captcha = True
    app.save()
    b = browser
    b.visit(f"{site_url}{PAGES}signup/")
    image = b.find("img[data-captcha-image]")
    b.wait_for(lambda d: image.get_attribute("naturalWidth") not in (None, "0"),
               "the CAPTCHA picture never loaded")
    b.capture("signup-captcha")
    first_src = image.get_attribute("src")

    # A new picture on request, without a reload.
    b.find("button[data-refresh-captcha]").click()
    b.wait_for(lambda d: image.get_attribute("src") != first_src, "no new picture")

    b.fill("#id_phone", PHONE)
    b.fill("#id_captcha_answer", "wrong")
    src = image.get_attribute("src")
    send_code(b, "captcha")  # the service's message names the CAPTCHA
    assert image.get_attribute("src") != src  # a wrong answer spends the picture
    assert b.find("#id_captcha_answer").get_attribute("aria-invalid") == "true"
    assert sent_to(PHONE_E164) == 0

    token = b.find("input[name=captcha_token]").get_attribute("value")
    b.fill("#id_captcha_answer", captcha_answer(token))
    send_code(b, f"We sent a code to {PHONE}.")
    assert b.find("#id_captcha_answer_error").text == ""
    b.fill("#id_code", last_code(PHONE_E164))
    submit(b)
    b.wait_for_url(r"/tests/base/$")
    assert AppUser.objects.filter(phone=PHONE_E164, phone_verified=True).exists()


def test_journey_in_chinese(browser_factory, site_url):
    b = browser_factory("zh-CN")
    b.visit(f"{site_url}{PAGES}signup/")
    assert b.find("html").get_attribute("lang") == "zh-hans"
    assert b.find("label[for=id_phone]").text == "手机号"
    b.capture("signup-zh")
    b.fill("#id_phone", "186abc45678")
    send_code(b, "手机号码无效。")
    b.fill("#id_phone", PHONE)
    send_code(b, f"验证码已发送至 {PHONE}。")
    assert re.fullmatch(r"(60|59|58) 秒后可重新发送", b.find("button[data-send-code]").text)
    b.fill("#id_code", last_code(PHONE_E164))
    submit(b)
    b.wait_for_url(r"/tests/base/$")
    assert "欢迎！您的账户已创建。" in b.text
    for page, name in (("login/", "login-code-zh"), ("login/password/", "login-password-zh"),
                       ("password/reset/", "reset-zh"), ("change/", "change-zh"),
                       ("verify/", "verify-zh")):
        b.visit(f"{site_url}{PAGES}{page}")
        b.capture(name)


def test_sign_up_with_javascript_off(browser_factory, site_url):
    b = browser_factory(javascript=False)
    b.visit(f"{site_url}{PAGES}signup/")
    b.fill("#id_phone", PHONE)
    b.find("button[data-send-code]").click()  # a plain form post: the page reloads
    b.wait_for_text("[data-send-status]", f"We sent a code to {PHONE}.")
    assert b.find("#id_phone").get_attribute("value") == PHONE
    b.capture("signup-sent-nojs")
    b.fill("#id_code", last_code(PHONE_E164))
    submit(b)
    b.wait_for_url(r"/tests/base/$")
    assert AppUser.objects.filter(phone=PHONE_E164).exists()


# --- the LeanCloud JS SDK's browser build, from another origin ------------------------------

SDK_BUILD = ROOT / "tests" / "sdk" / "js" / "node_modules" / "leancloud-storage" / "dist" / "av-min.js"

#: The "Using CAPTCHA on a Website" page of LeanCloud's SMS guide, with the SDK
#: served from this test's own origin and the server URL of the live server.
CAPTCHA_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width">
  <title>Testing CAPTCHA</title>
</head>
<body>
  <label>Phone Number
    <input type="text" id="phone" />
  </label>
  <br />
  <label>Verification Code
    <input type="text" id="captcha-code" />
  </label>
  <img id="captcha-image" />
  <br />
  <button id="verify">Send Code</button>
  <script src="/av-min.js"></script>
  <script>
    var appId = '%(app_id)s';
    var appKey = '%(app_key)s';
    AV.init({ appId: appId, appKey: appKey, serverURL: '%(server)s' });
    AV.Captcha.request().then(function (captcha) {
      captcha.bind({
        textInput: 'captcha-code',
        image: 'captcha-image',
        verifyButton: 'verify'
      }, {
        success: function (validateCode) {
          var phoneNumber = document.getElementById('phone').value;
          console.log('The input is correct. Now send verification code to: ' + phoneNumber);
          AV.Cloud.requestSmsCode({
            mobilePhoneNumber: phoneNumber,
            name: 'App Name',
            validate_token: validateCode,
            op: 'some operation',
            ttl: 10
          }).then(function () {
            console.log('Message sent.');
          }, function (err) {
            console.error('Failed to send message.', err.message);
          });
        },
        error: function (error) {
          console.error(error.message);
        }
      });
    });
  </script>
</body>
</html>
"""


@pytest.fixture
def other_origin(app, site_url):
    """An HTTP server on another port (another origin) serving the page and the SDK."""
    if not SDK_BUILD.exists():
        reason = f"{SDK_BUILD} is missing (run tests/sdk/install.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    page = (CAPTCHA_PAGE % {"app_id": app.app_id, "app_key": app.app_key,
                            "server": site_url}).encode()
    sdk = SDK_BUILD.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body, kind = (sdk, "application/javascript") if self.path == "/av-min.js" \
                else (page, "text/html; charset=utf-8")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_leancloud_js_sdk_captcha_page_from_another_origin(browser, app, site_url, other_origin):
    app.require_captcha = True
    app.save()
    b = browser
    assert urlsplit(other_origin).netloc != urlsplit(site_url).netloc
    b.visit(other_origin + "/")
    image = b.find("#captcha-image")
    b.wait_for(lambda d: (image.get_attribute("src") or "").startswith(site_url + "/1.1/captchaImage"),
               "the SDK never showed a CAPTCHA from the server")
    b.wait_for(lambda d: image.get_attribute("naturalWidth") not in (None, "0"),
               "the CAPTCHA picture never loaded")
    log: list[str] = []

    def logged(text):
        def check(driver):
            log.extend(entry["message"] for entry in driver.get_log("browser"))
            return any(text in line for line in log)
        return check

    # A wrong answer: the SDK reports it and shows a new picture.
    first = image.get_attribute("src")
    b.fill("#phone", PHONE)
    b.fill("#captcha-code", "wrong")
    b.find("#verify").click()
    b.wait_for(logged("Invalid captcha code."), "the wrong answer was not reported")
    b.wait_for(lambda d: image.get_attribute("src") != first, "no new picture after a wrong answer")
    assert sent_to(PHONE_E164) == 0

    token = parse_qs(urlsplit(image.get_attribute("src")).query)["token"][0]
    b.fill("#captcha-code", captcha_answer(token))
    b.find("#verify").click()
    b.wait_for(logged("Message sent."), f"the SDK did not send; browser log: {log}")
    assert sent_to(PHONE_E164) == 1
    assert "some operation" in next(m.body for m in reversed(locmem.outbox) if m.to == PHONE_E164)
