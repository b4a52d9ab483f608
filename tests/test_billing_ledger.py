"""Billing rules on one connection (SQLite or PostgreSQL): prices, holds,
settlement, the ledger, top-ups, spend caps and balance alerts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from sms_service.backends.base import DeliveryReport
from sms_service.backends.locmem import LocmemBackend
from sms_service.exceptions import (
    AppThresholdExceededError,
    InsufficientBalanceError,
    InvalidParameterError,
    MessageTooLongError,
    ProviderRejectedError,
)
from sms_service.models import (
    LedgerEntry,
    LedgerKind,
    Message,
    MessageStatus,
    VerificationCode,
)
from sms_service.phone import parse_phone
from sms_service.services import billing, outbox, receipts
from sms_service.services.sending import SmsRequest, request_sms
from tests.billing_support import (
    accepted_message,
    assert_books,
    bill,
    funded_app,
    held,
    held_message,
    phone,
    set_price,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_app(signature):
    """The conftest app with an approved default signature."""
    return signature.app


def send(app, i: int = 0, **fields) -> Message:
    return request_sms(app=app, request=SmsRequest(phone=phone(i), **fields))


# --- prices and quotes ------------------------------------------------------------------


def test_price_per_region_and_channel_with_default_for_unlisted():
    set_price("0.0500", region="CN")
    set_price("0.3000", region="US")
    set_price("0.2000", region="CN", channel="voice")
    app = funded_app("0")
    cn, us = parse_phone("13800138000"), parse_phone("+14155552671")

    assert billing.quote(app=app, phone=cn, channel="sms", text="x" * 71).amount == (
        Decimal("0.1000")
    )
    assert billing.quote(app=app, phone=us, channel="sms", text="x").amount == Decimal(
        "0.3000"
    )
    # Voice is billed per call, at its own price.
    voice = billing.quote(app=app, phone=cn, channel="voice", text="123456")
    assert (voice.segments, voice.amount) == (1, Decimal("0.2000"))
    # Unlisted region: DEFAULT_UNIT_PRICES.
    gb = parse_phone("+447911123456")
    with override_settings(SMS_SERVICE={"DEFAULT_UNIT_PRICES": {"sms": "0.0123"}}):
        assert billing.quote(app=app, phone=gb, channel="sms", text="x").amount == (
            Decimal("0.0123")
        )
    assert isinstance(voice.amount, Decimal)


def test_a_saved_price_applies_to_the_next_quote_of_this_process():
    """Prices are cached per process and in the shared cache; saving or deleting a
    Price drops both entries."""
    app = funded_app("0")
    cn = parse_phone("13800138000")
    price = set_price("0.0500", region="CN")
    assert billing.quote(app=app, phone=cn, channel="sms", text="x").amount == Decimal("0.0500")
    price.unit_price = Decimal("0.0700")
    price.save()
    assert billing.quote(app=app, phone=cn, channel="sms", text="x").amount == Decimal("0.0700")
    price.delete()
    assert billing.quote(app=app, phone=cn, channel="sms", text="x").amount == Decimal("0")


def test_international_numbers_use_carrier_segments():
    app = funded_app("0")
    text = "a" * 161
    domestic = billing.quote(
        app=app, phone=parse_phone("13800138000"), channel="sms", text=text
    )
    abroad = billing.quote(
        app=app, phone=parse_phone("+14155552671"), channel="sms", text=text
    )
    assert (domestic.segments, domestic.encoding) == (3, "chars")  # ceil(161 / 67)
    assert (abroad.segments, abroad.encoding) == (2, "gsm7")
    with override_settings(SMS_SERVICE={"SEGMENT_MODE_INTERNATIONAL": "leancloud",
                                        "DEFAULT_UNIT_PRICES": {"sms": "0"}}):
        assert (
            billing.quote(
                app=app, phone=parse_phone("+14155552671"), channel="sms", text=text
            ).segments
            == 3
        )


def test_401_characters_refused_before_anything():
    app = funded_app("10")
    with pytest.raises(MessageTooLongError):
        billing.quote(
            app=app, phone=parse_phone("13800138000"), channel="sms", text="验" * 401
        )
    assert (
        billing.quote(
            app=app, phone=parse_phone("13800138000"), channel="sms", text="验" * 400
        ).segments
        == 6
    )


def test_billing_disabled_makes_every_quote_free(signed_app):
    set_price("1")
    with override_settings(SMS_SERVICE={"BILLING_ENABLED": False}):
        message = send(signed_app)
    assert message.cost == 0
    assert message.segments == 1
    assert not LedgerEntry.objects.exists()


# --- the hold -------------------------------------------------------------------------


def test_send_holds_segments_times_price(signed_app):
    set_price("0.0700")
    billing.top_up(app=signed_app, amount="1", reason="start")
    message = send(signed_app)

    signed_app.refresh_from_db()
    assert message.cost == Decimal("0.0700") * message.segments
    assert signed_app.balance == Decimal("1") - message.cost
    assert held(signed_app) == message.cost
    hold = LedgerEntry.objects.get(message=message)
    assert (hold.kind, hold.amount, hold.held_change) == (
        "hold",
        -message.cost,
        message.cost,
    )
    assert_books(signed_app)


def test_insufficient_balance_is_160_and_nothing_is_queued(signed_app, outbox):
    set_price("1")
    billing.top_up(app=signed_app, amount="0.5", reason="start")
    with pytest.raises(InsufficientBalanceError) as info:
        send(signed_app)
    assert info.value.code == 160
    assert not Message.objects.exists()
    assert not VerificationCode.objects.exists()
    assert outbox == []
    signed_app.refresh_from_db()
    assert signed_app.balance == Decimal("0.5")
    assert_books(signed_app)


def test_balance_constraint_forbids_negative():
    app = funded_app("1")
    from sms_service.models import App

    with pytest.raises(IntegrityError), transaction.atomic():
        App.objects.filter(pk=app.pk).update(balance=Decimal("-0.0001"))


def test_test_numbers_are_never_billed(signed_app):
    from sms_service.models import FixedCodeNumber

    set_price("1")
    FixedCodeNumber.objects.create(app=signed_app, phone=phone(5), code="123456")
    message = send(signed_app, 5)
    assert message.is_test and message.cost == 0
    assert not LedgerEntry.objects.exists()


# --- settlement -----------------------------------------------------------------------


def test_call_failure_releases_the_hold():
    app = funded_app("5")
    message = held_message(app, cost="2")
    assert outbox.transition(message, MessageStatus.SENDING)
    assert outbox.transition(message, MessageStatus.FAILED)

    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (Decimal("5"), 0, 0)
    assert LedgerEntry.objects.get(message=message, kind="release").amount == 2
    assert_books(app)


def test_awaiting_receipt_is_held_but_not_billed():
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (Decimal("3"), Decimal("2"), 0)
    # "unknown" (the call may have reached the provider) stays held too.
    other = held_message(app, cost="1")
    outbox.transition(other, MessageStatus.SENDING)
    outbox.transition(other, MessageStatus.UNKNOWN)
    app.refresh_from_db()
    assert (app.balance, held(app), bill(app)) == (Decimal("2"), Decimal("3"), 0)
    assert message.status == MessageStatus.ACCEPTED
    assert_books(app)


@pytest.mark.parametrize("receipt", ["delivered", "undelivered", "failed"])
def test_delivery_and_delivery_failure_are_billed(receipt):
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    receipts.apply_report(
        DeliveryReport(message.provider_message_id, receipt), provider="fake"
    )

    message.refresh_from_db()
    app.refresh_from_db()
    assert message.status == (MessageStatus.DELIVERED if receipt == "delivered" else MessageStatus.UNDELIVERED)
    assert (app.balance, held(app), bill(app)) == (Decimal("3"), 0, Decimal("2"))
    assert_books(app)


def test_replayed_and_out_of_order_receipts_settle_once():
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    pid = message.provider_message_id
    for status in ["delivered", "accepted", "undelivered", "delivered"] * 3:
        receipts.apply_report(DeliveryReport(pid, status), provider="fake")

    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED  # the first final receipt wins
    assert LedgerEntry.objects.filter(message=message, kind="charge").count() == 1
    assert bill(app) == 2
    assert_books(app)


def test_locmem_delivery_end_to_end_is_charged(
    signed_app, django_capture_on_commit_callbacks
):
    set_price("1")
    billing.top_up(app=signed_app, amount="3", reason="start")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(signed_app)
    message.refresh_from_db()
    signed_app.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert (signed_app.balance, held(signed_app), bill(signed_app)) == (2, 0, 1)
    # The status change and the settlement are in the event log.
    assert message.events.filter(status=MessageStatus.DELIVERED).exists()


class RefusingBackend(LocmemBackend):
    """A provider that refuses every call (a permanent 4xx)."""

    def post_to_provider(self, message, payload):
        raise ProviderRejectedError("invalid number", provider_code="21211")


def test_provider_refusal_end_to_end_is_not_billed(
    signed_app, django_capture_on_commit_callbacks
):
    set_price("1")
    billing.top_up(app=signed_app, amount="3", reason="start")
    backends = {"default": {"BACKEND": f"{__name__}.RefusingBackend"}}
    with override_settings(SMS_SERVICE={"BACKENDS": backends}):
        with django_capture_on_commit_callbacks(execute=True):
            message = send(signed_app)
    message.refresh_from_db()
    signed_app.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert (signed_app.balance, held(signed_app), bill(signed_app)) == (3, 0, 0)
    assert_books(signed_app)


# --- overdue settlement ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "billed", "balance"), [("charge", 2, 3), ("release", 0, 5)]
)
def test_overdue_policy_settles_once(policy, billed, balance):
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    config = {"SETTLE_AFTER_SECONDS": 3600, "OVERDUE_POLICY": policy}
    with override_settings(SMS_SERVICE=config):
        assert billing.settle_overdue()["settled"] == 0  # not overdue yet
        later = timezone.now() + timedelta(hours=2)
        assert billing.settle_overdue(now=later)["settled"] == 1
        assert billing.settle_overdue(now=later)["settled"] == 0
    # A late receipt still updates the status but cannot bill again.
    receipts.apply_report(
        DeliveryReport(message.provider_message_id, "delivered"), provider="fake"
    )
    message.refresh_from_db()
    app.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert (app.balance, held(app), bill(app)) == (balance, 0, billed)
    assert message.events.filter(description__startswith="no receipt in time").exists()
    assert_books(app)


# --- top-ups, adjustments, refunds (audited) -----------------------------------------


def test_top_up_and_adjustment_are_audited():
    admin = get_user_model().objects.create_user("finance", password="x")
    app = funded_app("0")
    entry = billing.top_up(app=app, amount="10.50", reason="invoice 42", actor=admin)
    assert (entry.kind, entry.amount, entry.reason, entry.actor) == (
        "top_up",
        Decimal("10.5"),
        "invoice 42",
        admin,
    )
    assert entry.created_at is not None
    billing.adjust(app=app, amount="-0.5", reason="goodwill reversal", actor=admin)
    with pytest.raises(InsufficientBalanceError):
        billing.adjust(app=app, amount="-11", reason="too much", actor=admin)
    with pytest.raises(InvalidParameterError):
        billing.top_up(app=app, amount="5", reason="  ")
    with pytest.raises(InvalidParameterError):
        billing.top_up(app=app, amount=5.0, reason="float")
    with pytest.raises(InvalidParameterError):
        billing.top_up(app=app, amount="-1", reason="negative")
    app.refresh_from_db()
    assert app.balance == Decimal("10")
    assert_books(app)


def test_top_up_with_idempotency_key_happens_once():
    app = funded_app("0")
    first = billing.top_up(
        app=app, amount="5", reason="payment", idempotency_key="pay-1"
    )
    again = billing.top_up(
        app=app, amount="5", reason="payment", idempotency_key="pay-1"
    )
    assert first.pk == again.pk
    app.refresh_from_db()
    assert app.balance == 5
    assert_books(app)


def test_refund_of_a_charged_message_happens_once():
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    with pytest.raises(InvalidParameterError):
        billing.refund(message=message, reason="not charged yet")
    receipts.apply_report(
        DeliveryReport(message.provider_message_id, "undelivered"), provider="fake"
    )
    billing.refund(message=message, reason="carrier outage")
    with pytest.raises(InvalidParameterError):
        billing.refund(message=message, reason="twice")
    app.refresh_from_db()
    assert app.balance == 5
    assert_books(app)


def test_ledger_is_append_only_and_unique_per_message_and_kind():
    app = funded_app("5")
    message = held_message(app, cost="1")
    entry = LedgerEntry.objects.get(message=message)
    entry.reason = "edited"
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            app=app, kind=LedgerKind.HOLD, amount=-1, held_change=1, message=message
        )
    # One settlement per message, whatever its kind.
    billing.settle(message=message, kind=LedgerKind.CHARGE)
    assert billing.settle(message=message, kind=LedgerKind.RELEASE) is False
    assert_books(app)


# --- spend caps and alerts -------------------------------------------------------------


def test_daily_spend_cap_is_154_and_released_money_frees_it():
    app = funded_app("100", daily_spend_cap=Decimal("3"))
    first = held_message(app, cost="2")
    held_message(app, cost="1")
    with pytest.raises(AppThresholdExceededError) as info:
        held_message(app, cost="1")
    assert info.value.code == 154
    assert Message.objects.filter(app=app).count() == 2  # the refused one rolled back

    outbox.transition(first, MessageStatus.SENDING)
    outbox.transition(first, MessageStatus.FAILED)  # call failed: not spend
    held_message(app, cost="2")
    # A new day starts a new counter.
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        held_message(app, cost="3")
    assert_books(app)


def test_balance_alert_mails_once_per_crossing_and_rearms_after_top_up(
    django_capture_on_commit_callbacks,
):
    owner = get_user_model().objects.create_user("owner", email="owner@example.com")
    app = funded_app("10", owner=owner, balance_alert_threshold=Decimal("5"))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(8):  # 9, 8, ... 2: crosses below 5 once
            held_message(app, cost="1")
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert "below" in mail.outbox[0].subject

    with django_capture_on_commit_callbacks(execute=True):
        billing.top_up(app=app, amount="2", reason="small")  # 4: still below
        held_message(app, cost="1")
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        billing.top_up(app=app, amount="10", reason="big")  # 13: re-armed
        app.refresh_from_db()
        assert app.balance_alert_sent_at is None
        for _ in range(9):  # down to 4 again: a second email
            held_message(app, cost="1")
    assert len(mail.outbox) == 2
    assert_books(app)


def test_balance_alert_falls_back_to_the_owner_email_field(
    django_capture_on_commit_callbacks,
):
    app = funded_app(
        "3", owner_email="billing@example.com", balance_alert_threshold=Decimal("2")
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(3):
            held_message(app, cost="1")
    assert len(callbacks) == 1
    assert [m.to for m in mail.outbox] == [["billing@example.com"]]


# --- reporting ------------------------------------------------------------------------


def test_bill_per_day_and_template_shows_only_settled_charges():
    app = funded_app("10")
    charged = accepted_message(app, cost="2")
    accepted_message(app, cost="3")  # held, not on the bill
    receipts.apply_report(
        DeliveryReport(charged.provider_message_id, "delivered"), provider="fake"
    )
    today = timezone.localdate()
    days = billing.bill_by_channel(app=app, start=today - timedelta(days=6), end=today)
    assert len(days) == 7
    assert days[-1] == (today, {"sms": Decimal("2"), "voice": Decimal("0")})
    assert billing.bill_by_template(app=app) == [
        {"template": "", "channel": "sms", "amount": Decimal("2"), "messages": 1,
         "segments": 1}
    ]
    app.refresh_from_db()
    assert held(app) == 3


def test_a_code_clash_during_a_billed_send_holds_the_price_once(signed_app, draw_codes, outbox):
    """The second number draws the first number's live code: that attempt is
    undone whole (no hold, no message) and the retry with a new code is held once."""
    from sms_service.services import codes

    set_price("0.0500")
    billing.top_up(app=signed_app, amount="1", reason="test funds")
    draw_codes("111111", "111111", "222222")

    send(signed_app, 0)
    send(signed_app, 1)

    signed_app.refresh_from_db()
    assert signed_app.balance == Decimal("0.9000")
    assert Message.objects.filter(app=signed_app).count() == 2
    assert LedgerEntry.objects.filter(app=signed_app, kind="hold").count() == 2
    assert held(signed_app) + bill(signed_app) == Decimal("0.1000")
    assert_books(signed_app)
    codes.verify_code(app=signed_app, phone=phone(0), purpose="generic", code="111111")
    codes.verify_code(app=signed_app, phone=phone(1), purpose="generic", code="222222")
