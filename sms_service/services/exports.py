"""Exports of messages, the ledger and bills as CSV, streamed row by row.

Each export is a generator over ``QuerySet.iterator()`` (server-side cursors on
PostgreSQL), written through :mod:`csv` into a ``StreamingHttpResponse`` by the
admin: memory stays flat whatever the range. Phone numbers are masked unless
the caller says the user may see them (``sms_service.view_full_numbers``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..conf import app_settings
from ..models import App, LedgerEntry, LedgerKind, Message, MessageStatus, mask_phone

#: Rows fetched from the database per round trip.
CHUNK_SIZE = 2000

KINDS = ("messages", "ledger", "bills")


@dataclass(frozen=True)
class DateRange:
    """Whole local days from ``start`` to ``end`` inclusive."""

    start: date
    end: date

    @property
    def since(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def until(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def rows(
    *, kind: str, period: DateRange, app: App | None = None, full_numbers: bool = False
) -> Iterator[list[Any]]:
    """The header row, then one list per row of export ``kind``."""
    if kind == "messages":
        return message_rows(period=period, app=app, full_numbers=full_numbers)
    if kind == "ledger":
        return ledger_rows(period=period, app=app)
    if kind == "bills":
        return bill_rows(period=period, app=app)
    raise ValueError(f"Unknown export {kind!r}: choose one of {', '.join(KINDS)}.")


def _local(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _in(queryset: Any, period: DateRange, app: App | None) -> Any:
    queryset = queryset.filter(created_at__gte=period.since, created_at__lt=period.until)
    return queryset.filter(app=app) if app is not None else queryset


def message_rows(
    *, period: DateRange, app: App | None = None, full_numbers: bool = False
) -> Iterator[list[Any]]:
    currency = app_settings.CURRENCY
    yield [
        f"created ({timezone.get_current_timezone_name()})", "app", "phone number",
        "country", "channel", "type", "template", "status", "billed messages",
        f"cost ({currency})", "provider", "provider message id", "error",
    ]
    queryset = _in(Message.objects.all(), period, app).order_by("created_at", "pk")
    statuses = dict(MessageStatus.choices)
    for row in queryset.values_list(
        "created_at", "app__name", "phone", "region", "channel", "kind",
        "template_version__template__name", "status", "segments", "cost", "provider",
        "provider_message_id", "error_message",
    ).iterator(chunk_size=CHUNK_SIZE):
        (created, app_name, phone, region, channel, kind, template, status, segments,
         cost, provider, provider_id, error) = row
        yield [
            _local(created), app_name, phone if full_numbers else mask_phone(phone),
            region, channel, kind, template or "", statuses.get(status, status), segments,
            cost, provider, provider_id, error,
        ]


def ledger_rows(*, period: DateRange, app: App | None = None) -> Iterator[list[Any]]:
    currency = app_settings.CURRENCY
    yield [
        f"at ({timezone.get_current_timezone_name()})", "app", "kind",
        f"amount ({currency})", f"held change ({currency})", "message id", "by",
        "reason",
    ]
    kinds = dict(LedgerKind.choices)
    queryset = _in(LedgerEntry.objects.all(), period, app).order_by("created_at", "pk")
    for created, app_name, kind, amount, held, message_id, actor, reason in (
        queryset.values_list("created_at", "app__name", "kind", "amount", "held_change",
                             "message_id", "actor__username", "reason")
        .iterator(chunk_size=CHUNK_SIZE)
    ):
        yield [_local(created), app_name, kinds.get(kind, kind), amount, held,
               message_id or "", actor or "", reason]


def bill_rows(*, period: DateRange, app: App | None = None) -> Iterator[list[Any]]:
    """Settled charges per day, app, channel, country and template."""
    currency = app_settings.CURRENCY
    yield ["day", "app", "channel", "country", "template", "messages",
           "billed messages", f"amount ({currency})"]
    queryset = (
        _in(LedgerEntry.objects.filter(kind=LedgerKind.CHARGE), period, app)
        .annotate(day=TruncDate("created_at"))
        .values("day", "app__name", "message__channel", "message__region",
                template=F("message__template_version__template__name"))
        .annotate(messages=Count("pk"), segments=Sum("message__segments"),
                  total=Sum("held_change"))
        .order_by("day", "app__name", "message__channel", "message__region", "template")
    )
    for row in queryset.iterator(chunk_size=CHUNK_SIZE):
        yield [row["day"], row["app__name"], row["message__channel"] or "",
               row["message__region"] or "", row["template"] or "", row["messages"],
               row["segments"] or 0,
               -Decimal(str(row["total"] or 0)).quantize(Decimal("0.0001"))]


class _Echo:
    """A file-like object whose ``write`` returns what it was given (for csv)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(source: Iterable[list[Any]], *, rows_per_chunk: int = 500) -> Iterator[str]:
    """CSV text in chunks of ``rows_per_chunk`` lines (fewer, larger writes to the
    client); a BOM first so spreadsheet programs read UTF-8."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    lines: list[str] = []
    for row in source:
        lines.append(writer.writerow(row))
        if len(lines) >= rows_per_chunk:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)
