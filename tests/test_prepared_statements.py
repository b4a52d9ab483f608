"""The hot statements are prepared on PostgreSQL connections that live long
enough to run them again (``CONN_MAX_AGE``), and only those.

Each test reads ``pg_prepared_statements``, the server's own list for the
session, through the same connection the requests used.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sms_service.models import VerificationCode

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepares statements"),
]


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


def _send_and_verify(lc, draw_codes, i: int) -> None:
    phone = f"+86138001{i:05d}"
    draw_codes(f"{i:06d}")
    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone})
    assert response.status_code == 200, response.content
    response = lc.post(f"/1.1/verifySmsCode/{i:06d}", {"mobilePhoneNumber": phone})
    assert response.status_code == 200, response.content


def test_the_send_and_the_verify_are_prepared_from_their_third_run(lc, signature, draw_codes):
    connection.ensure_connection()
    before = set(_prepared())
    for i in range(2):
        _send_and_verify(lc, draw_codes, i)
    assert set(_prepared()) == before, "nothing is prepared before a statement repeats"

    _send_and_verify(lc, draw_codes, 2)
    new = [s for s in _prepared() if s not in before]
    assert any(s.startswith("WITH h AS") for s in new), new  # the one-statement send
    assert any(s.startswith("SELECT id, digest") for s in new), new  # the verify's lookup
    assert any(s.startswith('UPDATE "sms_service_verificationcode"') for s in new), new
    # Prepared statements answer as before: the third code was consumed.
    assert VerificationCode.objects.get(phone="+8613800100002").status == "used"


def test_nothing_is_prepared_when_the_setting_is_off(lc, signature, draw_codes, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "PREPARED_STATEMENTS": False}
    connection.ensure_connection()
    before = set(_prepared())
    for i in range(4):
        _send_and_verify(lc, draw_codes, i)
    assert set(_prepared()) == before


def test_logged_statements_show_their_values(lc, signature, draw_codes):
    """Query logs (DEBUG, debug toolbars, these tests) get the statement with
    its values, prepared or not."""
    for i in range(3):
        _send_and_verify(lc, draw_codes, i)
    with CaptureQueriesContext(connection) as captured:
        _send_and_verify(lc, draw_codes, 3)
    lookups = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT id, digest")]
    assert lookups and "'+8613800100003'" in lookups[0], lookups


@pytest.mark.django_db(transaction=True)
def test_a_project_binding_on_the_server_keeps_its_own_preparation(lc, signature, draw_codes):
    """With Django's ``server_side_binding`` every ORM cursor binds on the
    server too: preparing stays as the project configured it (off here)."""
    options = connection.settings_dict["OPTIONS"]
    connection.close()
    options["server_side_binding"] = True
    connection.features.__dict__.pop("uses_server_side_binding", None)  # a cached property
    try:
        for i in range(4):
            _send_and_verify(lc, draw_codes, i)
        assert connection.connection.prepare_threshold is None
        assert _prepared() == []
    finally:
        del options["server_side_binding"]
        connection.features.__dict__.pop("uses_server_side_binding", None)
        connection.close()
