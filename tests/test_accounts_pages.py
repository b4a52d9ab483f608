"""The bundled account pages through Django's test client: every page, every
step, and the bad input a person types (with JavaScript off, and the JSON the
"send code" script gets)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

from sms_service.models import AppUser
from sms_service.services import users
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
from tests.captcha_support import captcha_answer

SIGNUP, LOGIN, LOGIN_PASSWORD = f"{PAGES}signup/", f"{PAGES}login/", f"{PAGES}login/password/"
LOGOUT, RESET = f"{PAGES}logout/", f"{PAGES}password/reset/"
VERIFY, CHANGE = f"{PAGES}verify/", f"{PAGES}change/"
JSON = {"HTTP_ACCEPT": "application/json"}
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


@pytest.fixture
def site(app, signature, settings):
    """The app the pages serve, with an approved default signature."""
    return use_site_app(settings, app)


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST as a browser does; the send's on-commit delivery runs (eager Celery)."""

    def post(url, data, *, using=None, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return (using or client).post(url, data, **extra)

    return post


@pytest.fixture
def member(site):
    """A member with a verified number and a password, of an app that allows
    logging in with an SMS code."""
    site.allow_sms_login = True
    site.save()
    member, _ = _signed_up(site)
    return member


def _signed_up(app, phone=PHONE_E164, verified=True):
    member = users.create_member(app=app, username=phone, password=PASSWORD, phone=phone,
                                 phone_verified=verified)
    return member, member.user


def logged_in_user_id(client) -> str | None:
    return client.session.get(SESSION_KEY)


def field_error(html: str, name: str) -> str:
    match = re.search(rf'id="id_{name}_error">([^<]*)<', html)
    assert match, f"no error box for {name}"
    return match.group(1)


def input_value(html: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, f"no input {name}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else None


# --- every page renders, accessibly -------------------------------------------------


@pytest.mark.parametrize("url", [SIGNUP, LOGIN, LOGIN_PASSWORD, RESET, LOGOUT])
def test_public_pages_render_with_csrf_and_labelled_fields(client, member, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    for name in re.findall(r'<input[^>]*type="(?:tel|text|password)"[^>]*id="(id_\w+)"', html):
        assert f'<label for="{name}">' in html, f"{name} has no label"


def test_inputs_ask_phones_for_the_right_keyboard_and_autofill(client, site):
    html = client.get(SIGNUP).content.decode()
    phone = re.search(r'<input[^>]*name="phone"[^>]*>', html).group(0)
    code = re.search(r'<input[^>]*name="code"[^>]*>', html).group(0)
    password = re.search(r'<input[^>]*name="password"[^>]*>', html).group(0)
    assert 'type="tel"' in phone and 'autocomplete="tel"' in phone
    assert 'autocomplete="one-time-code"' in code and 'inputmode="numeric"' in code
    assert 'autocomplete="new-password"' in password and "required" not in password
    assert 'aria-describedby="id_code_helptext"' in code
    # Focus order: number, send button, code, password, then the submit button.
    order = [html.index(x) for x in ('name="phone"', 'value="send_code"', 'name="code"',
                                      'name="password"', 'class="primary"')]
    assert order == sorted(order)


@pytest.mark.parametrize("url", [VERIFY, CHANGE])
def test_member_pages_send_anonymous_visitors_to_log_in(client, site, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={url}"


def test_pages_without_site_app_name_the_missing_setting(client, db):
    from sms_service.exceptions import SmsServiceConfigurationError

    with pytest.raises(SmsServiceConfigurationError, match="SITE_APP_ID"):
        client.get(SIGNUP)


def test_pages_speak_chinese_to_a_chinese_browser(client, site):
    html = client.get(SIGNUP, **ZH).content.decode()
    assert '<html lang="zh-hans"' in html
    assert "手机号" in html and "发送验证码" in html and "注册" in html


# --- sign up ---------------------------------------------------------------------------


def test_sign_up_without_javascript(client, site, post):
    response = post(SIGNUP, {"phone": PHONE, "action": "send_code"})
    html = response.content.decode()
    assert response.status_code == 200
    assert sent_to(PHONE_E164) == 1
    assert f"We sent a code to {PHONE}." in html
    assert input_value(html, "phone") == PHONE  # kept
    assert 'data-wait="60"' in html  # the countdown starts on the re-rendered page

    response = post(SIGNUP, {"phone": PHONE, "code": last_code(PHONE_E164),
                             "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/tests/base/"
    member = AppUser.objects.get(app=site, phone=PHONE_E164)
    assert member.phone_verified
    assert logged_in_user_id(client) == str(member.user.pk)
    assert member.user.check_password(PASSWORD)


def test_send_code_answers_the_script_in_json_and_counts_down_the_limit(client, site, post):
    response = post(SIGNUP, {"phone": PHONE, "action": "send_code"}, **JSON)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": f"We sent a code to {PHONE}.",
                               "wait": 60, "errors": {}, "captcha": None}
    again = post(SIGNUP, {"phone": PHONE, "action": "send_code"}, **JSON)
    body = again.json()
    assert again.status_code == 400 and body["ok"] is False
    assert body["errors"]["phone"] == ["SMS request too fast(1 request per 10s)."]
    assert 1 <= body["wait"] <= 10
    assert sent_to(PHONE_E164) == 1


def test_send_code_errors_come_in_the_page_language(client, site, post):
    body = post(SIGNUP, {"phone": "186abc45678", "action": "send_code"}, **JSON, **ZH).json()
    assert body["errors"] == {"phone": ["手机号码无效。"]}
    body = post(SIGNUP, {"phone": "", "action": "send_code"}, **JSON, **ZH).json()
    assert body["errors"] == {"phone": ["该字段是必填项。"]}  # Django's own catalogue


def test_number_with_letters_is_shown_beside_the_field_as_typed(client, site, post):
    response = post(SIGNUP, {"phone": "186abc45678", "action": "send_code"})
    html = response.content.decode()
    assert field_error(html, "phone") == "The mobile phone number was invalid."
    assert input_value(html, "phone") == "186abc45678"
    assert 'aria-invalid="true"' in re.search(r'<input[^>]*name="phone"[^>]*>', html).group(0)
    assert 'aria-describedby="id_phone_error id_phone_helptext"' in html
    assert sent_to(PHONE_E164) == 0


def test_wrong_code_keeps_the_number_but_never_the_code_or_password(client, site, post):
    post(SIGNUP, {"phone": PHONE, "action": "send_code"})
    right = last_code(PHONE_E164)
    wrong = "000000" if right != "000000" else "111111"
    response = post(SIGNUP, {"phone": PHONE, "code": wrong, "password": PASSWORD})
    html = response.content.decode()
    assert response.status_code == 200
    assert field_error(html, "code") == "Invalid SMS code."
    assert input_value(html, "phone") == PHONE
    assert input_value(html, "code") is None and wrong not in html
    assert input_value(html, "password") is None and PASSWORD not in html
    assert not AppUser.objects.filter(app=site).exists()
    assert logged_in_user_id(client) is None


def test_signing_up_with_a_number_that_has_an_account_logs_that_account_in(client, site, member, post):
    post(SIGNUP, {"phone": PHONE, "action": "send_code"})
    response = post(SIGNUP, {"phone": PHONE, "code": last_code(PHONE_E164)}, follow=True)
    assert "This number already had an account: you are logged in." in response.content.decode()
    assert logged_in_user_id(client) == str(member.user.pk)
    assert AppUser.objects.filter(app=site).count() == 1


def test_missing_fields_are_named_beside_each_field(client, site, post):
    html = post(SIGNUP, {"phone": "", "code": ""}).content.decode()
    assert field_error(html, "phone") == "This field is required."
    assert field_error(html, "code") == "This field is required."
    assert field_error(html, "password") == ""


# --- log in and out --------------------------------------------------------------------


def test_log_in_by_code_then_out(client, member, post):
    post(LOGIN, {"phone": PHONE, "action": "send_code"})
    response = post(LOGIN, {"phone": PHONE, "code": last_code(PHONE_E164)})
    assert response.status_code == 302
    assert logged_in_user_id(client) == str(member.user.pk)

    assert client.get(LOGOUT).status_code == 200  # GET only asks
    assert logged_in_user_id(client) == str(member.user.pk)
    response = client.post(LOGOUT)
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert logged_in_user_id(client) is None


def test_log_in_page_offers_the_password_when_the_app_has_no_sms_login(client, site):
    response = client.get(LOGIN, {"next": "/admin/"})
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_PASSWORD}?next=%2Fadmin%2F"


def test_log_in_code_for_an_unknown_number_is_refused_beside_the_number(client, member, post):
    body = post(LOGIN, {"phone": OTHER_PHONE, "action": "send_code"}, **JSON).json()
    assert body["ok"] is False and list(body["errors"]) == ["phone"]
    assert sent_to(OTHER_E164) == 0


def test_log_in_with_password(client, member, post):
    response = post(LOGIN_PASSWORD, {"phone": PHONE, "password": PASSWORD})
    assert response.status_code == 302
    assert logged_in_user_id(client) == str(member.user.pk)


def test_wrong_password_is_shown_beside_the_password(client, member, post):
    html = post(LOGIN_PASSWORD, {"phone": PHONE, "password": "wrong"}).content.decode()
    assert field_error(html, "password") == "The username and password mismatch."
    assert input_value(html, "phone") == PHONE and input_value(html, "password") is None
    assert logged_in_user_id(client) is None


def test_too_many_tries_lock_the_account_with_a_message_for_the_whole_form(client, member, post, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "LOGIN_MAX_FAILURES": 3}
    for _ in range(3):
        post(LOGIN_PASSWORD, {"phone": PHONE, "password": "wrong"})
    html = post(LOGIN_PASSWORD, {"phone": PHONE, "password": PASSWORD}).content.decode()
    assert re.search(r'id="form_errors">([^<]+)<', html).group(1) == (
        "Too many failed log-ins. Try again later, or reset your password.")
    assert logged_in_user_id(client) is None


@pytest.mark.parametrize(("next_url", "lands_on"), [
    ("/admin/", "/admin/"),
    ("https://evil.example.com/", "/tests/base/"),
    ("//evil.example.com/", "/tests/base/"),
    ("javascript:alert(1)", "/tests/base/"),
])
def test_next_is_followed_only_within_the_site(client, member, post, next_url, lands_on):
    page = client.get(LOGIN_PASSWORD, {"next": next_url}).content.decode()
    assert ("evil" in page) is False
    response = post(LOGIN_PASSWORD, {"phone": PHONE, "password": PASSWORD, "next": next_url})
    assert response.status_code == 302 and response["Location"] == lands_on


def test_forms_refuse_posts_without_the_csrf_token(site, member):
    client = Client(enforce_csrf_checks=True)
    response = client.post(LOGIN_PASSWORD, {"phone": PHONE, "password": PASSWORD})
    assert response.status_code == 403
    assert logged_in_user_id(client) is None


# --- reset, verify, change ---------------------------------------------------------------


def test_reset_password_by_sms(client, member, post):
    post(RESET, {"phone": PHONE, "action": "send_code"})
    code = last_code(PHONE_E164)
    html = post(RESET, {"phone": PHONE, "code": code, "password": "new secret 1",
                        "password_again": "new secret 2"}).content.decode()
    assert field_error(html, "password_again") == "The two passwords differ."
    response = post(RESET, {"phone": PHONE, "code": code, "password": "new secret 1",
                            "password_again": "new secret 1"})
    assert response.status_code == 302 and response["Location"] == LOGIN_PASSWORD
    member.user.refresh_from_db()
    assert member.user.check_password("new secret 1")
    assert not member.user.check_password(PASSWORD)


def test_verify_my_phone(client, site, post):
    member, user = _signed_up(site, verified=False)
    client.force_login(user)
    assert "We text a code to +8618612345678." in client.get(VERIFY).content.decode()
    response = post(VERIFY, {"action": "send_code"}, **JSON)
    assert response.json()["ok"] is True
    response = post(VERIFY, {"code": last_code(PHONE_E164)}, follow=True)
    assert "Your phone number is verified." in response.content.decode()
    member.refresh_from_db()
    assert member.phone_verified


def test_change_number(client, member, post):
    client.force_login(member.user)
    post(CHANGE, {"phone": OTHER_PHONE, "action": "send_code"})
    response = post(CHANGE, {"phone": OTHER_PHONE, "code": last_code(OTHER_E164)}, follow=True)
    assert f"Your phone number is now {OTHER_E164}." in response.content.decode()
    member.refresh_from_db()
    assert member.phone == OTHER_E164 and member.phone_verified


def test_changing_to_a_taken_number_is_refused_beside_the_number(client, site, member, post):
    other, _ = _signed_up(site, phone=OTHER_E164)
    client.force_login(member.user)
    html = post(CHANGE, {"phone": OTHER_PHONE, "action": "send_code"}).content.decode()
    assert "already been taken" in field_error(html, "phone")
    assert input_value(html, "phone") == OTHER_PHONE
    assert sent_to(OTHER_E164) == 0


def test_member_pages_explain_when_the_user_is_no_member(client, site, django_user_model):
    client.force_login(django_user_model.objects.create_user("host-user"))
    html = client.get(CHANGE).content.decode()
    assert "Your account has no phone number on this site." in html
    assert 'name="phone"' not in html


# --- CAPTCHA ------------------------------------------------------------------------------


@pytest.fixture
def captcha_site(site):
    site.require_captcha = True
    site.save()
    return site


def _captcha_token(html: str) -> str:
    return input_value(html, "captcha_token")


def test_captcha_is_shown_when_the_app_requires_it(client, captcha_site):
    html = client.get(SIGNUP).content.decode()
    assert re.search(r'<img src="/1\.1/captchaImage\?appId=[^"]+&amp;token=[^"]+"', html)
    assert _captcha_token(html)
    image = re.search(r'<img src="([^"]+)"', html).group(1).replace("&amp;", "&")
    response = client.get(image)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_send_needs_the_captcha_answer_and_a_wrong_one_gets_a_new_picture(client, captcha_site, post):
    html = client.get(SIGNUP).content.decode()
    token = _captcha_token(html)
    response = post(SIGNUP, {"phone": PHONE, "action": "send_code", "captcha_token": token,
                             "captcha_answer": "wrong"}, **JSON)
    body = response.json()
    assert body["ok"] is False and list(body["errors"]) == ["captcha_answer"]
    assert body["captcha"]["token"] != token
    assert sent_to(PHONE_E164) == 0

    token = body["captcha"]["token"]
    body = post(SIGNUP, {"phone": PHONE, "action": "send_code", "captcha_token": token,
                         "captcha_answer": captcha_answer(token)}, **JSON).json()
    assert body["ok"] is True and sent_to(PHONE_E164) == 1
    # The answered picture is spent: the page gets a new one for the next send.
    assert body["captcha"]["token"] != token


def test_captcha_refresh_without_javascript_keeps_the_number(client, captcha_site, post):
    html = client.get(SIGNUP).content.decode()
    response = post(SIGNUP, {"phone": PHONE, "action": "refresh_captcha",
                             "captcha_token": _captcha_token(html)})
    fresh = response.content.decode()
    assert _captcha_token(fresh) != _captcha_token(html)
    assert input_value(fresh, "phone") == PHONE
    assert field_error(fresh, "captcha_answer") == ""


def test_demo_front_page_links_every_page(client, site, settings, example_project_imported):
    from pathlib import Path

    settings.ROOT_URLCONF = "example_project.urls"
    root = Path(__file__).resolve().parent.parent
    settings.TEMPLATES = [{**settings.TEMPLATES[0],
                           "DIRS": [root / "example_project" / "templates"]}]
    html = client.get("/").content.decode()
    for url in (SIGNUP, LOGIN, LOGIN_PASSWORD, RESET, VERIFY, CHANGE):
        assert f'href="{url}"' in html, url
