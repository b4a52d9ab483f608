"""Exports of messages, the ledger and bills as CSV (streamed row by row) or XLSX.

Each export is a generator over ``QuerySet.iterator()`` (server-side cursors on
PostgreSQL), written through :mod:`csv` into a ``StreamingHttpResponse`` by the
admin: memory stays flat whatever the range. The XLSX file (the ``xlsx`` extra,
XlsxWriter) is written row by row in XlsxWriter's constant-memory mode into a
temporary file, then sent: memory stays flat there too. Phone numbers are masked unless
the caller says the user may see them (``sms_service.view_full_numbers``).
"""

from __future__ import annotations

import csv
import re
import tempfile
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


#: Text a spreadsheet program would read as a formula (or a DDE call) when a
#: CSV cell starts with it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A signed number or a phone number, masked or not: harmless where a formula
#: could start, and kept as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9*]+(\.[0-9]+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` for a CSV cell: text that would start a formula gets a leading
    apostrophe (shown as text, never evaluated); numbers and phone numbers pass."""
    if (isinstance(value, str) and value.startswith(_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def csv_lines(source: Iterable[list[Any]], *, rows_per_chunk: int = 500) -> Iterator[str]:
    """CSV text in chunks of ``rows_per_chunk`` lines (fewer, larger writes to the
    client); a BOM first so spreadsheet programs read UTF-8. Free text that a
    spreadsheet would evaluate as a formula is written as text."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    lines: list[str] = []
    for row in source:
        lines.append(writer.writerow([spreadsheet_safe(cell) for cell in row]))
        if len(lines) >= rows_per_chunk:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def xlsx_available() -> bool:
    """Whether XLSX exports can be written (XlsxWriter, the ``xlsx`` extra)."""
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:
        return False
    return True


#: Rows of one worksheet in Excel; a longer export goes on into another sheet.
XLSX_MAX_ROWS = 1_048_576


def xlsx_file(source: Iterable[list[Any]], *, title: str,
              max_rows: int = XLSX_MAX_ROWS) -> Any:
    """The rows as an XLSX workbook, in a temporary file positioned at its start
    (the caller sends and closes it).

    XlsxWriter's constant-memory mode writes each row out as the next begins,
    strings inline: memory stays flat however many rows. Numbers, amounts and
    days stay typed cells; text is never read as a formula or a link. Past
    ``max_rows`` the rows go on in another sheet under the same header.
    """
    import xlsxwriter

    target = tempfile.TemporaryFile()
    workbook = xlsxwriter.Workbook(target, {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
        "tmpdir": tempfile.gettempdir(),
    })
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    rows = iter(source)
    header = next(rows, [])
    sheets = 0
    sheet: Any = None
    row_index = max_rows
    for row in rows:
        if row_index >= max_rows:
            sheets += 1
            sheet = workbook.add_worksheet(f"{title[:24]} {sheets}" if sheets > 1 else title[:31])
            sheet.write_row(0, 0, [str(name) for name in header])
            row_index = 1
        for column, value in enumerate(row):
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, date)):
                sheet.write_string(row_index, column, str(value))
            elif isinstance(value, date) and not isinstance(value, datetime):
                sheet.write_datetime(row_index, column, value, day)
            elif isinstance(value, date):
                sheet.write_string(row_index, column, _local(value))
            else:
                sheet.write_number(row_index, column, value)
        row_index += 1
    if sheet is None:  # no rows: the header alone
        workbook.add_worksheet(title[:31]).write_row(0, 0, [str(name) for name in header])
    workbook.close()
    target.seek(0)
    return target
