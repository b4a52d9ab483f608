"""Billing: quotes, real-time holds, settlement, top-ups and alerts.

Money model (details and the entry table in :mod:`sms_service.models.billing`):

* ``App.balance`` is what the app can still spend. "Held" money was taken out of
  it for messages whose bill is not settled yet; the held total is the ledger's
  ``Σ held_change`` (no column, so a charge never writes the App row).
* :func:`hold` runs in the transaction that queues a message and moves
  ``segments × unit price`` out of the balance with ONE conditional UPDATE
  (``balance >= cost`` and the daily cap in the WHERE clause). PostgreSQL
  re-checks that clause after waiting for a concurrent writer, so the balance
  never goes negative and the cap is never overshot; the CHECK constraint on
  ``App.balance`` is the last line of defence.
* :func:`on_status_change` settles the hold once per message: released when the
  provider refused the call (not billed), charged when a receipt says delivered
  or undelivered (delivery failures are billed). Accepted / unknown messages stay
  held, off the bill, until a receipt arrives or :func:`settle_overdue` applies
  ``OVERDUE_POLICY``.
* Every change of ``balance`` writes a ledger entry in the same transaction; unique constraints on (message, kind) and on one settlement per
  message make replays and retries harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Case, F, QuerySet, Sum, Value, When
from django.db.models.functions import Greatest, Round, TruncDate
from django.utils import timezone
from django.utils.translation import gettext_noop

from .. import caching, segments, signals, sql
from ..conf import app_settings
from ..exceptions import (
    AppThresholdExceededError,
    InsufficientBalanceError,
    InvalidParameterError,
    MessageTooLongError,
    RegionNotPricedError,
    SmsServiceConfigurationError,
)
from ..models import (
    App,
    Channel,
    LedgerEntry,
    LedgerKind,
    Message,
    MessageEvent,
    MessageStatus,
    Price,
)
from ..models.billing import SETTLEMENT_KINDS
from ..phone import PhoneNumber
from . import notifications

logger = logging.getLogger(__name__)

_PLACES = Decimal("0.0001")
_MAX_AMOUNT = Decimal("999999999999")  # 12 integer digits fit max_digits=16, places=4
_MONEY_FIELD = models.DecimalField(max_digits=16, decimal_places=4)


def _plus(field: str, delta: Any) -> Round:
    """``field + delta`` rounded to 4 places in SQL. PostgreSQL's numeric is exact
    anyway; SQLite computes in floats, and the rounding keeps its stored values
    the nearest float of a 4-place decimal so ``balance >= cost`` stays right."""
    return Round(F(field) + delta, 4, output_field=_MONEY_FIELD)


#: The values of OVERDUE_POLICY: bill or release a message left without a receipt.
OVERDUE_POLICIES = ("charge", "release")

#: Statuses whose hold waits for a receipt (or the overdue policy).
AWAITING_RECEIPT = (MessageStatus.ACCEPTED, MessageStatus.UNKNOWN)


@dataclass(frozen=True)
class Quote:
    """The price of one final text to one destination."""

    length: int  # characters, as stored on the message
    segments: int
    unit_price: Decimal
    amount: Decimal
    encoding: str = "chars"  # "chars", "gsm7", "ucs2" or "voice"
    units: int = 0  # characters, septets or UTF-16 units, per ``encoding``


# --- prices and quotes -------------------------------------------------------------


#: Cache key of the whole Price table (small: regions × channels).
PRICES_CACHE_KEY = "sms_service:prices"


def price_table() -> dict[tuple[str, str], str]:
    """Every Price row as ``{(region, channel): unit price}``, kept in the caches
    for ``PRICE_CACHE_SECONDS`` and dropped when a price is saved or deleted."""
    return caching.read_through(PRICES_CACHE_KEY, _load_prices,
                                app_settings.PRICE_CACHE_SECONDS)


def _load_prices() -> dict[tuple[str, str], str]:
    return {(region, channel): str(price) for region, channel, price
            in Price.objects.values_list("region", "channel", "unit_price")}


def forget_prices() -> None:
    caching.forget(PRICES_CACHE_KEY)


def unit_price(*, region: str, channel: str) -> Decimal:
    """Unit price for a destination region and channel: the admin's Price row, or
    ``DEFAULT_UNIT_PRICES[channel]`` for regions without one.

    Raises :class:`RegionNotPricedError` when neither exists: an unpriced send
    is refused rather than sent free (and uncounted by the daily spend cap).
    """
    price = price_table().get((region.upper(), channel))
    if price is not None:
        return Decimal(price)
    default = app_settings.DEFAULT_UNIT_PRICES.get(channel)
    if default is None:
        raise RegionNotPricedError(
            f"Sending {channel} to region {region or 'unknown'} is not priced: add a "
            "price for it in the admin (or a default unit price). Nothing was sent."
        )
    try:
        return to_money(default)
    except InvalidParameterError as exc:
        raise SmsServiceConfigurationError(
            f'SMS_SERVICE["DEFAULT_UNIT_PRICES"]["{channel}"] must be a decimal string'
        ) from exc


def quote(*, app: App, phone: PhoneNumber, channel: str, text: str) -> Quote:
    """Count and price the final text (signature and suffixes included).

    Raises :class:`MessageTooLongError` over ``MAX_MESSAGE_LENGTH`` characters,
    before anything is queued or charged.
    """
    if len(text) > app_settings.MAX_MESSAGE_LENGTH:
        raise MessageTooLongError(
            f"The message is longer than {app_settings.MAX_MESSAGE_LENGTH} characters."
        )
    if channel == Channel.VOICE:
        # A voice call is billed per call, whatever it reads.
        counted = segments.SegmentCount(length=len(text), segments=1, encoding="voice")
    else:
        counted = segments.count(text, segments.mode_for(domestic=phone.is_domestic))
    price = (
        unit_price(region=phone.region, channel=channel)
        if app_settings.BILLING_ENABLED
        else Decimal(0)
    )
    return Quote(
        length=len(text),
        segments=counted.segments,
        unit_price=price,
        amount=(price * counted.segments).quantize(_PLACES),
        encoding=counted.encoding,
        units=counted.length,
    )


def to_money(value: Any) -> Decimal:
    """A Decimal with 4 places from user input; refuses floats, NaN and overflow."""
    if isinstance(value, float | bool):
        raise InvalidParameterError(gettext_noop("Amounts must be given as decimal strings."))
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise InvalidParameterError(f"Not a decimal amount: {value!r}.") from exc
    if not amount.is_finite() or abs(amount) > _MAX_AMOUNT:
        raise InvalidParameterError(f"Not a valid amount: {value!r}.")
    return amount.quantize(_PLACES)


# --- the hold ----------------------------------------------------------------------


def hold(*, message: Message) -> None:
    """Take ``message.cost`` out of the app's balance and hold it.

    Called inside the transaction that creates the message, so a refusal rolls
    the message back too. Raises :class:`InsufficientBalanceError` (160) or
    :class:`AppThresholdExceededError` (154, daily spend cap).
    """
    statement = hold_statement(message=message)
    if statement is None:
        return
    taken = sql.run(App, *statement)
    if not taken:
        raise refusal(app_pk=message.app_id, cost=message.cost)
    hold_entry(message=message).save()
    after_hold(message=message)


def hold_statement(*, message: Message) -> tuple[str, list[Any]] | None:
    """The hold's conditional UPDATE of the app row (``{table}`` unformatted) and
    its params; None when the message costs nothing."""
    cost = message.cost
    if not cost or cost <= 0:
        return None
    today = timezone.localdate()
    return _HOLD, [cost, today, cost, today, message.app_id, cost, today, cost]


def hold_entry(*, message: Message) -> LedgerEntry:
    """The hold's ledger entry, unsaved."""
    return LedgerEntry(app_id=message.app_id, kind=LedgerKind.HOLD, amount=-message.cost,
                       held_change=message.cost, message=message)


def after_hold(*, message: Message) -> None:
    """What follows a hold that was taken: the balance alert, when it is due."""
    if message.app.balance_alert_threshold is not None:
        _arm_balance_alert(app_pk=message.app_id)


# The hold as one conditional UPDATE, written out (see sms_service.sql): take
# ``cost`` from the balance and add it to the day's spend (restarting the count
# on a new day), only if the balance covers it and the daily cap allows it.
# ROUND keeps SQLite's float arithmetic on 4-place values (see _plus).
_HOLD = (
    "UPDATE {table} SET "
    "balance = ROUND(balance - %s, 4), "
    "spent_today = ROUND(CASE WHEN spend_day = %s THEN spent_today ELSE 0 END + %s, 4), "
    "spend_day = %s "
    "WHERE id = %s AND balance >= %s AND (daily_spend_cap IS NULL OR "
    "daily_spend_cap >= CASE WHEN spend_day = %s THEN spent_today ELSE 0 END + %s)"
)


def refusal(*, app_pk: int, cost: Decimal) -> Exception:
    """Why a hold was not taken: the balance (160) or the daily spend cap (154)."""
    row = App.objects.filter(pk=app_pk).values("balance").first()
    if row is None or row["balance"] < cost:
        return InsufficientBalanceError()
    return AppThresholdExceededError(
        "Exceeded an application threshold setting: the daily spend cap."
    )


# --- settlement --------------------------------------------------------------------


def on_status_change(*, message: Message, old_status: str, new_status: str) -> None:
    """Settle the hold when a message reaches a status that decides the bill.

    Runs inside :func:`lifecycle.transition`'s transaction, after its conditional
    status UPDATE: each transition happens once, and the ledger's constraints
    make a second settlement of the same message a no-op whatever the order.
    """
    if new_status == MessageStatus.FAILED:
        settle(message=message, kind=LedgerKind.RELEASE, reason="call failed")
    elif new_status in (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED):
        _charge(message=message, reason=new_status)


def _charge(*, message: Message, reason: str) -> None:
    """The hot-path charge: one INSERT that the ledger's constraints turn into a
    no-op when the message was settled already (e.g. by the overdue policy). A
    charge moves no balance, so nothing else depends on whether it inserted."""
    if message.is_test or not message.cost or message.cost <= 0:
        return
    LedgerEntry.objects.bulk_create(
        [LedgerEntry(app_id=message.app_id, kind=LedgerKind.CHARGE, amount=Decimal(0),
                     held_change=-message.cost, message=message, reason=reason[:200])],
        ignore_conflicts=True,
    )


def charge_delivered_statement(*, connection: Any, source: str) -> tuple[str, list[Any]]:
    """The charge of delivered messages as one INSERT (PostgreSQL, inside a
    WITH): a :func:`settle` charge for each row of ``source`` (columns ``id``,
    ``app_id``, ``cost``, ``is_test``) that was held, with its params. A
    message settled already keeps its settlement (the ledger's unique
    settlement per message; the conflict is skipped)."""
    template = LedgerEntry(kind=LedgerKind.CHARGE, amount=Decimal(0), held_change=Decimal(0),
                           reason=MessageStatus.DELIVERED)
    statement, params = sql.insert_from(
        template, connection, source,
        computed={"app_id": f"{source}.app_id", "message_id": f"{source}.id",
                  "held_change": f"-{source}.cost"})
    return (f"{statement} WHERE NOT {source}.is_test AND {source}.cost > 0 "
            "ON CONFLICT DO NOTHING", params)


def settle(*, message: Message, kind: str, reason: str = "") -> bool:
    """Charge or release ``message``'s hold; False if it was settled already (or
    never held). Safe to call concurrently and repeatedly."""
    cost = message.cost
    if message.is_test or not cost or cost <= 0:
        return False
    if kind == LedgerKind.CHARGE:
        updates: dict[str, Any] = {}
        amount = Decimal(0)
    elif kind == LedgerKind.RELEASE:
        # Money not billed does not count against the day's spend cap either.
        hold_day = timezone.localdate(message.created_at)
        updates = {
            "balance": _plus("balance", cost),
            "spent_today": Case(
                When(
                    spend_day=hold_day,
                    then=Greatest(
                        _plus("spent_today", -cost),
                        Value(Decimal(0)),
                        output_field=_MONEY_FIELD,
                    ),
                ),
                default=F("spent_today"),
                output_field=_MONEY_FIELD,
            ),
        }
        amount = cost
    else:
        raise ValueError(f"not a settlement kind: {kind!r}")
    try:
        # The savepoint lets the caller's transaction go on when the unique
        # constraint says another worker or receipt settled the message first.
        with transaction.atomic():
            LedgerEntry.objects.create(
                app_id=message.app_id,
                kind=kind,
                amount=amount,
                held_change=-cost,
                message=message,
                reason=reason[:200],
            )
            if updates:  # a charge only moves money from held to the bill
                App.objects.filter(pk=message.app_id).update(**updates)
    except IntegrityError:
        return False
    return True


def settle_overdue(*, now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """Settle messages that waited for a receipt longer than ``SETTLE_AFTER_SECONDS``
    with ``OVERDUE_POLICY`` ("charge" by default). Idempotent; run periodically."""

    policy = app_settings.OVERDUE_POLICY
    if policy not in OVERDUE_POLICIES:
        raise SmsServiceConfigurationError(
            'SMS_SERVICE["OVERDUE_POLICY"] must be "charge" or "release"'
        )
    kind = LedgerKind.CHARGE if policy == "charge" else LedgerKind.RELEASE
    cutoff = (now or timezone.now()) - timedelta(
        seconds=app_settings.SETTLE_AFTER_SECONDS
    )
    overdue = (
        Message.objects.filter(
            status__in=AWAITING_RECEIPT,
            cost__gt=0,
            is_test=False,
            updated_at__lt=cutoff,
        )
        .exclude(ledger_entries__kind__in=SETTLEMENT_KINDS)
        .order_by("updated_at")[:limit]
    )
    settled = 0
    for message in overdue:
        with transaction.atomic():
            if settle(message=message, kind=kind, reason=f"overdue: {policy}"):
                MessageEvent.objects.record(
                    message,
                    f"no receipt in time: {policy}d by policy",
                    status=message.status,
                    policy=policy,
                )
                settled += 1
    return {"settled": settled, "policy_" + policy: settled}


# --- top-ups, adjustments, refunds ---------------------------------------------------


def top_up(
    *, app: App, amount: Any, reason: str, actor: Any = None, idempotency_key: str = ""
) -> LedgerEntry:
    """Add money to ``app`` (audited: who, when, why). With an idempotency key a
    repeated call returns the first entry instead of adding again."""
    value = to_money(amount)
    if value <= 0:
        raise InvalidParameterError(gettext_noop("A top-up must be a positive amount."))
    return _credit_or_debit(
        app=app,
        kind=LedgerKind.TOP_UP,
        amount=value,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
    )


def adjust(
    *, app: App, amount: Any, reason: str, actor: Any = None, idempotency_key: str = ""
) -> LedgerEntry:
    """Correct ``app``'s balance by a signed amount (audited). A debit larger than
    the balance raises :class:`InsufficientBalanceError`."""
    value = to_money(amount)
    if value == 0:
        raise InvalidParameterError(gettext_noop("An adjustment must not be zero."))
    return _credit_or_debit(
        app=app,
        kind=LedgerKind.ADJUSTMENT,
        amount=value,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
    )


def refund(*, message: Message, reason: str, actor: Any = None) -> LedgerEntry:
    """Give back what a charged message cost (once per message, audited)."""
    charge = LedgerEntry.objects.filter(message=message, kind=LedgerKind.CHARGE).first()
    if charge is None:
        raise InvalidParameterError(gettext_noop("Only a charged message can be refunded."))
    reason = _reason(reason)
    try:
        with transaction.atomic():
            App.objects.filter(pk=message.app_id).update(
                balance=_plus("balance", charge.billed)
            )
            entry = LedgerEntry.objects.create(
                app_id=message.app_id,
                kind=LedgerKind.REFUND,
                amount=charge.billed,
                message=message,
                reason=reason,
                actor=_user(actor),
            )
            _rearm_balance_alert(app_pk=message.app_id)
    except IntegrityError:
        raise InvalidParameterError(gettext_noop("This message was refunded already.")) from None
    return entry


def _credit_or_debit(
    *,
    app: App,
    kind: str,
    amount: Decimal,
    reason: str,
    actor: Any,
    idempotency_key: str,
) -> LedgerEntry:
    reason = _reason(reason)
    if len(idempotency_key) > 64:
        raise InvalidParameterError(gettext_noop("The idempotency key is longer than 64 characters."))
    try:
        with transaction.atomic():
            rows = App.objects.filter(pk=app.pk)
            if amount < 0:
                rows = rows.filter(balance__gte=-amount)
            if not rows.update(balance=_plus("balance", amount)):
                raise InsufficientBalanceError()
            entry = LedgerEntry.objects.create(
                app_id=app.pk,
                kind=kind,
                amount=amount,
                reason=reason,
                actor=_user(actor),
                idempotency_key=idempotency_key,
            )
            if amount > 0:
                _rearm_balance_alert(app_pk=app.pk)
    except IntegrityError:
        if not idempotency_key:
            raise
        return LedgerEntry.objects.get(app_id=app.pk, idempotency_key=idempotency_key)
    app.refresh_from_db(fields=["balance", "balance_alert_sent_at"])
    return entry


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidParameterError(gettext_noop("A reason is required for the audit trail."))
    return reason[:1000]


def _user(actor: Any) -> Any:
    # Management commands pass None; anonymous users are not auditable actors.
    return actor if getattr(actor, "is_authenticated", False) else None


# --- balance alerts ----------------------------------------------------------------


def _arm_balance_alert(*, app_pk: int) -> None:
    """Mark the alert sent if the balance just fell below the threshold; the
    conditional UPDATE makes it one email however many sends cross the line."""
    fired = App.objects.filter(
        pk=app_pk,
        balance_alert_sent_at__isnull=True,
        balance__lt=F("balance_alert_threshold"),
    ).update(balance_alert_sent_at=timezone.now())
    if fired:
        transaction.on_commit(partial(send_balance_alert, app_pk=app_pk))


def _rearm_balance_alert(*, app_pk: int) -> None:
    # Only money added by people re-arms the alert: a release of held money must
    # not, or a balance hovering at the threshold would mail on every message.
    App.objects.filter(
        pk=app_pk,
        balance_alert_sent_at__isnull=False,
        balance__gte=F("balance_alert_threshold"),
    ).update(balance_alert_sent_at=None)


def send_balance_alert(*, app_pk: int) -> bool:
    """Tell the app owner that the balance is below the alert threshold."""
    app = App.objects.select_related("owner").filter(pk=app_pk).first()
    if app is None:
        return False
    signals.balance_low.send_robust(
        sender=App, app=app, balance=app.balance, threshold=app.balance_alert_threshold
    )
    return notifications.notify_owner(
        app=app,
        subject=f"[{app.name}] SMS balance below {app.balance_alert_threshold}",
        body=(
            f"The SMS balance of {app.name} ({app.app_id}) is {app.balance}, below "
            f"the alert threshold of {app.balance_alert_threshold}. Messages are "
            "refused once the balance cannot pay for them; please top up.\n"
        ),
        event=notifications.BALANCE_LOW,
        context={"balance": app.balance, "threshold": app.balance_alert_threshold},
    )


# --- reading the books -------------------------------------------------------------


@dataclass(frozen=True)
class Books:
    balance: Decimal  # the App.balance column
    ledger_balance: Decimal  # Σ amount over the ledger
    held: Decimal  # Σ held_change: open holds (accepted / unknown / in flight)

    @property
    def consistent(self) -> bool:
        return self.balance == self.ledger_balance


def books(*, app: App) -> Books:
    """The app's balance column next to the ledger sums (they must be equal)."""
    balance = App.objects.filter(pk=app.pk).values_list("balance", flat=True).get()
    totals = LedgerEntry.objects.for_app(app).totals()
    # SQLite sums decimals as floats: compare at the column's 4 places.
    return Books(
        balance=balance,
        ledger_balance=totals["balance"].quantize(_PLACES),
        held=totals["held"].quantize(_PLACES),
    )


def bill_by_channel(
    *, app: App, start: date, end: date
) -> list[tuple[date, dict[str, Decimal]]]:
    """Settled charges per local day and channel (``"sms"``, ``"voice"``) from
    ``start`` to ``end``, oldest first, every day present."""
    rows = (
        _charges(app)
        .filter(created_at__date__gte=start, created_at__date__lte=end)
        .annotate(day=TruncDate("created_at"))
        .values("day", channel=F("message__channel"))
        .annotate(total=Sum("held_change"))
    )
    table: dict[date, dict[str, Decimal]] = {
        start + timedelta(days=i): {Channel.SMS: Decimal(0), Channel.VOICE: Decimal(0)}
        for i in range((end - start).days + 1)
    }
    for row in rows:
        channel = row["channel"] or Channel.SMS
        table[row["day"]][channel] = (-row["total"]).quantize(_PLACES)
    return sorted(table.items())


def bill_by_template(
    *, app: App, since: date | None = None, until: date | None = None
) -> list[dict[str, Any]]:
    """Settled charges grouped by template name ("" for the default text) and
    channel, so voice codes are never mixed with default-text SMS."""
    rows = _charges(app)
    if since is not None:
        rows = rows.filter(created_at__date__gte=since)
    if until is not None:
        rows = rows.filter(created_at__date__lte=until)
    rows = (
        rows.values(template=F("message__template_version__template__name"),
                    channel=F("message__channel"))
        .annotate(
            total=Sum("held_change"),
            messages=models.Count("pk"),
            segments=Sum("message__segments"),
        )
        .order_by("total")
    )
    return [
        {
            "template": row["template"] or "",
            "channel": row["channel"] or Channel.SMS,
            "amount": (-row["total"]).quantize(_PLACES),
            "messages": row["messages"],
            "segments": row["segments"] or 0,
        }
        for row in rows
    ]


def _charges(app: App) -> models.QuerySet:
    return LedgerEntry.objects.filter(app=app, kind=LedgerKind.CHARGE)


def unsettled(*, app: App) -> QuerySet[Message]:
    """Messages whose hold is still open (awaiting a receipt or the policy)."""
    return (
        Message.objects.filter(app=app, ledger_entries__kind=LedgerKind.HOLD)
        .exclude(ledger_entries__kind__in=SETTLEMENT_KINDS)
        .order_by("-created_at")
    )
