"""Helpers shared by the billing and receipt tests."""

from __future__ import annotations

import itertools
from decimal import Decimal

from django.db import connection, transaction

from sms_service.models import (
    App,
    LedgerEntry,
    LedgerKind,
    Message,
    MessageStatus,
    Price,
)
from sms_service.services import billing

_pids = itertools.count(1)

requires_postgresql = (
    "concurrency needs real row locks: run with DATABASE_URL=postgres://... "
    "(SQLite serialises writers and select_for_update is a no-op there)"
)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def set_price(unit: str, *, region: str = "CN", channel: str = "sms") -> Price:
    price, _ = Price.objects.update_or_create(
        region=region, channel=channel, defaults={"unit_price": Decimal(unit)}
    )
    return price


def funded_app(balance: str, **fields) -> App:
    app = App.objects.create(name="Billing", company_name="Billing Ltd", **fields)
    if Decimal(balance) > 0:
        billing.top_up(app=app, amount=balance, reason="test funds")
    app.refresh_from_db()
    return app


def phone(i: int) -> str:
    """Distinct mainland numbers that share neither a number nor a prefix."""
    return f"+86139{i:04d}{(i * 7919) % 10000:04d}"


def held_message(
    app: App, *, cost: str, segments: int = 1, pid: str | None = None
) -> Message:
    """Create and hold a message as sending.request_sms does (one transaction)."""
    with transaction.atomic():
        message = Message.objects.create(
            app=app,
            phone=phone(next(_pids) % 10000),
            region="CN",
            body="test",
            segments=segments,
            cost=Decimal(cost),
            provider="fake",
            provider_message_id=pid or "",
        )
        billing.hold(message=message)
    return message


def accepted_message(app: App, *, cost: str) -> Message:
    """A held message the fake provider accepted (awaiting its receipt)."""
    from sms_service.services import outbox

    message = held_message(app, cost=cost)
    assert outbox.transition(message, MessageStatus.SENDING)
    assert outbox.transition(
        message,
        MessageStatus.ACCEPTED,
        provider="fake",
        provider_message_id=f"fake-{message.pk}",
    )
    return message


def bill(app: App) -> Decimal:
    entries = LedgerEntry.objects.filter(app=app, kind=LedgerKind.CHARGE)
    return sum((entry.billed for entry in entries), Decimal(0))


def held(app: App) -> Decimal:
    """Money held for the app's unsettled messages (a ledger sum)."""
    return billing.books(app=app).held


def assert_books(app: App) -> None:
    """The invariants of the books: never negative, the balance column equals the
    ledger sum, and held equals the cost of the messages whose hold is open."""
    books = billing.books(app=app)
    assert books.balance >= 0
    assert books.held >= 0
    assert books.consistent, books
    open_holds = sum((m.cost for m in billing.unsettled(app=app)), Decimal(0))
    assert books.held == open_holds
