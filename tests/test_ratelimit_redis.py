"""The django-redis engine of the sending limits: one Lua script per check_send.

Runs against the real Redis of ``CACHE_URL`` (CI sets it; locally they skip).
Instead of moving clocks (Redis keeps its own), the tests write the limit keys
straight into Redis, placed relative to Redis's ``TIME``, and compare the answer
with bounds computed from the server time read before and after the call.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from redis.connection import AbstractConnection

from sms_service.exceptions import (
    RateLimiterUnavailableError,
    SendTooFastError,
    SendTooFrequentError,
    SmsServiceError,
    TooManyRequestsError,
)
from sms_service.models import App
from sms_service.phone import PhoneNumber, parse_phone
from sms_service.services import ratelimit

pytestmark = pytest.mark.django_db

US = 1_000_000
IP = "10.0.0.1"
SIGNATURE_ID = 7


@pytest.fixture(autouse=True)
def require_django_redis() -> None:
    backend = django_settings.CACHES["default"]["BACKEND"]
    if backend != "django_redis.cache.RedisCache":
        reason = (f"needs django-redis as the default cache (CACHE_URL=redis://...), "
                  f"got {backend}")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Redis rate-limit tests: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def rate_limits(settings) -> dict:
    """Every kind of limit in play, with small numbers."""
    limits = {
        "app_number_interval": 10,
        "signature_number_interval": 60,
        "signature_number_daily": {"verification": 10, "notification": 15, "marketing": 15},
        "voice": [(30, 1), (3600, 3), (86400, 5)],
        "ip": [(60, 50), (86400, 500)],
        "prefix": [(3600, 20)],
    }
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RATE_LIMITS": limits,
                            "CODE_ONLY_LOOKUPS_PER_MINUTE": 3}
    return limits


@pytest.fixture
def redis():
    """The raw client the engine uses (same server, database and connection pool)."""
    return caches["default"].client.get_client(write=True)


@pytest.fixture
def phone() -> PhoneNumber:
    return parse_phone("18612345678")


def check(app: App, phone: PhoneNumber, *, channel: str = "sms",
          kind: str = "verification", client_ip: str | None = IP) -> None:
    ratelimit.check_send(app=app, phone=phone, channel=channel, kind=kind,
                         signature_id=SIGNATURE_ID, client_ip=client_ip)


def refusal(call: Callable[[], None]) -> SmsServiceError:
    with pytest.raises(SmsServiceError) as info:
        call()
    return info.value


def key(name: str) -> str:
    """A key as the engine names it (KEY_PREFIX and version applied)."""
    return str(caches["default"].make_key(name))


def app_interval(app: App, phone: PhoneNumber) -> str:
    return key(ratelimit.interval_key(f"app:{app.pk}:{phone.e164}"))


def signature_interval(app: App, phone: PhoneNumber) -> str:
    return key(ratelimit.interval_key(f"sig:{app.pk}:{SIGNATURE_ID}:{phone.e164}"))


def daily_log(app: App, phone: PhoneNumber, group: str = "verification") -> str:
    return key(ratelimit.rolling_key(f"sig:{app.pk}:{SIGNATURE_ID}:{phone.e164}:{group}"))


def window(name: str, seconds: int, number: int) -> str:
    return f"{key(ratelimit.window_key(name, seconds))}:{number}"


def server_now(redis) -> int:
    """Redis's clock, in microseconds."""
    seconds, micros = redis.time()
    return seconds * US + micros


def fill_log(redis, log_key: str, scores: list[int]) -> None:
    redis.zadd(log_key, {f"preset-{n}": score for n, score in enumerate(scores)})
    redis.expire(log_key, 86400)


def assert_retry_between(retry_after: int | None, earliest: int, latest: int) -> None:
    """``retry_after`` computed at some server time between two readings of it."""
    assert retry_after is not None
    assert earliest <= retry_after <= latest, (earliest, retry_after, latest)


class CommandCounter:
    """Counts what this process writes to Redis sockets: one write per round trip."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def wrap(self, original):
        counter = self

        def send_packed_command(conn, command, check_health=True):
            chunks = [command] if isinstance(command, (bytes, str)) else list(command)
            data = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
            counter.sent.append(data.split(b"\r\n")[2].upper())  # RESP: *n, $len, NAME
            return original(conn, command, check_health)

        return send_packed_command


@pytest.fixture
def sent_commands(monkeypatch) -> Iterator[list[bytes]]:
    counter = CommandCounter()
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        counter.wrap(AbstractConnection.send_packed_command))
    yield counter.sent


class TestOneRoundTrip:
    def test_every_limit_of_a_send_in_one_evalsha(self, app, phone, redis, sent_commands):
        check(app, parse_phone("18612340000"))  # loads the script, opens the connection
        sent_commands.clear()

        check(app, phone)  # 2 IP windows, prefix window, 2 intervals, rolling day

        assert sent_commands == [b"EVALSHA"]
        # ...and every limit was taken by it.
        assert redis.exists(app_interval(app, phone), signature_interval(app, phone)) == 2
        assert redis.zcard(daily_log(app, phone)) == 1

    def test_a_refused_send_is_one_round_trip_too(self, app, phone, sent_commands):
        check(app, phone)
        sent_commands.clear()
        assert isinstance(refusal(lambda: check(app, phone)), SendTooFastError)
        assert sent_commands == [b"EVALSHA"]

    def test_voice_in_one_round_trip(self, app, phone, sent_commands):
        check(app, parse_phone("18612340000"), channel="voice")
        sent_commands.clear()
        check(app, phone, channel="voice")
        assert sent_commands == [b"EVALSHA"]

    def test_keys_carry_the_cache_key_prefix(self, app, phone, redis):
        check(app, phone)
        prefix = django_settings.CACHES["default"]["KEY_PREFIX"]
        names = [name.decode() for name in redis.keys("*")]
        assert len(names) == 6
        assert all(name.startswith(f"{prefix}:") for name in names), names


class TestAllOrNothing:
    def test_refusal_by_the_last_limit_consumes_nothing(self, app, phone, redis):
        """The daily limit (checked last) refuses: no window counted, no interval started.

        Proof that nothing was taken: once the daily log is cleared, the very same
        send passes at once, which it could not if the 10-second interval had been
        started by the refused attempt.
        """
        now = server_now(redis)
        fill_log(redis, daily_log(app, phone), [now - (n + 1) * 3600 * US for n in range(10)])

        error = refusal(lambda: check(app, phone))
        assert isinstance(error, SendTooFrequentError) and error.code == 601

        assert redis.exists(app_interval(app, phone), signature_interval(app, phone)) == 0
        assert redis.keys(key(ratelimit.window_key(f"ip:{IP}", 60)) + ":*") == []
        assert redis.keys(key(ratelimit.window_key(f"prefix:{app.pk}:{phone.prefix}",
                                                   3600)) + ":*") == []
        assert redis.zcard(daily_log(app, phone)) == 10

        redis.delete(daily_log(app, phone))
        check(app, phone)  # not SendTooFastError: the refusal started no interval
        assert redis.exists(app_interval(app, phone)) == 1
        assert redis.zcard(daily_log(app, phone)) == 1
        ip_windows = redis.keys(key(ratelimit.window_key(f"ip:{IP}", 60)) + ":*")
        assert [int(redis.get(name)) for name in ip_windows] == [1]

    def test_a_window_refusal_leaves_other_windows_alone(self, app, phone, redis):
        """The per-prefix window is full: the per-IP windows before it are not counted."""
        prefix = f"prefix:{app.pk}:{phone.prefix}"
        current = server_now(redis) // (3600 * US)
        for number in (current, current + 1):  # also the next one, should the hour turn
            redis.set(window(prefix, 3600, number), 20, ex=7200)

        assert isinstance(refusal(lambda: check(app, phone)), SendTooFrequentError)
        assert [int(redis.get(window(prefix, 3600, n))) for n in (current, current + 1)] \
            == [20, 20]  # the refusing window itself is not counted either
        assert redis.keys(key(ratelimit.window_key(f"ip:{IP}", 60)) + ":*") == []
        assert redis.keys(key(ratelimit.window_key(f"ip:{IP}", 86400)) + ":*") == []
        assert redis.exists(app_interval(app, phone)) == 0

    def test_refused_sends_count_in_no_window(self, app, redis):
        """Unlike the generic engine, refusals do not fill the per-IP window."""
        numbers = [parse_phone(f"186123400{n:02d}") for n in range(5)]
        for number in numbers:
            check(app, number)
            for _ in range(3):
                refusal(lambda number=number: check(app, number))
        [name] = redis.keys(key(ratelimit.window_key(f"ip:{IP}", 60)) + ":*")
        assert int(redis.get(name)) == 5


class TestRetryAfter:
    def test_app_interval_answers_its_remaining_ttl(self, app, phone, redis):
        redis.set(app_interval(app, phone), 1, px=6500)
        error = refusal(lambda: check(app, phone))
        assert type(error) is SendTooFastError
        assert error.as_dict() == {"code": 1, "error": "SMS request too fast(1 request per 10s)."}
        assert error.retry_after == 7

    def test_signature_interval_answers_its_remaining_ttl(self, app, phone, redis):
        redis.set(signature_interval(app, phone), 1, px=42500)
        error = refusal(lambda: check(app, phone))
        assert type(error) is SendTooFrequentError
        assert error.as_dict() == {"code": 601, "error": "Can't send SMS too frequently."}
        assert error.retry_after == 43

    def test_app_interval_is_checked_before_the_signature_interval(self, app, phone, redis):
        redis.set(app_interval(app, phone), 1, px=3500)
        redis.set(signature_interval(app, phone), 1, px=53500)
        error = refusal(lambda: check(app, phone))
        assert type(error) is SendTooFastError and error.retry_after == 4

    def test_a_taken_interval_answers_its_full_length(self, app, phone):
        check(app, phone)
        error = refusal(lambda: check(app, phone))
        assert type(error) is SendTooFastError and error.retry_after == 10

    def test_window_answers_the_time_to_its_end(self, app, phone, redis):
        size = 86400 * US
        before = server_now(redis)
        for number in (before // size, before // size + 1):
            redis.set(window(f"ip:{IP}", 86400, number), 500, ex=2 * 86400)

        error = refusal(lambda: check(app, phone))
        after = server_now(redis)

        assert type(error) is SendTooFrequentError

        def to_end(at: int) -> int:
            return math.ceil(((at // size + 1) * size - at) / US)

        if before // size == after // size:
            assert_retry_between(error.retry_after, to_end(after), to_end(before))
        else:  # the day turned during the call
            assert_retry_between(error.retry_after, 1, 86400)

    def test_rolling_day_answers_when_its_oldest_entry_leaves(self, app, phone, redis):
        before = server_now(redis)
        oldest = before - 1000 * US - US // 2  # 1000.5 s ago
        fill_log(redis, daily_log(app, phone),
                 [oldest] + [before - n * 60 * US for n in range(1, 10)])

        error = refusal(lambda: check(app, phone))
        after = server_now(redis)

        assert type(error) is SendTooFrequentError
        assert_retry_between(error.retry_after,
                             math.ceil((oldest + 86400 * US - after) / US),
                             math.ceil((oldest + 86400 * US - before) / US))

    def test_rolling_day_over_its_limit_counts_from_the_tenth_newest(self, app, phone, redis):
        """More entries than the limit (e.g. the limit was lowered): wait for the 10th newest."""
        before = server_now(redis)
        scores = [before - n * 600 * US for n in range(1, 13)]  # 10, 20, ... 120 min ago
        fill_log(redis, daily_log(app, phone), scores)
        tenth_newest = scores[9]

        error = refusal(lambda: check(app, phone))
        after = server_now(redis)

        assert_retry_between(error.retry_after,
                             math.ceil((tenth_newest + 86400 * US - after) / US),
                             math.ceil((tenth_newest + 86400 * US - before) / US))

    def test_rolling_entries_older_than_a_day_no_longer_count(self, app, phone, redis):
        now = server_now(redis)
        fill_log(redis, daily_log(app, phone),
                 [now - 86401 * US] + [now - n * 600 * US for n in range(1, 10)])
        check(app, phone)  # nine in the last 24 h: the tenth passes
        assert redis.zcard(daily_log(app, phone)) == 10  # the old one was dropped

    def test_an_entry_near_the_end_of_the_day_still_counts(self, app, phone, redis):
        before = server_now(redis)
        oldest = before - 86397 * US  # leaves the day 3 s after ``before``
        fill_log(redis, daily_log(app, phone),
                 [oldest] + [before - n * 600 * US for n in range(1, 10)])

        error = refusal(lambda: check(app, phone))
        after = server_now(redis)

        assert_retry_between(error.retry_after,
                             math.ceil((oldest + 86400 * US - after) / US),
                             math.ceil((oldest + 86400 * US - before) / US))

    def test_notification_and_marketing_share_a_log(self, app, phone, redis):
        now = server_now(redis)
        fill_log(redis, daily_log(app, phone, "notification"),
                 [now - n * 600 * US for n in range(1, 16)])
        check(app, phone, kind="verification")  # its own log
        redis.delete(app_interval(app, phone), signature_interval(app, phone))
        assert type(refusal(lambda: check(app, phone, kind="marketing"))) is SendTooFrequentError

    def test_voice_hour_answers_when_its_oldest_call_leaves(self, app, phone, redis):
        log = key(ratelimit.rolling_key(f"voice:{app.pk}:{phone.e164}"))
        before = server_now(redis)
        oldest = before - 600 * US - US // 2
        fill_log(redis, log, [oldest, before - 300 * US, before - 100 * US])

        error = refusal(lambda: check(app, phone, channel="voice"))
        after = server_now(redis)

        assert type(error) is SendTooFrequentError
        assert_retry_between(error.retry_after,
                             math.ceil((oldest + 3600 * US - after) / US),
                             math.ceil((oldest + 3600 * US - before) / US))

    def test_voice_day_answers_when_its_oldest_call_leaves(self, app, phone, redis):
        log = key(ratelimit.rolling_key(f"voice:{app.pk}:{phone.e164}"))
        before = server_now(redis)
        oldest = before - 20 * 3600 * US - US // 2
        # Five in the day, only two in the last hour: the day refuses.
        fill_log(redis, log, [oldest] + [before - h * 3600 * US for h in (10, 5, 2)]
                 + [before - 60 * US])

        error = refusal(lambda: check(app, phone, channel="voice"))
        after = server_now(redis)

        assert_retry_between(error.retry_after,
                             math.ceil((oldest + 86400 * US - after) / US),
                             math.ceil((oldest + 86400 * US - before) / US))

    def test_voice_hour_forgets_a_call_just_over_an_hour_old(self, app, phone, redis):
        log = key(ratelimit.rolling_key(f"voice:{app.pk}:{phone.e164}"))
        now = server_now(redis)
        fill_log(redis, log, [now - 3602 * US, now - 300 * US, now - 100 * US])
        check(app, phone, channel="voice")  # two in the last hour (the day keeps all three)
        assert redis.zcard(log) == 4

    def test_voice_interval(self, app, phone):
        check(app, phone, channel="voice")
        error = refusal(lambda: check(app, phone, channel="voice"))
        assert type(error) is SendTooFrequentError and error.retry_after == 30

    def test_sms_and_voice_share_the_per_signature_minute(self, app, phone, redis):
        check(app, phone)
        error = refusal(lambda: check(app, phone, channel="voice"))
        assert type(error) is SendTooFrequentError and error.retry_after == 60
        # All or nothing: the refused call took none of its own limits.
        assert not redis.exists(key(ratelimit.interval_key(f"voice:{app.pk}:{phone.e164}")))

    def test_voice_then_sms_is_too_fast(self, app, phone, redis):
        check(app, phone, channel="voice")
        assert redis.exists(app_interval(app, phone), signature_interval(app, phone)) == 2
        assert type(refusal(lambda: check(app, phone))) is SendTooFastError


class TestPublicPrimitives:
    """take_* keep working on Redis, through the same script."""

    def test_take_interval(self):
        name = f"test-{uuid.uuid4().hex}"
        ratelimit.take_interval(name, 30, SendTooFastError)
        error = refusal(lambda: ratelimit.take_interval(name, 30, SendTooFastError))
        assert type(error) is SendTooFastError and error.retry_after == 30

    def test_take_window(self):
        name = f"test-{uuid.uuid4().hex}"
        for _ in range(3):
            ratelimit.take_window(name, 86400, 3, SendTooFrequentError)
        error = refusal(lambda: ratelimit.take_window(name, 86400, 3, SendTooFrequentError))
        assert type(error) is SendTooFrequentError and 1 <= error.retry_after <= 86400

    def test_take_rolling(self, redis):
        name = f"test-{uuid.uuid4().hex}"
        for _ in range(2):
            ratelimit.take_rolling(name, [(3600, 2)], SendTooFrequentError)
        error = refusal(lambda: ratelimit.take_rolling(name, [(3600, 2)], SendTooFrequentError))
        assert 3599 <= error.retry_after <= 3600
        assert redis.zcard(key(ratelimit.rolling_key(name))) == 2

    def test_take_code_lookup(self, app):
        for _ in range(3):
            ratelimit.take_code_lookup(app=app, purpose="login")
        assert type(refusal(lambda: ratelimit.take_code_lookup(app=app, purpose="login"))) \
            is TooManyRequestsError


def test_one_of_30_concurrent_sends_passes(app, phone, redis):
    """Many parallel takers on the whole check: 30 threads, one number, one winner, one count."""
    barrier = threading.Barrier(30)
    results: list[type[BaseException] | None] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            check(app, phone)
            outcome = None
        except SmsServiceError as exc:
            outcome = type(exc)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(None) == 1
    assert results.count(SendTooFastError) == 29
    # All-or-nothing: the 29 refusals left no trace in the shared windows.
    [name] = redis.keys(key(ratelimit.window_key(f"ip:{IP}", 60)) + ":*")
    assert int(redis.get(name)) == 1
    assert redis.zcard(daily_log(app, phone)) == 1


@pytest.mark.parametrize("ignore_exceptions", [False, True])
def test_redis_down_fails_closed(app, phone, settings, ignore_exceptions):
    """A closed port: the send is refused, even with django-redis's IGNORE_EXCEPTIONS."""
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1,
                        "IGNORE_EXCEPTIONS": ignore_exceptions},
        },
    }
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RATE_LIMIT_CACHE": "broken"}
    with pytest.raises(RateLimiterUnavailableError):
        check(app, phone)
    with pytest.raises(RateLimiterUnavailableError):
        ratelimit.take_code_lookup(app=app, purpose="login")


def test_the_api_answers_with_code_and_retry_after(lc, signature, redis):
    """End to end through requestSmsCode: the same body and header as the generic engine."""
    body = {"mobilePhoneNumber": "18612345678"}
    assert lc.post("/1.1/requestSmsCode", body).json() == {}
    response = lc.post("/1.1/requestSmsCode", body)
    assert response.json() == {"code": 1, "error": "SMS request too fast(1 request per 10s)."}
    assert response["Retry-After"] == "10"
