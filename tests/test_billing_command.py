"""``manage.py sms_service_app topup APP_ID AMOUNT --reason …``."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sms_service.models import LedgerEntry
from tests.billing_support import assert_books

pytestmark = pytest.mark.django_db


def test_topup_command_adds_an_audited_ledger_entry(app):
    call_command(
        "sms_service_app",
        "topup",
        app.app_id,
        "12.50",
        "--reason",
        "invoice 9",
        stdout=StringIO(),
    )
    app.refresh_from_db()
    assert app.balance == Decimal("12.5")
    entry = LedgerEntry.objects.get(app=app)
    assert entry.kind == "top_up" and entry.reason.startswith(
        "invoice 9 [manage.py by "
    )
    assert_books(app)


def test_topup_command_is_repeat_safe_with_a_key(app):
    for _ in range(2):
        call_command(
            "sms_service_app",
            "topup",
            app.app_id,
            "5",
            "--reason",
            "pay",
            "--idempotency-key",
            "pay-77",
            stdout=StringIO(),
        )
    app.refresh_from_db()
    assert app.balance == 5


@pytest.mark.parametrize(
    "args", [["1.5"], ["abc", "--reason", "x"], ["-1", "--reason", "x"]]
)
def test_topup_command_refuses_bad_input(app, args):
    with pytest.raises(CommandError):
        call_command("sms_service_app", "topup", app.app_id, *args, stdout=StringIO())
    app.refresh_from_db()
    assert app.balance == 0
