"""The outbox: lifecycle, retries, at-most-once claims, redispatch."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from sms_service.backends.base import BaseSmsBackend, SendResult
from sms_service.crypto import encrypt
from sms_service.exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
)
from sms_service.models import Message, MessageStatus
from sms_service.services import outbox, receipts, recovery

pytestmark = pytest.mark.django_db

#: What the scripted backend does on its next calls ("ok", "temporary", ...).
script: list[str] = []
calls: list[str] = []


class ScriptedBackend(BaseSmsBackend):
    """A provider whose answers the test decides, one per call."""

    provider_name = "scripted"

    def build_payload(self, message):
        return message.body

    def post_to_provider(self, message, payload):
        calls.append(payload)
        action = script.pop(0) if script else "ok"
        if action == "temporary":
            raise ProviderTemporaryError("503 from provider")
        if action == "rejected":
            raise ProviderRejectedError("invalid number", provider_code="21211")
        if action == "unknown":
            raise ProviderOutcomeUnknownError("read timeout after sending")
        return f"prov-{len(calls)}"

    def parse_response(self, message, payload, response):
        return SendResult(provider_message_id=response, status="accepted")


@pytest.fixture(autouse=True)
def scripted(settings):
    script.clear()
    calls.clear()
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "BACKENDS": {"default": {"BACKEND": f"{__name__}.ScriptedBackend"}},
        "ASYNC": False,
    }


@pytest.fixture
def message(app):
    return Message.objects.create(app=app, phone="+8618612345678", body="【Demo】hello",
                                  payload=encrypt("【Demo】hello"), kind="notification")


def statuses(message):
    return list(message.events.values_list("status", flat=True))


def test_accepted_then_receipt_delivered(message):
    assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED
    message.refresh_from_db()
    assert message.provider == "scripted" and message.provider_message_id == "prov-1"
    assert message.payload is None and message.sent_at is not None
    from sms_service.backends.base import DeliveryReport

    report = DeliveryReport(provider_message_id="prov-1", status="delivered")
    receipts.apply_report(report, provider="scripted")
    receipts.apply_report(report, provider="scripted")  # a replay changes nothing
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert statuses(message).count(MessageStatus.DELIVERED) == 1


def test_delivery_runs_at_most_once_per_message(message):
    outbox.deliver(message_id=message.pk)
    assert outbox.deliver(message_id=message.pk) == "skipped"  # a redelivered task
    assert len(calls) == 1


def test_temporary_error_requeues_with_backoff(message):
    script.append("temporary")
    with pytest.raises(ProviderTemporaryError) as exc:
        outbox.deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at is not None
    assert 1 <= exc.value.retry_after <= 2
    assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED
    message.refresh_from_db()
    assert message.attempts == 2


def test_gives_up_after_max_retries(message, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "MAX_RETRIES": 2}
    script.extend(["temporary"] * 3)
    for _ in range(2):
        with pytest.raises(ProviderTemporaryError):
            outbox.deliver(message_id=message.pk)
    assert outbox.deliver(message_id=message.pk) == MessageStatus.FAILED
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.payload is None


def test_permanent_rejection_fails_without_retry(message):
    script.append("rejected")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.FAILED
    message.refresh_from_db()
    assert message.error_code == "21211"
    assert len(calls) == 1


def test_ambiguous_outcome_is_unknown_and_never_resent(message):
    script.append("unknown")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.UNKNOWN
    assert recovery.redispatch_stuck() == {"requeued": 0, "unknown": 0}
    assert outbox.deliver(message_id=message.pk) == "skipped"
    assert len(calls) == 1


def test_retry_delays_grow_and_are_capped(settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RETRY_BACKOFF_MAX": 600}
    assert all(1 <= outbox.retry_delay(1) <= 2 for _ in range(50))
    assert max(outbox.retry_delay(5) for _ in range(200)) > 2
    assert all(outbox.retry_delay(30) <= 600 for _ in range(50))


def test_redispatch_sends_rows_a_broker_outage_left_queued(message):
    Message.objects.filter(pk=message.pk).update(
        updated_at=timezone.now() - timedelta(minutes=10)
    )
    call_command("sms_service_redispatch", stdout=open("/dev/null", "w"))
    message.refresh_from_db()
    assert message.status == MessageStatus.ACCEPTED
    assert len(calls) == 1


def test_redispatch_leaves_fresh_and_scheduled_rows_alone(message):
    assert recovery.redispatch_stuck()["requeued"] == 0  # fresh
    Message.objects.filter(pk=message.pk).update(
        updated_at=timezone.now() - timedelta(minutes=10),
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )
    assert recovery.redispatch_stuck()["requeued"] == 0  # a retry is scheduled
    assert calls == []


def test_abandoned_sending_rows_become_unknown(message):
    # The provider call had started: the provider may have the message.
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENDING, updated_at=timezone.now() - timedelta(hours=1),
        call_started_at=timezone.now() - timedelta(hours=1),
    )
    assert recovery.redispatch_stuck() == {"requeued": 0, "unknown": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
    assert calls == []


def test_enqueue_happens_only_after_commit(app, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        m = Message.objects.create(app=app, phone="+8618612345678", body="x",
                                   payload=encrypt("x"))
        outbox.enqueue(m)
    assert calls == []  # nothing sent inside the transaction
    for callback in callbacks:
        callback()
    assert calls == ["x"]


def test_transactions_that_roll_back_send_nothing(app, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                m = Message.objects.create(app=app, phone="+8618612345678", body="x",
                                           payload=encrypt("x"))
                outbox.enqueue(m)
                raise RuntimeError("rolled back")
    assert calls == [] and Message.objects.count() == 0


def test_broker_down_keeps_the_row_queued(app, settings, django_capture_on_commit_callbacks,
                                          caplog):
    from tests.celery_app import app as celery_app

    changed = {"task_always_eager": False, "broker_write_url": "redis://127.0.0.1:1/0",
               "broker_connection_retry": False, "broker_connection_max_retries": 0}
    before = {key: celery_app.conf[key] for key in changed}
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ASYNC": True}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.update(changed)
    # Forget the pools of the real broker (kombu hands the same pool out again
    # for the same address); the finally clause forgets the unreachable one's.
    celery_app._pool = celery_app.amqp._producer_pool = None
    try:
        with django_capture_on_commit_callbacks(execute=True):
            m = Message.objects.create(app=app, phone="+8618612345678", body="x",
                                       payload=encrypt("x"))
            outbox.enqueue(m)
    finally:
        celery_app.conf.update(before)
        celery_app._pool = celery_app.amqp._producer_pool = None
    m.refresh_from_db()
    assert m.status == MessageStatus.QUEUED
    # Its own task, or the wake-up of its backend's delivery runs (a shared
    # cache on PostgreSQL): either way the log names the message.
    assert re.search(rf"could not enqueue message {m.pk}\b.*; it will be redispatched",
                     caplog.text), caplog.text
