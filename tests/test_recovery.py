"""A worker that dies, or a provider reply that never comes, loses no code.

* a claim whose provider call never started is sent again by the next sweep,
  seconds later, and charged once;
* a worker that stalls past its claim and wakes up sends nothing;
* an "unknown" verification code is looked up at the provider (the fake Twilio
  server over HTTP): accepted when Twilio has it, sent again when it has not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from sms_service.backends import get_backend
from sms_service.backends.locmem import outbox as sent
from sms_service.crypto import encrypt
from sms_service.models import Message, MessageStatus
from sms_service.services import outbox, receipts, recovery
from tests.billing_support import bill, funded_app, held, held_message
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.test_backend_twilio import TO_NUMBER, _options, sms

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "【Demo】Your code is 123456."


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even except clauses."""


def code_message(app, *, backend: str = "default", cost: str = "2") -> Message:
    """A held verification code, queued, as request_sms leaves it."""
    message = held_message(app, cost=cost)
    Message.objects.filter(pk=message.pk).update(
        phone=TO_NUMBER, payload=encrypt(TEXT), body=TEXT.replace("123456", "******"),
        backend=backend, provider="",
    )
    message.refresh_from_db()
    return message


def die_before_the_call(monkeypatch) -> None:
    """The worker dies after its claim, while building the provider request."""
    def killed(message, backend=None):
        raise WorkerKilled()

    monkeypatch.setattr(outbox, "_outgoing", killed)


# --- a claim abandoned before the provider call --------------------------------


def test_a_claim_that_never_reached_the_provider_is_sent_again_and_charged_once(
        monkeypatch, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "STUCK_CLAIMED_AFTER_SECONDS": 10}
    app = funded_app("10")
    message = code_message(app)
    with monkeypatch.context() as patch:
        die_before_the_call(patch)
        with pytest.raises(WorkerKilled):
            outbox.deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENDING and message.call_started_at is None
    # The broker's redelivery of the same task is refused by the claim.
    assert outbox.deliver(message_id=message.pk) == "skipped"
    assert sent == []

    start = timezone.now()
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        assert recovery.redispatch_stuck()["requeued"] == 0  # the claim may be alive
    with time_machine.travel(start + timedelta(seconds=11), tick=False):
        assert recovery.redispatch_stuck()["requeued"] == 1  # seconds, not minutes
        assert recovery.redispatch_stuck()["requeued"] == 0
    assert [m.message_id for m in sent] == [message.pk]  # sent once
    assert sent[0].body == TEXT
    message.refresh_from_db()
    app.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED  # the locmem provider is final at once
    assert message.attempts == 2
    assert (app.balance, held(app), bill(app)) == (8, 0, 2)  # charged once


def test_a_request_that_dies_before_delivering_at_commit_is_sent_again_once(
        monkeypatch, settings):
    """With ``ASYNC`` off the message is written claimed by the request that
    delivers it: if that process dies before the provider call, the message
    is an abandoned claim, sent again by the sweep and charged once."""
    from sms_service.models import Signature
    from sms_service.services.sending import SmsRequest, request_sms
    from tests.billing_support import set_price

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ASYNC": False,
                            "STUCK_CLAIMED_AFTER_SECONDS": 10,
                            "PUMPING_DEFENCE": {"ENABLED": False}}
    set_price("2")
    app = funded_app("10")
    Signature.objects.create(app=app, name="Demo", text="Demo", status="approved",
                             is_default=True)
    with monkeypatch.context() as patch:
        die_before_the_call(patch)
        with pytest.raises(WorkerKilled):
            request_sms(app=app, request=SmsRequest(phone="+8613800138000"))
    message = Message.objects.get(phone="+8613800138000")
    assert (message.status, message.attempts, message.call_started_at) == (
        MessageStatus.SENDING, 1, None)
    assert sent == []

    start = timezone.now()
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        assert recovery.redispatch_stuck()["requeued"] == 0  # the request may be alive
    with time_machine.travel(start + timedelta(seconds=11), tick=False):
        assert recovery.redispatch_stuck()["requeued"] == 1
        assert recovery.redispatch_stuck()["requeued"] == 0
    assert [m.message_id for m in sent] == [message.pk]  # sent once
    message.refresh_from_db()
    app.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert (app.balance, held(app), bill(app)) == (8, 0, 2)  # charged once


def test_a_stalled_worker_whose_claim_was_released_sends_nothing(monkeypatch, settings):
    """Worker A claims, stalls past STUCK_CLAIMED_AFTER_SECONDS; the sweep gives the
    message to worker B, which sends it; A wakes up and must not send it again."""
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "STUCK_CLAIMED_AFTER_SECONDS": 0}
    app = funded_app("10")
    message = code_message(app)
    real_outgoing = outbox._outgoing
    stalled = []

    def stall_then_continue(row, backend=None):
        if not stalled:  # worker A, while it stalls: the sweep and worker B run
            stalled.append(row.pk)
            assert recovery.redispatch_stuck()["requeued"] == 1
        return real_outgoing(row, backend)

    monkeypatch.setattr(outbox, "_outgoing", stall_then_continue)
    assert outbox.deliver(message_id=message.pk) == "skipped"  # worker A
    assert [m.message_id for m in sent] == [message.pk]  # worker B's send only
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_rows_whose_call_started_become_unknown_not_resent(settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "STUCK_SENDING_AFTER_SECONDS": 60}
    app = funded_app("10")
    message = code_message(app)
    long_ago = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENDING, attempts=1, call_started_at=long_ago, updated_at=long_ago)
    assert recovery.redispatch_stuck() == {"requeued": 0, "unknown": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
    assert sent == []  # the locmem backend cannot be asked: left for receipts


# --- unknown codes looked up at Twilio ------------------------------------------


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as fake:
        yield fake


@pytest.fixture
def twilio_settings(fake_twilio):
    config = {
        "BACKENDS": {
            "default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
            "twilio": {"BACKEND": "sms_service.backends.twilio.TwilioBackend",
                       "OPTIONS": _options(fake_twilio, TIMEOUT=(2, 0.5))},
        },
        "RESOLVE_UNKNOWN_AFTER_SECONDS": 10,
        "ASYNC": False,
    }
    with override_settings(SMS_SERVICE=config):
        yield


def _after_resolve_delay():
    return time_machine.travel(timezone.now() + timedelta(seconds=11), tick=False)


@pytest.mark.usefixtures("twilio_settings")
def test_an_unknown_code_twilio_has_is_accepted_without_a_second_send(fake_twilio):
    fake_twilio.inject("delay", seconds=30)  # Twilio takes it, the reply never comes
    app = funded_app("10")
    message = code_message(app, backend="twilio")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.UNKNOWN
    assert recovery.redispatch_stuck()["requeued"] == 0  # not yet: Twilio may be busy

    with _after_resolve_delay():
        assert recovery.redispatch_stuck()["requeued"] == 0
    message.refresh_from_db()
    assert message.status == MessageStatus.ACCEPTED
    (sid,) = fake_twilio.resources
    assert message.provider_message_id == sid
    assert message.payload is None  # the code is wiped once Twilio has it
    assert len(fake_twilio.posts) == 1  # never sent twice
    lists = [r for r in fake_twilio.requests if r.method == "GET"]
    assert len(lists) == 1 and "To=%2B8618612345678" in lists[0].path


@pytest.mark.usefixtures("twilio_settings")
def test_an_unknown_code_twilio_never_got_is_sent_again_and_charged_once(fake_twilio):
    fake_twilio.inject("reset")  # the connection dies; Twilio created nothing
    app = funded_app("10")
    message = code_message(app, backend="twilio")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.UNKNOWN
    assert fake_twilio.resources == {}

    with _after_resolve_delay():
        assert recovery.redispatch_stuck()["requeued"] == 1
        assert recovery.redispatch_stuck()["requeued"] == 0
    message.refresh_from_db()
    assert message.status == MessageStatus.ACCEPTED
    (sid,) = fake_twilio.resources
    assert fake_twilio.resources[sid]["body"] == TEXT
    assert len(fake_twilio.posts) == 2  # the lost request and the one resend
    fake_twilio.set_status(sid, "delivered")
    backend = get_backend("twilio")
    receipts.apply_report(backend.poll_status(sid), provider="twilio")
    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (8, 0, 2)


@pytest.mark.usefixtures("twilio_settings")
def test_twilio_unreachable_leaves_the_code_unknown_for_the_next_pass(fake_twilio):
    fake_twilio.inject("reset")
    app = funded_app("10")
    message = code_message(app, backend="twilio")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.UNKNOWN
    fake_twilio.stop()  # nobody to ask: no guessing
    with _after_resolve_delay():
        assert recovery.redispatch_stuck()["requeued"] == 0
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN


def test_find_sent_matches_number_time_and_text(fake_twilio):
    from sms_service.backends.twilio import TwilioBackend

    backend = TwilioBackend(alias="twilio", **_options(fake_twilio))
    try:
        since = timezone.now()
        other = backend.send(sms(body="【Demo】Your code is 654321."))  # another code
        assert backend.find_sent(sms(), since=since) is None
        mine = backend.send(sms())
        backend.send(sms(to="+8618612345679"))  # the same text to someone else
        found = backend.find_sent(sms(), since=since)
        assert found is not None and found.provider_message_id == mine.provider_message_id
        # Made before the call started (beyond the clock-skew allowance): not it.
        assert backend.find_sent(sms(), since=since + timedelta(minutes=10)) is None
        assert other.provider_message_id != mine.provider_message_id
    finally:
        backend.close()
