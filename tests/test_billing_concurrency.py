"""Billing under real concurrency: holds, top-ups, receipts
and settlement racing each other.

Threads with their own PostgreSQL connections race on the same app row; the
conditional UPDATE in billing.hold and the ledger's unique constraints must keep
the books exact. SQLite serialises writers, so these tests only run on
PostgreSQL.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections

from sms_service.backends.base import DeliveryReport
from sms_service.exceptions import SmsServiceError
from sms_service.models import LedgerEntry, Message, MessageStatus, Signature
from sms_service.services import billing, receipts
from sms_service.services.sending import SmsRequest, request_sms
from tests.billing_support import (
    accepted_message,
    assert_books,
    bill,
    funded_app,
    held,
    held_message,
    is_postgresql,
    phone,
    requires_postgresql,
    set_price,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if not is_postgresql():
        pytest.skip(requires_postgresql)


def run_concurrently(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Start every job at once (barrier), each on its own thread and connection.
    Returns each job's result or the exception it raised."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = job()
        except BaseException as exc:  # reported to the test, never swallowed
            results[index] = exc
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def outcome(result: Any) -> str:
    if isinstance(result, SmsServiceError):
        return str(int(result.code))
    if isinstance(result, BaseException):
        return f"unexpected {type(result).__name__}: {result}"
    return "sent"


def test_50_concurrent_sends_against_balance_10_repeated_20_times(outbox):
    """Exactly 10 queued and charged, 40 refused with 160, never negative."""
    set_price("1.0000")
    for run in range(20):
        app = funded_app("10")
        Signature.objects.create(
            app=app,
            name="LeanCloud",
            text="LeanCloud",
            status="approved",
            is_default=True,
        )

        def send(i: int, app=app, run=run) -> Message:
            return request_sms(app=app, request=SmsRequest(phone=phone(run * 50 + i)))

        results = run_concurrently([lambda i=i: send(i) for i in range(50)])

        assert Counter(outcome(r) for r in results) == {"sent": 10, "160": 40}, run
        messages = Message.objects.filter(app=app)
        assert messages.count() == 10
        # Each was delivered (locmem) and charged exactly once.
        assert set(messages.values_list("status", flat=True)) == {MessageStatus.DELIVERED}
        assert LedgerEntry.objects.filter(app=app, kind="charge").count() == 10
        app.refresh_from_db()
        assert (app.balance, held(app), bill(app)) == (0, 0, 10)
        assert_books(app)
    assert len(outbox) == 200


def test_daily_spend_cap_is_never_overshot_under_concurrency():
    """30 concurrent one-unit holds against a cap of 10 (balance is ample)."""
    app = funded_app("100", daily_spend_cap=Decimal("10"))
    results = run_concurrently([lambda: held_message(app, cost="1") for _ in range(30)])
    assert Counter(outcome(r) for r in results) == {"sent": 10, "154": 20}
    app.refresh_from_db()
    assert (app.balance, held(app), app.spent_today) == (90, 10, 10)
    assert_books(app)


def test_concurrent_top_ups_and_sends_lose_no_update():
    """Top-ups racing with holds; the final balance is exact."""
    app = funded_app("5")
    jobs: list[Callable[[], Any]] = []
    for i in range(20):
        jobs.append(lambda: held_message(app, cost="0.7500"))
        jobs.append(
            lambda i=i: billing.top_up(app=app, amount="0.2500", reason=f"t{i}")
        )
    random.Random(7).shuffle(jobs)
    results = run_concurrently(jobs)
    sent = sum(isinstance(r, Message) for r in results)
    assert Counter(outcome(r) for r in results)["sent"] == sent + 20  # + the top-ups
    assert all(outcome(r) in ("sent", "160") for r in results)
    app.refresh_from_db()
    assert app.balance == Decimal("5") + 20 * Decimal("0.25") - sent * Decimal("0.75")
    assert held(app) == sent * Decimal("0.75")
    assert_books(app)


def test_same_receipt_10_times_concurrently_and_out_of_order_settles_once():
    """Replayed, reordered receipts racing each other: one settlement."""
    app = funded_app("100")
    for run in range(10):
        message = accepted_message(app, cost="2")
        pid = message.provider_message_id
        statuses = ["delivered"] * 5 + ["undelivered"] * 3 + ["accepted"] * 2
        random.Random(run).shuffle(statuses)
        run_concurrently(
            [
                lambda status=status, pid=pid: receipts.apply_report(
                    DeliveryReport(pid, status), provider="fake"
                )
                for status in statuses
            ]
        )
        message.refresh_from_db()
        assert message.status in (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)
        assert LedgerEntry.objects.filter(message=message, kind="charge").count() == 1
        # Exactly one status change to the final state is in the event log.
        assert message.events.filter(status=message.status).count() == 1
    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (80, 0, 20)
    assert_books(app)


def test_receipt_racing_the_overdue_policy_settles_once():
    app = funded_app("100")
    messages = [accepted_message(app, cost="1") for _ in range(10)]
    Message.objects.filter(app=app).update(updated_at="2000-01-01T00:00:00Z")
    jobs: list[Callable[[], Any]] = [billing.settle_overdue for _ in range(3)]
    jobs += [
        lambda m=m: receipts.apply_report(
            DeliveryReport(m.provider_message_id, "undelivered"), provider="fake"
        )
        for m in messages
    ]
    run_concurrently(jobs)
    for message in messages:
        assert LedgerEntry.objects.filter(message=message, kind="charge").count() == 1
    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (90, 0, 10)
    assert_books(app)
