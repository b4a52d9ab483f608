"""The hand-written send statement stores a row exactly as ``save()`` would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from sms_service import sql
from sms_service.models import Message, MessageStatus, VerificationCode

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the one-statement send is PostgreSQL's"),
]

#: Set by save() itself (auto_now): they differ by the time between the two writes.
STAMPED = {"id", "created_at", "updated_at"}


def _insert(obj) -> int:
    statement, params = sql.insert_from(obj, connection, "h")
    with connection.cursor() as cursor:
        cursor.execute(f"WITH h AS (SELECT 1), r AS ({statement} RETURNING id) "
                       "SELECT id FROM r", params)
        return cursor.fetchone()[0]


def _stored(model, pk: int) -> dict:
    row = model.objects.filter(pk=pk).values().get()
    return {name: value for name, value in row.items() if name not in STAMPED}


def _message(app, signature, **values) -> Message:
    fields = {
        "app": app, "phone": "+8613800001234", "region": "CN", "channel": "sms",
        "kind": "verification", "signature": signature, "body": "Your code is ******",
        "payload": b"\x00encrypted\xff", "length": 40, "segments": 1, "cost": Decimal("0.0500"),
        "is_test": False, "status": MessageStatus.QUEUED, "backend": "default", "provider": "",
        "attempts": 0, "client_ip": "203.0.113.9", "next_attempt_at": None,
    }
    return Message(**{**fields, **values})


@pytest.mark.parametrize("values", [
    {},
    # Values of other types than the column's own: save() converts them.
    {"attempts": True, "length": Decimal("41"), "segments": "2", "client_ip": None,
     "template_version": None, "cost": 0, "provider": "twilio", "status": "sending"},
    {"next_attempt_at": timezone.now() + timedelta(minutes=3), "attempts": 32767,
     "length": 70_000, "error_message": "", "is_test": True},
])
def test_a_message_is_stored_as_save_stores_it(app, signature, values) -> None:
    saved = _message(app, signature, **values)
    saved.save()
    written = _insert(_message(app, signature, **values))

    assert _stored(Message, written) == _stored(Message, saved.pk)


def test_a_code_is_stored_as_save_stores_it(app) -> None:
    now = timezone.now()
    fields = {"app": app, "purpose": "generic", "status": "active", "attempts": 0,
              "expires_at": now + timedelta(minutes=10), "created_at": now,
              "data": {"op": "login", "nested": [1, None]}}
    saved = VerificationCode(phone="+8613800000001", digest="a" * 64, lookup="b" * 64, **fields)
    saved.save()
    written = _insert(VerificationCode(phone="+8613800000002", digest="c" * 64,
                                       lookup="d" * 64, **fields))

    stored, expected = _stored(VerificationCode, written), _stored(VerificationCode, saved.pk)
    assert (stored.pop("phone"), stored.pop("digest"), stored.pop("lookup")) == (
        "+8613800000002", "c" * 64, "d" * 64)
    for name in ("phone", "digest", "lookup"):
        expected.pop(name)
    assert stored == expected
