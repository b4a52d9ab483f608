"""Sending limits: LeanCloud's per number and signature, per IP, per range."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import caches

from sms_service.exceptions import SendTooFastError
from sms_service.models import Message
from sms_service.services import ratelimit

SEND = "/1.1/requestSmsCode"
PHONE = "18612345678"

pytestmark = pytest.mark.django_db


def send(lc, phone=PHONE, **body):
    return lc.post(SEND, {"mobilePhoneNumber": phone, **body})


def limits(settings, **overrides):
    base = {
        "app_number_interval": 10,
        "signature_number_interval": 60,
        "signature_number_daily": {"verification": 10, "notification": 15, "marketing": 15},
        "voice": [(30, 1), (3600, 3), (86400, 5)],
        "ip": [],
        "prefix": [],
    }
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RATE_LIMITS": {**base, **overrides}}


class TestLeanCloudLimits:
    def test_one_sms_per_10_seconds_per_number(self, lc, signature, clock):
        assert send(lc).json() == {}
        response = send(lc)
        assert response.json() == {"code": 1, "error": "SMS request too fast(1 request per 10s)."}
        assert response["Retry-After"] == "10"
        clock.shift(4)
        assert send(lc)["Retry-After"] == "6"
        assert send(lc, phone="18612345679").json() == {}  # other numbers are not affected

    def test_one_per_minute_per_signature(self, lc, signature, clock):
        send(lc)
        clock.shift(11)
        response = send(lc)
        assert response.json() == {"code": 601, "error": "Can't send SMS too frequently."}
        assert response["Retry-After"] == "49"
        clock.shift(50)
        assert send(lc).json() == {}

    def test_ten_verification_sms_per_rolling_24h(self, lc, signature, clock):
        for _ in range(10):
            assert send(lc).json() == {}
            clock.shift(61)
        response = send(lc)
        assert response.json()["code"] == 601
        # The oldest of the ten leaves the window 24 h after it was sent.
        assert int(response["Retry-After"]) == 86400 - 10 * 61
        clock.shift(86400 - 10 * 61 + 1)
        assert send(lc).json() == {}
        assert Message.objects.count() == 11

    def test_voice_limits(self, lc, clock):
        assert send(lc, smsType="voice").json() == {}
        response = send(lc, smsType="voice")  # 1 per 30 s
        assert response.json()["code"] == 601
        assert response["Retry-After"] == "30"
        clock.shift(31)
        # ...and the per-signature minute, which voice shares with SMS.
        assert send(lc, smsType="voice")["Retry-After"] == "29"
        clock.shift(30)
        assert send(lc, smsType="voice").json() == {}
        clock.shift(61)
        assert send(lc, smsType="voice").json() == {}
        clock.shift(61)
        response = send(lc, smsType="voice")  # 3 per hour
        assert response.json()["code"] == 601
        assert int(response["Retry-After"]) == 3600 - 183
        for _ in range(2):
            clock.shift(3600)
            assert send(lc, smsType="voice").json() == {}
        clock.shift(3600)
        assert send(lc, smsType="voice").json()["code"] == 601  # 5 per 24 h

    def test_sms_and_voice_share_the_numbers_budget(self, lc, signature, outbox, clock):
        assert send(lc).json() == {}
        response = send(lc, smsType="voice")  # the same second
        assert response.json()["code"] == 601
        assert response["Retry-After"] == "60"  # the per-signature minute
        clock.shift(61)
        assert send(lc, smsType="voice").json() == {}
        assert send(lc).json()["code"] == 1  # and the other way round
        clock.shift(11)
        assert send(lc).json()["code"] == 601
        assert [m.channel for m in outbox] == ["sms", "voice"]

    def test_voice_codes_count_in_the_signatures_daily_quota(self, lc, signature, settings,
                                                             clock):
        limits(settings, signature_number_daily={"verification": 2},
               voice=[(30, 1), (86400, 10)])
        assert send(lc, smsType="voice").json() == {}
        clock.shift(61)
        assert send(lc).json() == {}
        clock.shift(61)
        assert send(lc).json()["code"] == 601
        assert send(lc, phone="18612345679").json() == {}

    def test_refused_requests_queue_nothing(self, lc, signature, outbox, clock):
        send(lc)
        send(lc)
        clock.shift(11)
        send(lc)
        assert len(outbox) == 1
        assert Message.objects.count() == 1


class TestBeyondLeanCloud:
    def test_per_ip_limit(self, lc, signature, settings, clock):
        limits(settings, ip=[(60, 3)])
        for n in range(3):
            assert send(lc, phone=f"1861234560{n}").json() == {}
        response = send(lc, phone="18612345609")
        assert response.json()["code"] == 601
        assert "Retry-After" in response

    def test_per_prefix_limit(self, lc, signature, settings, clock):
        limits(settings, prefix=[(3600, 2)])
        assert send(lc, phone="18612340001").json() == {}
        assert send(lc, phone="18612340002").json() == {}
        assert send(lc, phone="18612340003").json()["code"] == 601  # same range
        assert send(lc, phone="18612350003").json() == {}  # another range

    def test_fails_closed_when_the_cache_is_down(self, lc, signature, outbox, settings):
        settings.CACHES = {
            **settings.CACHES,
            "broken": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                       "LOCATION": "redis://127.0.0.1:1/0"},
        }
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RATE_LIMIT_CACHE": "broken"}
        response = send(lc)
        assert response.status_code == 503
        assert response.json()["code"] == 1
        assert outbox == [] and Message.objects.count() == 0


def _race(takers: int, take) -> int:
    """Run ``take`` in ``takers`` threads released together; count the winners."""
    barrier = threading.Barrier(takers)
    won: list[bool] = []

    def run():
        barrier.wait()
        try:
            take()
            won.append(True)
        except SendTooFastError:
            won.append(False)

    threads = [threading.Thread(target=run) for _ in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won.count(True)


def test_interval_limit_is_atomic_across_threads(db):
    """Many parallel takers, one winner (Redis in CI, locmem otherwise)."""
    caches["default"].delete("sms_service:rl:atomic-test")
    take = lambda: ratelimit.take_interval("atomic-test", 30, SendTooFastError)  # noqa: E731
    assert _race(20, take) == 1


def test_window_limit_is_atomic_across_threads(db):
    take = lambda: ratelimit.take_window("atomic-window", 3600, 5, SendTooFastError)  # noqa: E731
    assert _race(40, take) == 5
