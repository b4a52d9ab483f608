"""Delivery in batches: a worker run whose backend sends in batches claims many
queued messages in one statement and sends each of them once, charged once,
with the same events and webhooks as one by one. On PostgreSQL (row locks
with SKIP LOCKED); skipped elsewhere."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from sms_service.backends import locmem
from sms_service.backends.locmem import LocmemBackend
from sms_service.exceptions import ProviderTemporaryError
from sms_service.models import (
    LedgerEntry,
    LedgerKind,
    Message,
    MessageStatus,
    Signature,
    Webhook,
    WebhookDelivery,
)
from sms_service.services import billing, outbox
from sms_service.services.sending import SmsRequest, request_sms
from tests.billing_support import (
    assert_books,
    funded_app,
    is_postgresql,
    phone,
    requires_postgresql,
    set_price,
)

pytestmark = pytest.mark.django_db(transaction=True)

S = MessageStatus


class FlakyLocmemBackend(LocmemBackend):
    """The locmem backend, failing (nothing sent) for the numbers in ``failing``."""

    failing: set[str] = set()

    def post_to_provider(self, message, payload):
        if message.to in self.failing:
            raise ProviderTemporaryError("503 from provider")
        return super().post_to_provider(message, payload)


@pytest.fixture(autouse=True)
def batches(settings, monkeypatch):
    if not is_postgresql():
        pytest.skip(requires_postgresql)
    locmem.outbox.clear()
    outbox._sent_in_batch.clear()
    FlakyLocmemBackend.failing = set()
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "ASYNC": True,
        "PUMPING_DEFENCE": {"ENABLED": False},
        "BACKENDS": {
            "default": {"BACKEND": f"{__name__}.FlakyLocmemBackend",
                        "OPTIONS": {"BATCH_SIZE": 10}},
            "other": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
        },
    }
    # Nothing is published: the tests call deliver() as the task would.
    monkeypatch.setattr(outbox, "_send_task", lambda task, argument, *rest: None)
    retries: list[tuple[int, int]] = []
    monkeypatch.setattr(outbox, "_dispatch_later",
                        lambda message_id, countdown: retries.append((message_id, countdown)))
    yield retries
    outbox._sent_in_batch.clear()


@pytest.fixture
def billed_app():
    set_price("0.05")
    app = funded_app("100", pumping_defence=False)
    Signature.objects.create(app=app, name="Demo", text="Demo", status="approved",
                             is_default=True)
    return app


def queue(app, count: int, start: int = 0) -> list[int]:
    return [request_sms(app=app, request=SmsRequest(phone=phone(start + i))).pk
            for i in range(count)]


def sends() -> Counter:
    """Provider calls per message id."""
    return Counter(m.message_id for m in locmem.outbox)


def assert_each_sent_and_charged_once(app, ids: list[int]) -> None:
    """Every message of ``ids`` went to the provider once, is delivered and was
    charged once; the app's books balance."""
    calls = sends()
    assert sorted(calls) == sorted(ids)
    assert set(calls.values()) == {1}
    assert Message.objects.filter(pk__in=ids, status=S.DELIVERED).count() == len(ids)
    assert (LedgerEntry.objects.filter(message_id__in=ids, kind=LedgerKind.CHARGE).count()
            == len(ids))
    assert_books(app)


def test_a_run_sends_a_batch_and_every_message_once(billed_app):
    ids = queue(billed_app, 25)
    assert outbox.deliver(message_id=ids[0]) == S.DELIVERED
    # The run sent its own message and nine others in the same run.
    assert len(locmem.outbox) == 10
    assert Message.objects.filter(pk__in=ids, status=S.DELIVERED).count() == 10
    # Every task then runs, as the broker hands them out, in any order.
    for message_id in reversed(ids):
        outbox.deliver(message_id=message_id)
    calls = sends()
    assert sorted(calls) == sorted(ids)
    assert set(calls.values()) == {1}
    for message in Message.objects.filter(pk__in=ids):
        assert message.status == S.DELIVERED
        assert message.attempts == 1
        assert message.payload is None
        assert message.provider == "locmem" and message.provider_message_id
        assert message.call_started_at is not None
        assert list(message.events.values_list("status", flat=True)) == [
            S.SENDING, S.SENDING, S.ACCEPTED, S.DELIVERED]
    charges = Counter(LedgerEntry.objects.filter(message_id__in=ids, kind=LedgerKind.CHARGE)
                      .values_list("message_id", flat=True))
    assert charges == Counter({message_id: 1 for message_id in ids})
    billed_app.refresh_from_db()
    assert billing.books(app=billed_app).held == 0
    assert_books(billed_app)


def test_concurrent_runs_never_send_a_message_twice(billed_app):
    ids = queue(billed_app, 60)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def run(share: list[int]) -> None:
        try:
            barrier.wait(timeout=30)
            for message_id in share:
                outbox.deliver(message_id=message_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(ids[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert_each_sent_and_charged_once(billed_app, ids)


def test_a_failure_in_a_batch_is_that_message_s_alone(billed_app, batches):
    ids = queue(billed_app, 10)
    failing = Message.objects.get(pk=ids[4])
    FlakyLocmemBackend.failing = {failing.phone}
    assert outbox.deliver(message_id=ids[0]) == S.DELIVERED
    failing.refresh_from_db()
    # Nothing was sent for it: back in the queue with a backoff, its retry
    # scheduled (its own task has been consumed); the hold stays.
    assert failing.status == S.QUEUED
    assert failing.call_started_at is None
    assert failing.next_attempt_at is not None
    assert [message_id for message_id, _ in batches] == [failing.pk]
    assert not LedgerEntry.objects.filter(message=failing, kind=LedgerKind.CHARGE).exists()
    others = [i for i in ids if i != failing.pk]
    assert Message.objects.filter(pk__in=others, status=S.DELIVERED).count() == 9
    # The retry sends it.
    FlakyLocmemBackend.failing = set()
    assert outbox.deliver(message_id=failing.pk) == S.DELIVERED
    assert sends()[failing.pk] == 1
    assert_books(billed_app)


def test_own_temporary_failure_is_raised_after_the_rest_is_sent(billed_app, batches):
    ids = queue(billed_app, 5)
    FlakyLocmemBackend.failing = {Message.objects.get(pk=ids[0]).phone}
    with pytest.raises(ProviderTemporaryError):
        outbox.deliver(message_id=ids[0])
    assert Message.objects.get(pk=ids[0]).status == S.QUEUED
    assert Message.objects.filter(pk__in=ids[1:], status=S.DELIVERED).count() == 4
    assert batches == []  # the task itself retries its own message


def test_a_batch_takes_only_due_messages_of_the_same_backend(billed_app, settings):
    ids = queue(billed_app, 4)
    later = Message.objects.get(pk=ids[1])
    Message.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now()
                                               + timedelta(minutes=5))
    Message.objects.filter(pk=ids[2]).update(backend="other")
    assert outbox.deliver(message_id=ids[0]) == S.DELIVERED
    statuses = dict(Message.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses == {ids[0]: S.DELIVERED, ids[1]: S.QUEUED, ids[2]: S.QUEUED,
                        ids[3]: S.DELIVERED}


def test_webhooks_report_every_message_of_a_batch(billed_app):
    Webhook.objects.create(app=billed_app, url="https://hooks.example.com/sms",
                           events=["message.delivered"])
    ids = queue(billed_app, 8)
    outbox.deliver(message_id=ids[0])
    reported = Counter(d.payload["data"]["message_id"]
                       for d in WebhookDelivery.objects.filter(event="message.delivered"))
    assert reported == Counter({message_id: 1 for message_id in ids})


# --- wake-ups: one delivery run for many commits ---------------------------------------


@pytest.fixture
def published(batches, monkeypatch) -> list[tuple[str, object]]:
    """The tasks this process publishes (name, argument), none run: the tests
    run each delivery run as its task would. Needs a cache shared by every
    process, as wake-ups do (Redis in CI, set by CACHE_URL)."""
    if not outbox.coalesces("default"):
        message = "wake-ups need a shared cache (CACHE_URL=redis://...)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the wake-up tests: {message}", pytrace=False)
        pytest.skip(message)
    cache.delete("sms-service:outbox-wake:default")
    sent: list[tuple[str, object]] = []

    def record(task, argument, for_message=None) -> bool:
        sent.append((task.name.rpartition(".")[2], argument))
        return True

    monkeypatch.setattr(outbox, "_send_task", record)
    yield sent
    cache.delete("sms-service:outbox-wake:default")


def test_a_burst_of_sends_wakes_one_delivery_run_and_a_backlog_more(billed_app, published):
    ids = queue(billed_app, 25)
    # Twenty-five commits, one task: the run it wakes will see them all.
    assert published == [("deliver_queued", "default")]
    # A full batch (10) wakes the next run at once, so free workers share a
    # backlog; the last, partial batch wakes none.
    assert outbox.deliver_queued(alias="default") == 10
    assert outbox.deliver_queued(alias="default") == 10
    assert outbox.deliver_queued(alias="default") == 5
    assert published == [("deliver_queued", "default")] * 3
    assert outbox.deliver_queued(alias="default") == 0
    assert_each_sent_and_charged_once(billed_app, ids)
    # The runs have started: the next commit wakes another.
    queue(billed_app, 1, start=25)
    assert len(published) == 4


def test_a_wake_up_the_broker_refused_is_retried_by_the_next_commit(billed_app, published,
                                                                     monkeypatch):
    def refuse(task, argument, for_message=None) -> bool:
        published.append(("refused", argument))
        return False

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "_send_task", refuse)
        queue(billed_app, 1)
    queue(billed_app, 1, start=1)
    assert published == [("refused", "default"), ("deliver_queued", "default")]
    assert outbox.deliver_queued(alias="default") == 2
    assert len(sends()) == 2


def test_with_a_process_local_cache_each_message_has_its_own_task(billed_app, batches,
                                                                   settings, monkeypatch):
    settings.CACHES = {**settings.CACHES, "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(outbox, "_send_task", lambda task, argument, *rest: sent.append(
        (task.name.rpartition(".")[2], argument)) or True)
    ids = queue(billed_app, 3)
    # A worker could not clear a wake-up held in this process's memory.
    assert sent == [("deliver_message", message_id) for message_id in ids]


@pytest.fixture
def one_at_a_time(settings):
    """The default backend sends one message per call (no BATCH_SIZE)."""
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "BACKENDS": {
        "default": {"BACKEND": f"{__name__}.FlakyLocmemBackend"}}}


@pytest.fixture
def through_a_broker(settings):
    """Tasks go through a broker (the suite runs them eagerly)."""
    from tests.celery_app import app as celery_app

    eager = celery_app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager


def test_a_backend_that_sends_one_at_a_time_shares_runs_too(billed_app, one_at_a_time,
                                                            through_a_broker, published):
    ids = queue(billed_app, 3)
    # Three commits, one task: the requests publish nothing while a run is pending.
    assert published == [("deliver_queued", "default")]
    # Each run takes one message and, having found one, wakes the next first
    # (so a backlog is shared by every free worker, one provider call each).
    assert [outbox.deliver_queued(alias="default") for _ in range(4)] == [1, 1, 1, 0]
    assert published == [("deliver_queued", "default")] * 4
    assert_each_sent_and_charged_once(billed_app, ids)
    for message in Message.objects.filter(pk__in=ids):
        assert list(message.events.values_list("status", flat=True)) == [
            S.SENDING, S.SENDING, S.ACCEPTED, S.DELIVERED]


def test_run_eagerly_a_backend_that_sends_one_at_a_time_has_a_run_per_message(
        billed_app, one_at_a_time, batches, monkeypatch):
    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(outbox, "_send_task", lambda task, argument, *rest: sent.append(
        (task.name.rpartition(".")[2], argument)) or True)
    ids = queue(billed_app, 2)
    # No broker to spare: each message is delivered by its own task at commit.
    assert sent == [("deliver_message", message_id) for message_id in ids]


class MovedDuringCallBackend(LocmemBackend):
    """The locmem backend; while it sends to the numbers in ``moved``, another
    process moves the message on (its status is no longer ``sending``)."""

    moved: set[str] = set()

    def post_to_provider(self, message, payload):
        if message.to in self.moved:
            Message.objects.filter(pk=message.message_id).update(status=S.UNKNOWN)
        return super().post_to_provider(message, payload)


def test_the_end_of_a_batch_writes_only_what_it_moved(billed_app, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "BACKENDS": {"default": {
        "BACKEND": f"{__name__}.MovedDuringCallBackend", "OPTIONS": {"BATCH_SIZE": 10}}}}
    ids = queue(billed_app, 4)
    moved = Message.objects.get(pk=ids[2])
    MovedDuringCallBackend.moved = {moved.phone}
    try:
        assert outbox.deliver(message_id=ids[0]) == S.DELIVERED
    finally:
        MovedDuringCallBackend.moved = set()
    statuses = dict(Message.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses == {ids[0]: S.DELIVERED, ids[1]: S.DELIVERED, ids[2]: S.UNKNOWN,
                        ids[3]: S.DELIVERED}
    # The message moved elsewhere got neither the delivered events nor a charge.
    assert list(Message.objects.get(pk=ids[2]).events.values_list("status", flat=True)) == [
        S.SENDING, S.SENDING]
    charged = set(LedgerEntry.objects.filter(message_id__in=ids, kind=LedgerKind.CHARGE)
                  .values_list("message_id", flat=True))
    assert charged == {ids[0], ids[1], ids[3]}
    for message_id in (ids[0], ids[1], ids[3]):
        assert list(Message.objects.get(pk=message_id).events.values_list(
            "status", flat=True)) == [S.SENDING, S.SENDING, S.ACCEPTED, S.DELIVERED]
    # Its hold is still held, for whoever settles it.
    billed_app.refresh_from_db()
    assert billing.books(app=billed_app).held == moved.cost


def test_messages_whose_run_was_lost_are_woken_by_the_sweep(billed_app, published):
    from sms_service.services import recovery

    ids = queue(billed_app, 3)
    assert published == [("deliver_queued", "default")]
    # That run's task died with its worker: nothing delivers the messages,
    # and while its wake-up lasts no commit publishes another.
    published.clear()
    cache.delete("sms-service:outbox-wake:default")  # it lasts WAKE_SECONDS
    recovery.redispatch_stuck()
    assert published == []  # the messages have not waited that long yet
    Message.objects.filter(pk__in=ids).update(
        updated_at=timezone.now() - timedelta(seconds=outbox.WAKE_SECONDS + 1))
    cache.add("sms-service:outbox-wake:default", 1)
    recovery.redispatch_stuck()
    assert published == []  # a wake-up stands: its run may yet start
    cache.delete("sms-service:outbox-wake:default")
    recovery.redispatch_stuck()
    assert published == [("deliver_queued", "default")]
    assert outbox.deliver_queued(alias="default") == 3
    assert_each_sent_and_charged_once(billed_app, ids)


def test_a_worker_that_starts_wakes_the_runs_a_lost_task_held_back(billed_app, published):
    from sms_service.tasks import _wake_delivery_runs

    ids = queue(billed_app, 2)
    published.clear()  # that run's task died with the previous worker
    _wake_delivery_runs()  # celery's worker_ready
    assert published == [("deliver_queued", "default")]
    assert outbox.deliver_queued(alias="default") == 2
    assert_each_sent_and_charged_once(billed_app, ids)
