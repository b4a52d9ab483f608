"""CAPTCHA: requestCaptcha, the image, verifyCaptcha, and validate tokens on sends.

Through the LeanCloud wire protocol with Django's test client. The answer of a
challenge is read from the database by its token (tests/captcha_support.py).
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from io import BytesIO
from urllib.parse import parse_qs, urlsplit

import pytest
from captcha.models import CaptchaStore
from django.db import connection, connections
from django.utils import timezone
from PIL import Image

from sms_service import tasks
from sms_service.exceptions import SmsServiceError
from sms_service.models import App, CaptchaChallenge, CaptchaValidateToken, Message
from sms_service.services import captcha
from sms_service.services.sending import SmsRequest, request_sms
from tests.captcha_support import captcha_answer

pytestmark = pytest.mark.django_db

PHONE = "+8618600000000"


def request_captcha(lc, query: str = "", **kwargs):
    return lc.get("/1.1/requestCaptcha" + (f"?{query}" if query else ""), **kwargs)


def new_challenge(lc, query: str = "", **kwargs) -> dict:
    response = request_captcha(lc, query, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def verify(lc, token, code, **kwargs):
    return lc.post("/1.1/verifyCaptcha", {"captcha_token": token, "captcha_code": code},
                   **kwargs)


def validate_token(lc) -> str:
    token = new_challenge(lc)["captcha_token"]
    response = verify(lc, token, captcha_answer(token))
    assert response.status_code == 200, response.content
    return response.json()["validate_token"]


def send(lc, phone=PHONE, **body):
    return lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone, **body})


def image_of(client, url: str):
    return client.get(url)


def assert_error(response, status: int, code: int, message: str | None = None) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    if message is not None:
        assert body["error"] == message, body


def switch(app: App, **values) -> App:
    """Change app switches as the admin does (saving drops the cached app)."""
    for name, value in values.items():
        setattr(app, name, value)
    app.save(update_fields=list(values))
    return app


@pytest.fixture
def other_app(db) -> App:
    return App.objects.create(name="Other")


@pytest.fixture
def other_lc(client, other_app, django_capture_on_commit_callbacks):
    from tests.conftest import LeanCloudClient

    return LeanCloudClient(client, other_app, django_capture_on_commit_callbacks)


# --- requestCaptcha and the image --------------------------------------------------------


class TestRequestCaptcha:
    def test_answers_a_token_and_an_absolute_image_url(self, lc, app, client):
        body = new_challenge(lc)

        assert set(body) == {"captcha_token", "captcha_url"}
        url = urlsplit(body["captcha_url"])
        assert (url.scheme, url.netloc, url.path) == ("http", "testserver", "/1.1/captchaImage")
        assert parse_qs(url.query) == {"appId": [app.app_id], "token": [body["captcha_token"]]}

        image = image_of(client, body["captcha_url"])  # no LeanCloud headers
        assert image.status_code == 200
        assert image["Content-Type"] == "image/png"
        assert image["Cache-Control"] == "no-store"
        png = Image.open(BytesIO(image.content))
        assert (png.format, png.size) == ("PNG", (85, 30))
        assert len(captcha_answer(body["captcha_token"])) == 4

    def test_challenges_do_not_follow_pythons_random_generator(self, lc):
        # With the library's default challenge the letters come from the OS
        # CSPRNG: putting random's state back does not draw the same again.
        answers = set()
        for _ in range(3):
            random.seed(20261130)
            answers.add(captcha_answer(new_challenge(lc)["captcha_token"]))
        assert len(answers) == 3
        assert all(len(answer) == 4 and answer.isalpha() for answer in answers)

    def test_a_projects_own_challenge_function_is_used(self, lc, monkeypatch):
        from captcha.conf import settings as captcha_settings

        monkeypatch.setattr(captcha_settings, "CAPTCHA_CHALLENGE_FUNCT",
                            "captcha.helpers.math_challenge")
        token = new_challenge(lc)["captcha_token"]
        store = CaptchaStore.objects.get(pk=CaptchaChallenge.objects.get(token=token).store_id)
        assert store.challenge.endswith("=") and store.response.isdigit()

    def test_width_and_height_arrive_as_strings(self, lc, client):
        body = new_challenge(lc, "width=200&height=100")

        png = Image.open(BytesIO(image_of(client, body["captcha_url"]).content))
        assert png.size == (200, 100)

    def test_empty_query_values_mean_the_defaults(self, lc, client):
        """The JS SDK without options asks for ``/1.1/requestCaptcha?``."""
        body = new_challenge(lc, "width=&height=")
        png = Image.open(BytesIO(image_of(client, body["captcha_url"]).content))
        assert png.size == (85, 30)

    @pytest.mark.parametrize("query, message", [
        ("width=59", "width must be a whole number between 60 and 200."),
        ("width=201", "width must be a whole number between 60 and 200."),
        ("height=29", "height must be a whole number between 30 and 100."),
        ("height=101", "height must be a whole number between 30 and 100."),
        ("width=abc", "width must be a whole number between 60 and 200."),
        ("width=85.5", "width must be a whole number between 60 and 200."),
        ("height=-40", "height must be a whole number between 30 and 100."),
    ])
    def test_out_of_range_or_not_a_number(self, lc, query, message):
        assert_error(request_captcha(lc, query), 400, 1, message)
        assert not CaptchaChallenge.objects.exists()
        assert not CaptchaStore.objects.exists()

    @pytest.mark.parametrize("query", ["size=4", "ttl=60", "size=5&ttl=30"])
    def test_size_and_ttl_need_the_master_key(self, lc, query):
        assert_error(request_captcha(lc, query), 403, 1,
                     "size and ttl can only be set with the master key.")
        assert not CaptchaChallenge.objects.exists()

    def test_master_key_sets_size_and_ttl(self, lc):
        before = timezone.now()
        body = new_challenge(lc, "size=6&ttl=10", master=True)

        assert len(captcha_answer(body["captcha_token"])) == 6
        store = CaptchaChallenge.objects.get(token=body["captcha_token"]).store
        assert before + timedelta(seconds=10) <= store.expiration
        assert store.expiration <= timezone.now() + timedelta(seconds=10)

    @pytest.mark.parametrize("query, message", [
        ("size=2", "size must be a whole number between 3 and 6."),
        ("size=7", "size must be a whole number between 3 and 6."),
        ("ttl=9", "ttl must be a whole number between 10 and 180."),
        ("ttl=181", "ttl must be a whole number between 10 and 180."),
    ])
    def test_master_key_ranges(self, lc, query, message):
        assert_error(request_captcha(lc, query, master=True), 400, 1, message)

    def test_default_lifetime_is_60_seconds(self, lc):
        body = new_challenge(lc)
        store = CaptchaChallenge.objects.get(token=body["captcha_token"]).store
        assert store.expiration - timezone.now() <= timedelta(seconds=60)
        assert store.expiration - timezone.now() > timedelta(seconds=55)

    def test_public_base_url_is_honoured(self, lc, settings):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE,
                                "PUBLIC_BASE_URL": "https://sms.example.com/"}
        body = new_challenge(lc)
        assert body["captcha_url"].startswith("https://sms.example.com/1.1/captchaImage?appId=")

    def test_url_follows_the_request_host(self, lc):
        body = new_challenge(lc, HTTP_HOST="api.example.org:8443")
        assert body["captcha_url"].startswith("http://api.example.org:8443/1.1/captchaImage?")

    def test_service_switch_off_is_119_for_everyone(self, lc, app):
        token = new_challenge(lc)["captcha_token"]
        switch(app, captcha_enabled=False)

        for master in (False, True):
            assert_error(request_captcha(lc, master=master), 400, 119,
                         "That operation isn't allowed for clients.")
        assert_error(verify(lc, token, captcha_answer(token)), 400, 119)

    def test_image_is_gone_when_the_service_is_off(self, lc, app, client):
        url = new_challenge(lc)["captcha_url"]
        switch(app, captcha_enabled=False)
        assert_error(image_of(client, url), 404, 404)

    def test_requests_per_ip_are_limited(self, lc, settings):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "CAPTCHA_REQUESTS_PER_IP": [(60, 2)]}
        new_challenge(lc)
        new_challenge(lc)
        assert_error(request_captcha(lc), 429, 429, "Too many requests.")
        assert CaptchaChallenge.objects.count() == 2

    def test_needs_app_credentials(self, client):
        response = client.get("/1.1/requestCaptcha")
        assert_error(response, 401, 401, "Unauthorized.")


class TestImage:
    def test_unknown_token_or_missing_parameters(self, lc, app, client):
        new_challenge(lc)
        for query in (f"appId={app.app_id}&token=nope", "token=x", f"appId={app.app_id}", ""):
            response = client.get("/1.1/captchaImage?" + query)
            assert_error(response, 404, 404, "Captcha not found or expired.")
            assert response["Cache-Control"] == "no-store"

    def test_another_apps_id_does_not_find_it(self, lc, other_app, client):
        token = new_challenge(lc)["captcha_token"]
        response = client.get(f"/1.1/captchaImage?appId={other_app.app_id}&token={token}")
        assert_error(response, 404, 404)

    def test_expired_challenge_has_no_image(self, lc, client):
        body = new_challenge(lc)
        CaptchaStore.objects.update(expiration=timezone.now() - timedelta(seconds=1))
        assert_error(image_of(client, body["captcha_url"]), 404, 404)

    def test_answered_challenge_has_no_image(self, lc, client):
        body = new_challenge(lc)
        verify(lc, body["captcha_token"], "wrong")
        assert_error(image_of(client, body["captcha_url"]), 404, 404)

    def test_the_same_challenge_draws_the_same_image(self, lc, client):
        url = new_challenge(lc)["captcha_url"]
        assert image_of(client, url).content == image_of(client, url).content

    def test_post_is_refused_with_json(self, lc, client):
        url = new_challenge(lc)["captcha_url"]
        assert_error(client.post(url), 405, 405)


# --- verifyCaptcha ------------------------------------------------------------------


class TestVerifyCaptcha:
    def test_right_answer_in_any_case_gives_a_validate_token(self, lc):
        token = new_challenge(lc)["captcha_token"]
        answer = captcha_answer(token)

        response = verify(lc, token, f"  {answer.upper()} ")

        assert response.status_code == 200
        assert set(response.json()) == {"validate_token"}
        assert len(response.json()["validate_token"]) >= 32

    def test_a_challenge_answers_once(self, lc):
        token = new_challenge(lc)["captcha_token"]
        answer = captcha_answer(token)
        assert verify(lc, token, answer).status_code == 200

        assert_error(verify(lc, token, answer), 400, 603,
                     "The captcha is unknown or has already been answered.")

    def test_wrong_answer_spends_the_challenge(self, lc):
        token = new_challenge(lc)["captcha_token"]
        answer = captcha_answer(token)

        assert_error(verify(lc, token, answer + "x"), 400, 603, "Invalid captcha code.")
        assert_error(verify(lc, token, answer), 400, 603,
                     "The captcha is unknown or has already been answered.")
        assert not CaptchaStore.objects.exists()
        assert not CaptchaValidateToken.objects.exists()

    def test_expired_challenge(self, lc):
        token = new_challenge(lc)["captcha_token"]
        answer = captcha_answer(token)
        CaptchaStore.objects.update(expiration=timezone.now() - timedelta(seconds=1))

        assert_error(verify(lc, token, answer), 400, 603, "The captcha has expired.")
        assert not CaptchaValidateToken.objects.exists()

    def test_another_app_cannot_answer_it(self, lc, other_lc):
        token = new_challenge(lc)["captcha_token"]
        answer = captcha_answer(token)

        assert_error(verify(other_lc, token, answer), 400, 603,
                     "The captcha is unknown or has already been answered.")
        # Still the owner's to answer.
        assert verify(lc, token, answer).status_code == 200

    @pytest.mark.parametrize("body, message", [
        ({"captcha_code": "abcd"}, "captcha_token is missing, and must be a non-empty string."),
        ({"captcha_token": "t"}, "captcha_code is missing, and must be a non-empty string."),
        ({"captcha_token": "t", "captcha_code": 1234},
         "captcha_code is missing, and must be a non-empty string."),
        ({"captcha_token": "t" * 129, "captcha_code": "abcd"},
         "captcha_token is longer than 128 characters."),
    ])
    def test_bad_bodies(self, lc, body, message):
        assert_error(lc.post("/1.1/verifyCaptcha", body), 400, 1, message)

    def test_malformed_json(self, lc):
        assert_error(lc.post("/1.1/verifyCaptcha", raw="[1]"), 400, 107)

    def test_validate_token_is_stored_hashed(self, lc):
        token = validate_token(lc)
        row = CaptchaValidateToken.objects.get()
        assert token not in (row.digest, str(row.pk))
        assert len(row.digest) == 64
        assert row.expires_at - timezone.now() <= timedelta(seconds=300)


# --- validate tokens on sends --------------------------------------------------------


@pytest.mark.usefixtures("signature")
class TestValidateTokenOnSends:
    @pytest.fixture
    def forced(self, app) -> App:
        return switch(app, require_captcha=True)

    def test_missing_token_is_608_when_required(self, lc, forced, outbox):
        assert_error(send(lc), 400, 608, "Missing validate token.")
        assert_error(send(lc, validate_token=""), 400, 608, "Missing validate token.")
        assert outbox == []

    def test_a_token_passes_one_send(self, lc, forced, outbox):
        token = validate_token(lc)

        assert send(lc, validate_token=token).status_code == 200
        assert len(outbox) == 1
        assert_error(send(lc, "+8618600000001", validate_token=token), 400, 608,
                     "Invalid validate token: already used.")
        assert len(outbox) == 1

    def test_master_key_needs_no_token(self, lc, forced, outbox):
        assert send(lc, master=False).status_code == 400
        assert lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": PHONE},
                       master=True).status_code == 200
        assert len(outbox) == 1

    def test_unknown_and_expired_tokens(self, lc, forced, outbox):
        assert_error(send(lc, validate_token="made-up"), 400, 608,
                     "Invalid validate token: unknown to this app.")
        assert_error(send(lc, validate_token=12345), 400, 608,
                     "Invalid validate token: not a token.")
        token = validate_token(lc)
        CaptchaValidateToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert_error(send(lc, validate_token=token), 400, 608,
                     "Invalid validate token: expired.")
        assert outbox == []

    def test_another_apps_token_is_unknown(self, lc, other_lc, forced, outbox):
        theirs = validate_token(other_lc)

        assert_error(send(lc, validate_token=theirs), 400, 608,
                     "Invalid validate token: unknown to this app.")
        assert outbox == []
        assert CaptchaValidateToken.objects.get().used_at is None

    def test_a_given_token_is_spent_even_when_not_required(self, lc, app, outbox):
        assert app.require_captcha is False
        token = validate_token(lc)
        assert send(lc, validate_token=token).status_code == 200
        assert_error(send(lc, "+8618600000001", validate_token=token), 400, 608,
                     "Invalid validate token: already used.")

    def test_a_refused_send_leaves_the_token_unspent(self, lc, forced, outbox):
        token = validate_token(lc)

        assert_error(send(lc, validate_token=token, template="NoSuchTemplate"), 400, 604)
        assert send(lc, validate_token=token).status_code == 200
        assert len(outbox) == 1

    def test_a_rate_limited_send_leaves_the_token_unspent(self, lc, forced, outbox):
        assert send(lc, validate_token=validate_token(lc)).status_code == 200
        token = validate_token(lc)

        assert_error(send(lc, validate_token=token), 400, 1,
                     "SMS request too fast(1 request per 10s).")
        assert send(lc, "+8618600000001", validate_token=token).status_code == 200

    def test_a_bad_token_does_not_use_up_the_numbers_sending_slot(self, lc, app, outbox):
        assert_error(send(lc, validate_token="made-up"), 400, 608)
        assert send(lc).status_code == 200  # not "too fast"
        assert len(outbox) == 1


# --- cleanup ------------------------------------------------------------------------


def test_cleanup_task_removes_stale_challenges_and_tokens(lc):
    stale = new_challenge(lc)["captcha_token"]
    live = new_challenge(lc)["captcha_token"]
    validate_token(lc)
    validate_token(lc)
    past = timezone.now() - timedelta(seconds=1)
    CaptchaStore.objects.filter(pk=CaptchaChallenge.objects.get(token=stale).store_id).update(
        expiration=past
    )
    old = CaptchaValidateToken.objects.order_by("pk").first()
    CaptchaValidateToken.objects.filter(pk=old.pk).update(expires_at=past)

    result = tasks.remove_stale_captchas.delay().get()

    assert result == {"challenges": 1, "validate_tokens": 1}
    assert list(CaptchaChallenge.objects.values_list("token", flat=True)) == [live]
    assert CaptchaStore.objects.count() == 1
    assert list(CaptchaValidateToken.objects.all()) == list(
        CaptchaValidateToken.objects.exclude(pk=old.pk))
    assert CaptchaValidateToken.objects.count() == 1


def test_cleanup_is_in_the_example_beat_schedule(monkeypatch):
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("DJANGO_DEBUG", "1")  # the example's settings load in demo mode
    # The settings file alone: importing the example_project package would
    # create its Celery app and make it the process's current app, so later
    # tests would publish through it instead of the suite's.
    path = Path(__file__).resolve().parent.parent / "example_project" / "settings.py"
    spec = importlib.util.spec_from_file_location("example_settings", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    tasks_scheduled = {entry["task"] for entry in example.CELERY_BEAT_SCHEDULE.values()}
    assert "sms_service.tasks.remove_stale_captchas" in tasks_scheduled


# --- concurrency (PostgreSQL) -----------------------------------------------------


needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locking is only meaningful on PostgreSQL"
)


def _race(jobs) -> list[str]:
    barrier = threading.Barrier(len(jobs))
    results: list[str] = [""] * len(jobs)

    def run(index, job):
        try:
            barrier.wait()
            job()
            results[index] = "ok"
        except SmsServiceError as exc:
            results[index] = str(int(exc.code))
        except BaseException as exc:  # reported, never swallowed
            results[index] = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_with_one_validate_token_one_wins(app, signature, outbox):
    for round_ in range(5):
        challenge = captcha.request_captcha(app=app)
        token = captcha.verify_captcha(app=app, token=challenge.token,
                                       answer=captcha_answer(challenge.token))
        phones = [f"+86186000{round_}{i:04d}" for i in range(8)]
        jobs = [
            (lambda phone=phone, token=token: request_sms(
                app=app, request=SmsRequest(phone=phone, validate_token=token)))
            for phone in phones
        ]
        assert _race(jobs) == ["608"] * 7 + ["ok"]
    assert Message.objects.count() == 5


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_answers_to_one_challenge_one_wins(app):
    for _ in range(5):
        challenge = captcha.request_captcha(app=app)
        answer = captcha_answer(challenge.token)
        jobs = [
            (lambda token=challenge.token, answer=answer: captcha.verify_captcha(
                app=app, token=token, answer=answer))
            for _ in range(8)
        ]
        assert _race(jobs) == ["603"] * 7 + ["ok"]
    assert CaptchaValidateToken.objects.count() == 5


def test_admin_groups_the_captcha_switches_like_the_console(admin_client, app):
    """The CAPTCHA service switch sits with the security switches, "require
    CAPTCHA" with the SMS settings, as in LeanCloud's console."""
    page = admin_client.get(f"/admin/sms_service/app/{app.pk}/change/").content.decode()
    positions = [page.index(marker) for marker in (
        ">Security<", 'name="captcha_enabled"', ">SMS settings<", 'name="require_captcha"',
        ">Account settings<",
    )]
    assert positions == sorted(positions)
    assert "needs a validate_token from verifyCaptcha (608 without one)" in page
