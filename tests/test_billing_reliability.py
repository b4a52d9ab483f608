"""Reliability of the books: a worker killed mid-send and Hypothesis-generated
interleavings of sends, top-ups, failures and receipts.

Neither needs two connections at once, so they run on SQLite as well as on
PostgreSQL; the racing versions are in test_billing_concurrency.py.
"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from sms_service.backends.base import BaseSmsBackend, DeliveryReport, OutgoingMessage
from sms_service.exceptions import (
    InsufficientBalanceError,
    InvalidParameterError,
)
from sms_service.models import LedgerEntry, Message, MessageStatus
from sms_service.models.billing import SETTLEMENT_KINDS
from sms_service.services import billing, outbox, receipts, recovery
from tests.billing_support import assert_books, bill, funded_app, held, held_message

pytestmark = pytest.mark.django_db(transaction=True)

#: Provider-side record of accepted requests (what the handset would get).
provider_accepted: list[int] = []


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even except clauses."""


class AcceptThenDieBackend(BaseSmsBackend):
    """The provider takes the message, then the worker dies before the database
    update that would record it."""

    provider_name = "accept-then-die"

    def build_payload(self, message: OutgoingMessage) -> OutgoingMessage:
        return message

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> Any:
        provider_accepted.append(message.message_id)
        raise WorkerKilled()


def test_worker_killed_after_provider_accepted_is_never_charged_twice():
    """What the user sees: the message stays "sending" until the stuck-row sweep
    marks it "unknown" (outcome unknown, money held, not on the bill); it is
    never resent; after SETTLE_AFTER_SECONDS the overdue policy (default:
    charge) bills it exactly once."""
    provider_accepted.clear()
    config = {
        "BACKENDS": {"default": {"BACKEND": f"{__name__}.AcceptThenDieBackend"}},
        "STUCK_SENDING_AFTER_SECONDS": 900,
        "SETTLE_AFTER_SECONDS": 3600,
    }
    app = funded_app("5")
    with override_settings(SMS_SERVICE=config):
        message = held_message(app, cost="2")
        with pytest.raises(WorkerKilled):
            outbox.deliver(message_id=message.pk)
        # The broker redelivers the task (acks_late): the claim refuses it.
        assert outbox.deliver(message_id=message.pk) == "skipped"
        message.refresh_from_db()
        assert message.status == MessageStatus.SENDING

        start = timezone.now()
        with time_machine.travel(start + timedelta(seconds=901), tick=False):
            assert recovery.redispatch_stuck()["unknown"] == 1
            assert recovery.redispatch_stuck()["unknown"] == 0
        message.refresh_from_db()
        app.refresh_from_db()
        assert message.status == MessageStatus.UNKNOWN
        assert (app.balance, held(app), bill(app)) == (3, 2, 0)

        with time_machine.travel(start + timedelta(seconds=901 + 3601), tick=False):
            assert billing.settle_overdue()["settled"] == 1
            assert billing.settle_overdue()["settled"] == 0
            assert recovery.redispatch_stuck() == {"requeued": 0, "unknown": 0}

    assert provider_accepted == [message.pk]  # one request reached the provider
    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (3, 0, 2)
    assert LedgerEntry.objects.filter(message=message, kind="charge").count() == 1
    assert_books(app)


# --- generated interleavings ----------------------------------------------------------

MAX_EXAMPLES = int(os.environ.get("BILLING_FUZZ_EXAMPLES", "60"))
prices = st.sampled_from(["0.0500", "0.3333", "1.0000", "2.5000"])
amounts = st.decimals(min_value="0.01", max_value="6", places=2)


class BooksMachine(RuleBasedStateMachine):
    """Random sends (1-6 segments), top-ups, adjustments, refunds, provider
    outcomes, receipts (replayed, reordered) and overdue sweeps on one app."""

    @initialize(balance=st.decimals(min_value="0", max_value="10", places=2))
    def open_account(self, balance: Decimal) -> None:
        self.app = funded_app(str(balance))
        self.messages: list[Message] = []

    def _pick(self, index: int, *statuses: str) -> Message | None:
        candidates = [m for m in self.messages if m.status in statuses]
        return candidates[index % len(candidates)] if candidates else None

    @rule(segments=st.integers(min_value=1, max_value=6), price=prices)
    def send(self, segments: int, price: str) -> None:
        cost = Decimal(price) * segments
        self.app.refresh_from_db()
        before = self.app.balance
        try:
            self.messages.append(
                held_message(self.app, cost=str(cost), segments=segments)
            )
        except InsufficientBalanceError:
            assert before < cost

    @rule(amount=amounts)
    def top_up(self, amount: Decimal) -> None:
        billing.top_up(app=self.app, amount=str(amount), reason="fuzz")

    @rule(amount=amounts)
    def adjust_down(self, amount: Decimal) -> None:
        try:
            billing.adjust(app=self.app, amount=str(-amount), reason="fuzz")
        except InsufficientBalanceError:
            pass

    @rule(
        index=st.integers(min_value=0),
        outcome=st.sampled_from(["accepted", "failed", "unknown"]),
    )
    def provider_answers(self, index: int, outcome: str) -> None:
        message = self._pick(index, MessageStatus.QUEUED)
        if message is None:
            return
        assert outbox.transition(message, MessageStatus.SENDING)
        fields = (
            {"provider": "fake", "provider_message_id": f"fuzz-{message.pk}"}
            if outcome == "accepted"
            else {}
        )
        assert outbox.transition(message, outcome, **fields)

    @rule(
        index=st.integers(min_value=0),
        status=st.sampled_from(["delivered", "undelivered", "failed", "accepted"]),
    )
    def receipt(self, index: int, status: str) -> None:
        message = self._pick(index, MessageStatus.ACCEPTED, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)
        if message is None:
            return
        receipts.apply_report(
            DeliveryReport(message.provider_message_id, status), provider="fake"
        )
        message.refresh_from_db()

    @rule(index=st.integers(min_value=0))
    def reconciled_as_failed(self, index: int) -> None:
        message = self._pick(index, MessageStatus.UNKNOWN)
        if message is not None:
            outbox.transition(message, MessageStatus.FAILED)

    @rule()
    def overdue_sweep(self) -> None:
        billing.settle_overdue(now=timezone.now() + timedelta(days=30))

    @rule(index=st.integers(min_value=0))
    def refund(self, index: int) -> None:
        message = self._pick(index, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)
        if message is None:
            return
        try:
            billing.refund(message=message, reason="fuzz")
        except InvalidParameterError:
            pass

    @invariant()
    def books_balance(self) -> None:
        if hasattr(self, "app"):
            assert_books(self.app)

    @invariant()
    def final_messages_are_settled_exactly_once(self) -> None:
        for message in getattr(self, "messages", []):
            settlements = LedgerEntry.objects.filter(
                message=message, kind__in=SETTLEMENT_KINDS
            ).count()
            if message.status in (MessageStatus.FAILED, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED):
                assert settlements == 1
            else:
                assert settlements <= 1


def test_generated_interleavings_never_break_the_balance_invariant():
    run_state_machine_as_test(
        BooksMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
