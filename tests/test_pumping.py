"""SMS pumping defence: ranges whose codes are never verified are held back,
real users keep receiving codes, operators see and undo what it did."""

from __future__ import annotations

import os
import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from sms_service import signals
from sms_service.exceptions import CountryNotAllowedError, SendingHeldBackError
from sms_service.models import Message, PumpingBlock
from sms_service.services import codes, pumping, sending

pytestmark = pytest.mark.django_db

ATTACKED_RANGE = "+447400"  # +44 7400 xxxxxx: the RANGE_DIGITS=6 default


@pytest.fixture
def defended(app, signature, settings):
    """An app with an owner address and thresholds small enough for a test."""
    app.owner_email = "owner@example.com"
    app.save()
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "ALLOWED_REGIONS": ["CN", "GB"],
        "PUMPING_DEFENCE": {"RANGE_MIN_VOLUME": 20, "COUNTRY_MIN_VOLUME": 200,
                            "BASELINE_MIN_VOLUME": 10, "MAX_RATIO": 0.25,
                            "RANGE_DIGITS": 6, "WINDOW_SECONDS": 3600,
                            "BUCKET_SECONDS": 300, "BASELINE_SECONDS": 86400,
                            "DEFAULT_BASELINE": 0.6},
    }
    app.allow_international = True
    app.save()
    return app


def request(app, phone: str, ip: str, captured) -> Message:
    with captured(execute=True):
        return sending.request_sms(
            app=app, request=sending.SmsRequest(phone=phone, client_ip=ip))


def sent_code(outbox, phone: str) -> str:
    body = next(m.body for m in reversed(outbox) if m.to == phone)
    return re.search(r"\d{6}", body).group(0)


def good_users(app, outbox, captured, *, start: int, count: int) -> int:
    """Real users in mainland China: each requests a code and types it in.
    Returns how many were refused."""
    refused = 0
    for i in range(start, start + count):
        phone = f"+86139{i:04d}{(i * 7919) % 10000:04d}"
        try:
            request(app, phone, f"10.1.{i // 250}.{i % 250}", captured)
        except SendingHeldBackError:
            refused += 1
            continue
        codes.verify_code(app=app, phone=phone, purpose="generic",
                          code=sent_code(outbox, phone))
    return refused


def attack(app, captured, *, count: int, start: int = 0) -> tuple[int, int]:
    """Bots request codes to one range from many IPs; nobody verifies.
    Returns (sent, refused)."""
    sent = refused = 0
    for i in range(start, start + count):
        try:
            request(app, f"{ATTACKED_RANGE}{(i * 7717) % 1000000:06d}", f"172.16.{i // 250}.{i % 250}",
                    captured)
            sent += 1
        except SendingHeldBackError:
            refused += 1
    return sent, refused


def test_an_attack_on_a_range_stops_itself_and_real_users_keep_going(
        defended, outbox, django_capture_on_commit_callbacks) -> None:
    captured = django_capture_on_commit_callbacks
    fired = []
    signals.pumping_blocked.connect(lambda **kw: fired.append(kw), weak=False,
                                    dispatch_uid="test-pumping")
    try:
        assert good_users(defended, outbox, captured, start=0, count=20) == 0
        sent, refused = attack(defended, captured, count=60)
        assert good_users(defended, outbox, captured, start=100, count=20) == 0
    finally:
        signals.pumping_blocked.disconnect(dispatch_uid="test-pumping")

    assert sent == 20 and refused == 40  # held back from the 21st request on
    block = PumpingBlock.objects.get()
    assert (block.scope, block.value, block.refused) == ("range", ATTACKED_RANGE, 40)
    assert "0 of 20 codes" in block.reason and "100%" in block.reason
    assert [kw["block"] for kw in fired] == [block]
    (notice,) = mail.outbox
    assert notice.to == ["owner@example.com"] and ATTACKED_RANGE in notice.subject


def test_the_refusal_is_a_clear_leancloud_error(defended, outbox, django_capture_on_commit_callbacks,
                                                lc) -> None:
    attack(defended, django_capture_on_commit_callbacks, count=20)

    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": f"{ATTACKED_RANGE}123456"})

    assert response.status_code == 400
    assert response.json()["code"] == 119
    assert "held back" in response.json()["error"]


def test_a_range_whose_codes_are_verified_is_never_blocked(
        defended, outbox, django_capture_on_commit_callbacks) -> None:
    captured = django_capture_on_commit_callbacks
    for i in range(40):
        phone = f"{ATTACKED_RANGE}{i * 1301:06d}"
        request(defended, phone, f"172.16.0.{i}", captured)
        codes.verify_code(app=defended, phone=phone, purpose="generic",
                          code=sent_code(outbox, phone))
    assert not PumpingBlock.objects.exists()


def test_lifting_a_block_lets_sends_through_again(
        defended, outbox, django_capture_on_commit_callbacks, admin_client) -> None:
    captured = django_capture_on_commit_callbacks
    attack(defended, captured, count=21)
    block = PumpingBlock.objects.get()

    response = admin_client.post(reverse("admin:sms_service_pumpingblock_changelist"),
                                 {"action": "lift_blocks", "_selected_action": [block.pk]})

    assert response.status_code == 302
    block.refresh_from_db()
    assert block.lifted_at is not None and block.lifted_by.username == "admin"
    # The counts that caused it are forgotten, so the next send goes out.
    request(defended, f"{ATTACKED_RANGE}999999", "172.20.0.1", captured)
    assert PumpingBlock.objects.active().count() == 0


def test_the_dashboard_and_the_app_page_show_a_banner(
        defended, django_capture_on_commit_callbacks, admin_client) -> None:
    attack(defended, django_capture_on_commit_callbacks, count=20)

    for url in (reverse("admin:sms_service_dashboard"),
                reverse("admin:sms_service_app_change", args=[defended.pk])):
        page = admin_client.get(url).content.decode()
        assert f"sends to {ATTACKED_RANGE} are held back" in page
    # An administrator who reads Chinese gets the banner in Chinese.
    page = admin_client.get(reverse("admin:sms_service_dashboard"),
                            headers={"accept-language": "zh-hans"}).content.decode()
    assert f"发往 {ATTACKED_RANGE} 的短信已被暂停" in page


def test_a_project_sets_only_the_keys_it_changes(
        defended, outbox, django_capture_on_commit_callbacks, settings) -> None:
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "PUMPING_DEFENCE": {"RANGE_MIN_VOLUME": 5}}
    sent, refused = attack(defended, django_capture_on_commit_callbacks, count=8)
    assert (sent, refused) == (5, 3)


def test_the_defence_can_be_switched_off_per_app(
        defended, outbox, django_capture_on_commit_callbacks) -> None:
    defended.pumping_defence = False
    defended.save()
    sent, refused = attack(defended, django_capture_on_commit_callbacks, count=30)
    assert (sent, refused) == (30, 0)


def test_an_app_can_tune_its_thresholds(defended, outbox, django_capture_on_commit_callbacks) -> None:
    defended.pumping_settings = {"RANGE_MIN_VOLUME": 50}
    defended.save()
    sent, refused = attack(defended, django_capture_on_commit_callbacks, count=60)
    assert (sent, refused) == (50, 10)


def test_geo_permissions_narrow_the_coverage_list(defended, django_capture_on_commit_callbacks) -> None:
    defended.allowed_countries = ["CN"]
    defended.save()

    with pytest.raises(CountryNotAllowedError, match="GB"):
        request(defended, f"{ATTACKED_RANGE}000001", "172.16.0.1",
                django_capture_on_commit_callbacks)
    assert not Message.objects.exists()
    request(defended, "+8613900001111", "172.16.0.1", django_capture_on_commit_callbacks)


def test_a_broken_counter_cache_never_fails_a_send(
        defended, outbox, django_capture_on_commit_callbacks, settings) -> None:
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "PUMPING_CACHE": "no-such-cache"}

    message = request(defended, "+8613900001111", "172.16.0.1", django_capture_on_commit_callbacks)

    assert message.pk and len(outbox) == 1


# --- counting in the sending limits' round trip (Redis) -------------------------------


@pytest.fixture
def on_redis(settings):
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the Redis counting tests (CACHE_URL)", pytrace=False)
        pytest.skip("needs Redis as the cache (set CACHE_URL)")


@pytest.fixture
def redis_commands(monkeypatch) -> list[str]:
    """The Redis commands this process sends (their names)."""
    import redis.connection

    sent: list[str] = []
    real = redis.connection.AbstractConnection.send_packed_command

    def send(self, command, *args, **kwargs):
        chunks = command if isinstance(command, list | tuple) else [command]
        sent.extend(n.decode().upper() for n in re.findall(
            rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)", b"".join(bytes(c) for c in chunks)))
        return real(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    return sent


def range_share(app, phone: str) -> pumping.Share:
    config = pumping.settings_for(app)
    return pumping.share(app=app, scope=PumpingBlock.Scope.RANGE,
                         value=pumping.number_range(phone, config),
                         seconds=int(config["WINDOW_SECONDS"]),
                         slice_seconds=int(config["BUCKET_SECONDS"]))


def test_a_send_is_counted_in_the_round_trip_of_its_limits(
        defended, on_redis, redis_commands, django_capture_on_commit_callbacks) -> None:
    phone = "+8613900002222"
    with django_capture_on_commit_callbacks(execute=False):  # delivery aside
        sending.request_sms(app=defended, request=sending.SmsRequest(  # warms the caches
            phone="+8613700001234", client_ip="172.16.0.9"))
        redis_commands.clear()
        sending.request_sms(app=defended, request=sending.SmsRequest(phone=phone,
                                                                     client_ip="172.16.0.9"))
    # The sending limits and the pumping counters: one script, one round trip.
    assert redis_commands == ["EVALSHA"], redis_commands
    assert range_share(defended, phone).sent == 1


def test_a_send_refused_after_its_limits_is_not_counted(
        defended, on_redis, django_capture_on_commit_callbacks) -> None:
    from sms_service.exceptions import InsufficientBalanceError
    from tests.billing_support import set_price

    set_price("0.05")  # and the app has no money
    phone = "+8613900003333"
    with pytest.raises(InsufficientBalanceError):
        request(defended, phone, "172.16.0.10", django_capture_on_commit_callbacks)
    # Counted with the limits, taken back when the hold was refused.
    assert range_share(defended, phone).sent == 0
    assert not Message.objects.filter(phone=phone).exists()


def test_counters_on_another_cache_are_counted_after_the_send(
        defended, on_redis, redis_commands, django_capture_on_commit_callbacks,
        settings) -> None:
    settings.CACHES = {**settings.CACHES, "pumping": settings.CACHES["default"]}
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "PUMPING_CACHE": "pumping"}
    phone = "+8613900004444"
    with django_capture_on_commit_callbacks(execute=False):
        sending.request_sms(app=defended, request=sending.SmsRequest(  # warms the caches
            phone="+8613700001234", client_ip="172.16.0.11"))
        redis_commands.clear()
        sending.request_sms(app=defended, request=sending.SmsRequest(phone=phone,
                                                                     client_ip="172.16.0.11"))
    assert redis_commands == ["EVALSHA", "EVALSHA"], redis_commands
    assert range_share(defended, phone).sent == 1


# --- verified counts held for the next send (Redis) -------------------------------------


@pytest.fixture
def held_for(settings):
    """Sets how long a verify's counts wait in the process."""
    def hold(seconds: float) -> None:
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "VERIFIED_COUNT_DELAY_SECONDS": seconds}
    return hold


def send_and_verify(app, outbox, phone: str, ip: str, captured) -> None:
    request(app, phone, ip, captured)
    codes.verify_code(app=app, phone=phone, purpose="generic", code=sent_code(outbox, phone))


def test_a_verify_is_counted_by_the_next_send_of_its_process(
        defended, on_redis, held_for, outbox, redis_commands,
        django_capture_on_commit_callbacks) -> None:
    captured = django_capture_on_commit_callbacks
    held_for(30)
    phone = "+8613900005555"
    send_and_verify(defended, outbox, phone, "172.16.1.1", captured)
    # The verify itself made no Redis round trip: its counts wait here.
    assert range_share(defended, phone).verified == 0
    redis_commands.clear()

    request(defended, "+8613900005556", "172.16.1.2", captured)

    assert redis_commands.count("EVALSHA") == 1, redis_commands
    assert range_share(defended, phone) == pumping.Share(sent=2, verified=1)


@pytest.mark.parametrize(("delay", "commands", "verified"), [
    (30, [], 0),  # held for the next send: no round trip
    (0, ["EVALSHA"], 1),  # no delay: counted at once, in a round trip of its own
])
def test_a_verify_s_own_redis_round_trips(
        defended, on_redis, held_for, outbox, redis_commands,
        django_capture_on_commit_callbacks, delay, commands, verified) -> None:
    held_for(delay)
    phone = f"+86139000{delay:02d}666"
    request(defended, phone, "172.16.1.3", django_capture_on_commit_callbacks)
    redis_commands.clear()
    codes.verify_code(app=defended, phone=phone, purpose="generic", code=sent_code(outbox, phone))
    assert redis_commands == commands
    assert range_share(defended, phone) == pumping.Share(sent=1, verified=verified)


def test_held_counts_are_written_after_the_delay_without_a_send(
        defended, on_redis, held_for, outbox, django_capture_on_commit_callbacks) -> None:
    held_for(0.05)
    phone = "+8613900007777"
    send_and_verify(defended, outbox, phone, "172.16.1.4", django_capture_on_commit_callbacks)
    # Written by the process's own thread; waited for, up to ten seconds.
    deadline = time.monotonic() + 10
    while range_share(defended, phone).verified == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert range_share(defended, phone) == pumping.Share(sent=1, verified=1)


def test_a_send_refused_by_a_limit_keeps_the_counts_it_carried(
        defended, on_redis, held_for, outbox, django_capture_on_commit_callbacks) -> None:
    from sms_service.exceptions import SendTooFastError

    captured = django_capture_on_commit_callbacks
    held_for(30)
    phone = "+8613900008888"
    send_and_verify(defended, outbox, phone, "172.16.1.5", captured)
    with pytest.raises(SendTooFastError):  # the same number at once
        request(defended, phone, "172.16.1.5", captured)
    assert range_share(defended, phone).verified == 0
    pumping.pending.write()
    # Neither lost with the refused send nor counted twice.
    assert range_share(defended, phone) == pumping.Share(sent=1, verified=1)


def test_a_forked_process_starts_with_nothing_held(held_for) -> None:
    import multiprocessing

    held_for(30)
    pumping.pending.add(["sms_service:pumping:test:verified:app:all:1"], 60)
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(1) as pool:
            assert pool.apply(_held_here) == {}
        assert pumping.pending.take() == {"sms_service:pumping:test:verified:app:all:1": (1, 60)}
    finally:
        pumping.pending.discard()


def _held_here() -> dict:
    return pumping.pending.take()


def test_an_attack_spread_over_the_window_is_counted_whole(
        defended, on_redis, clock, django_capture_on_commit_callbacks) -> None:
    # Twenty unverified codes over twenty minutes: four of the window's buckets,
    # three of them already past (their sums are read once and kept) when the
    # 21st request comes.
    sent = 0
    for minute in range(20):
        clock.shift(60)
        sent += attack(defended, django_capture_on_commit_callbacks, count=1, start=minute)[0]
    assert sent == 20
    clock.shift(60)
    assert attack(defended, django_capture_on_commit_callbacks, count=1, start=20) == (0, 1)
    assert range_share(defended, f"{ATTACKED_RANGE}000000").sent == 20


def test_a_lifted_block_forgets_counts_of_earlier_buckets_too(
        defended, on_redis, clock, django_capture_on_commit_callbacks) -> None:
    captured = django_capture_on_commit_callbacks
    assert attack(defended, captured, count=19) == (19, 0)
    clock.shift(300)  # the 20th code, in the next bucket, starts a block
    assert attack(defended, captured, count=1, start=19) == (1, 0)
    assert pumping.lift(block=PumpingBlock.objects.get())

    # The earlier bucket's 19 codes are forgotten with the rest: one code is
    # far from the 20 a range needs before it is judged.
    assert attack(defended, captured, count=1, start=20) == (1, 0)
    assert not PumpingBlock.objects.active().exists()


def test_codes_older_than_the_window_no_longer_count(
        defended, on_redis, clock, django_capture_on_commit_callbacks) -> None:
    captured = django_capture_on_commit_callbacks
    assert attack(defended, captured, count=15) == (15, 0)
    clock.shift(300)  # the next bucket: the first one's sum is now kept
    assert attack(defended, captured, count=1, start=15) == (1, 0)
    clock.shift(3600)  # all of them out of the range's hour
    # Ten more: 10 in the window, under the range's minimum volume of 20.
    assert attack(defended, captured, count=10, start=16) == (10, 0)
    assert not PumpingBlock.objects.exists()
    assert range_share(defended, f"{ATTACKED_RANGE}000000").sent == 10


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client
