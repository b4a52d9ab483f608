"""Exports: CSV (streamed) and XLSX of messages, ledger and bills per period, numbers
masked."""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from sms_service.models import App, Message
from sms_service.services import billing

pytestmark = pytest.mark.django_db

EXPORT = "admin:sms_service_export"


def _staff(client, *codenames: str):
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def _day(days_ago: int, hour: int = 12) -> datetime:
    local = timezone.localtime().replace(hour=hour, minute=0, second=0, microsecond=0)
    return local - timedelta(days=days_ago)


def _messages(app: App, count: int, *, at: datetime, start: int = 0) -> None:
    Message.objects.bulk_create(
        [
            Message(app=app, phone=f"+86186{start + i:08d}", region="CN", body="x",
                    status="delivered", cost=Decimal("0.05"), created_at=at)
            for i in range(count)
        ],
        batch_size=5000,
    )


def _csv(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def _range(days_ago_start: int, days_ago_end: int = 0) -> dict[str, str]:
    today = timezone.localdate()
    return {"range": "custom", "start": str(today - timedelta(days=days_ago_start)),
            "end": str(today - timedelta(days=days_ago_end))}


def test_message_export_masks_numbers_without_the_permission(client, app):
    _messages(app, 2, at=_day(1))
    _messages(app, 1, at=_day(20), start=50)  # outside the range
    _staff(client, "view_message")
    response = client.get(reverse(EXPORT), {"kind": "messages", **_range(7)})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = _csv(response)
    assert header[0].startswith("created (") and "cost (CNY)" in header
    assert [r[2] for r in rows] == ["+86186****0000", "+86186****0001"]
    assert rows[0][1] == "Demo"


def test_csv_cells_that_would_run_as_formulas_are_written_as_text(client, app):
    billing.top_up(app=app, amount="10", reason='=HYPERLINK("http://evil.example","x")')
    billing.top_up(app=app, amount="5", reason="@SUM(1+1)")
    billing.top_up(app=app, amount="1", reason="-2+3")
    _staff(client, "view_ledgerentry")
    header, *rows = _csv(client.get(reverse(EXPORT), {"kind": "ledger", "range": "today"}))
    assert sorted(r[7] for r in rows) == [
        "'-2+3", "'=HYPERLINK(\"http://evil.example\",\"x\")", "'@SUM(1+1)"]
    # Amounts and phone numbers stay as they are.
    assert sorted(r[3] for r in rows) == ["1.0000", "10.0000", "5.0000"]


def test_full_numbers_need_the_see_full_numbers_permission(client, app):
    _messages(app, 1, at=_day(0))
    _staff(client, "view_message", "view_full_numbers")
    header, row = _csv(client.get(reverse(EXPORT), {"kind": "messages", "range": "today"}))
    assert row[2] == "+8618600000000"


def test_exports_need_their_view_permission(client, app):
    _staff(client, "view_message")
    assert client.get(reverse(EXPORT), {"kind": "ledger"}).status_code == 403
    assert client.get(reverse(EXPORT), {"kind": "bills"}).status_code == 403
    page = client.get(reverse(EXPORT)).content.decode()
    assert 'value="messages"' in page and 'value="ledger"' not in page


def test_a_bad_range_shows_the_form_with_the_error(client, app):
    _staff(client, "view_message")
    response = client.get(reverse(EXPORT), {"kind": "messages", **_range(0, 5)})
    assert response.status_code == 200 and not response.streaming
    assert "The end date is before the start date." in response.content.decode()


def test_ledger_and_bill_exports_per_app_and_period(client, app):
    other = App.objects.create(name="Other")
    billing.top_up(app=app, amount="10", reason="invoice 42")
    billing.top_up(app=other, amount="99", reason="not this app")
    _staff(client, "view_ledgerentry")
    params = {"range": "7d", "app": app.pk}
    header, *rows = _csv(client.get(reverse(EXPORT), {"kind": "ledger", **params}))
    assert "amount (CNY)" in header
    assert [(r[1], r[2], r[3], r[7]) for r in rows] == [
        ("Demo", "Top-up", "10.0000", "invoice 42")]
    header, *rows = _csv(client.get(reverse(EXPORT), {"kind": "bills", **params}))
    assert header[-1] == "amount (CNY)" and rows == []  # nothing charged yet


def test_the_bill_export_splits_charges_by_channel_and_country(client, app):
    from tests.billing_support import accepted_message

    billing.top_up(app=app, amount="10", reason="funds")
    for cost in ("1", "2"):
        message = accepted_message(app, cost=cost)
        billing.settle(message=message, kind="charge")
    _staff(client, "view_ledgerentry")
    header, *rows = _csv(client.get(reverse(EXPORT), {"kind": "bills", "range": "today"}))
    assert [r[1:] for r in rows] == [["Demo", "sms", "CN", "", "2", "2", "3.0000"]]


def _xlsx(response) -> list[list]:
    import openpyxl

    assert response["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert response["Content-Disposition"].endswith('.xlsx"')
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)),
                                      read_only=True)
    (sheet,) = workbook.worksheets
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def test_xlsx_messages_open_with_the_rows_and_masked_numbers(client, app):
    _messages(app, 2, at=_day(1))
    _messages(app, 1, at=_day(20), start=50)  # outside the range
    _staff(client, "view_message")
    header, *rows = _xlsx(client.get(reverse(EXPORT), {
        "kind": "messages", "format": "xlsx", **_range(7)}))
    assert header[0].startswith("created (") and "cost (CNY)" in header
    assert [r[2] for r in rows] == ["+86186****0000", "+86186****0001"]
    assert rows[0][1] == "Demo" and rows[0][9] == 0.05  # a number, not text


def test_xlsx_full_numbers_need_the_permission(client, app):
    _messages(app, 1, at=_day(0))
    _staff(client, "view_message", "view_full_numbers")
    header, row = _xlsx(client.get(reverse(EXPORT), {
        "kind": "messages", "range": "today", "format": "xlsx"}))
    assert row[2] == "+8618600000000"


def test_xlsx_ledger_and_bill(client, app):
    from tests.billing_support import accepted_message

    billing.top_up(app=app, amount="10", reason="=HYPERLINK(\"http://x\")")
    message = accepted_message(app, cost="2")
    billing.settle(message=message, kind="charge")
    _staff(client, "view_ledgerentry")
    header, *rows = _xlsx(client.get(reverse(EXPORT), {
        "kind": "ledger", "range": "today", "format": "xlsx"}))
    top_up = next(r for r in rows if r[2] == "Top-up")
    assert top_up[3] == 10 and top_up[7] == '=HYPERLINK("http://x")'  # text, not a formula
    header, *rows = _xlsx(client.get(reverse(EXPORT), {
        "kind": "bills", "range": "today", "format": "xlsx"}))
    assert header[-1] == "amount (CNY)"
    assert [r[1:] for r in rows] == [["Demo", "sms", "CN", None, 1, 1, 2]]


def test_a_long_xlsx_export_goes_on_in_another_sheet_under_the_header():
    import openpyxl

    from sms_service.services.exports import xlsx_file

    source = [["n", "note"], *([i, f"row {i}\x01"] for i in range(5))]
    workbook = openpyxl.load_workbook(xlsx_file(source, title="ledger", max_rows=3))
    sheets = [[list(r) for r in sheet.iter_rows(values_only=True)]
              for sheet in workbook.worksheets]
    assert [len(rows) for rows in sheets] == [3, 3, 2]
    assert all(rows[0] == ["n", "note"] for rows in sheets)
    assert [row[0] for rows in sheets for row in rows[1:]] == [0, 1, 2, 3, 4]


def test_the_export_page_offers_xlsx_and_refuses_other_formats(client, app):
    _staff(client, "view_message")
    assert 'name="format" value="xlsx"' in client.get(reverse(EXPORT)).content.decode()
    response = client.get(reverse(EXPORT), {"kind": "messages", "format": "pdf"})
    assert response.status_code == 404


def _double_messages() -> None:
    """Copy every message row once, in the database (plain SQL, any backend)."""
    table = Message._meta.db_table
    columns = ", ".join(
        connection.ops.quote_name(f.column) for f in Message._meta.concrete_fields
        if not f.primary_key
    )
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}")


def test_a_100k_row_export_streams_in_flat_memory(client, app):
    """10^5 rows stream with a small, bounded peak: under half the file's size,
    so the rows never sit in memory together."""
    _messages(app, 12_500, at=_day(1))
    for _ in range(3):
        _double_messages()
    assert Message.objects.count() == 100_000
    _staff(client, "view_message")
    response = client.get(reverse(EXPORT), {"kind": "messages", **_range(3, 0)})
    size = lines = 0
    tracemalloc.start()
    try:
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == 100_001  # the header and every row
    assert size > 8_000_000
    assert peak < size / 2 and peak < 4_000_000, (peak, size)
