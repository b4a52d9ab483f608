"""Database queries per request of the two hot endpoints.

Each request is measured alone: the enqueue step runs on commit, after the
response, so the on-commit callbacks are captured and not executed while the
request is counted (delivery is a Celery task, not part of the request).

The budget is 8 queries per request. Django counts every statement, including
the transaction-control ones (SAVEPOINT / RELEASE SAVEPOINT): under the test's
own transaction a request's outer ``atomic()`` shows up as a savepoint pair
where production sends BEGIN / COMMIT, so the totals below are the real number
of round trips. ``_data_statements`` counts the rest (SELECT / INSERT / UPDATE
/ DELETE) for the tests that pin today's numbers against regressions.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from sms_service.models import App, Message, MessageStatus, Price

#: Budget per request.
MAX_QUERIES = 8

_TRANSACTION_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b",
                                  re.IGNORECASE)

pytestmark = pytest.mark.django_db

def _post(client, lc, path: str, body: dict):
    return client.post(path, data=json.dumps(body),
                       content_type="application/json;charset=utf-8", **lc.headers())


def _send_statements(separately: int) -> int:
    """A send's data statements: on PostgreSQL one (code, message, hold and
    ledger entry in one WITH statement), elsewhere ``separately``."""
    from django.db import connection

    return 1 if connection.vendor == "postgresql" else separately


def _data_statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries
            if not _TRANSACTION_CONTROL.match(q["sql"])]


def _request(client, lc, phone: str, capture, counter, limit: int, **extra):
    with capture(execute=False) as callbacks:
        with counter(limit) as captured:
            response = _post(client, lc, "/1.1/requestSmsCode",
                             {"mobilePhoneNumber": phone, **extra})
    assert response.status_code == 200, response.content
    assert callbacks, "delivery is enqueued on commit"
    assert Message.objects.get(phone=phone).status == MessageStatus.QUEUED  # not sent inline
    return captured


@pytest.fixture
def priced(app):
    """A billed message: a CN price and a balance to hold it from."""
    Price.objects.create(region="CN", channel="sms", unit_price=Decimal("0.05"))
    App.objects.filter(pk=app.pk).update(balance=Decimal("100"))
    app.refresh_from_db()
    return app


# --- requestSmsCode -----------------------------------------------------------------


def test_request_sms_code_queries(client, lc, signature, django_assert_max_num_queries,
                                  django_capture_on_commit_callbacks):
    """The code (one upsert over the number's row) and the message: one
    statement on PostgreSQL, else 2 + the transaction pair. The app (with its
    default signature) and the price come from the cache once warm."""
    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "+8613800138197"})  # warm the price
    captured = _request(client, lc, "+8613800138100", django_capture_on_commit_callbacks,
                        django_assert_max_num_queries, MAX_QUERIES)
    assert len(_data_statements(captured)) == _send_statements(2), _data_statements(captured)


def test_request_sms_code_queries_billed(client, lc, signature, priced,
                                         django_assert_max_num_queries,
                                         django_capture_on_commit_callbacks):
    """Billing adds the balance UPDATE and the ledger INSERT (the price is
    cached): into the one statement on PostgreSQL."""
    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "+8613800138199"})  # warm the price
    captured = _request(client, lc, "+8613800138101", django_capture_on_commit_callbacks,
                        django_assert_max_num_queries, MAX_QUERIES)
    assert len(_data_statements(captured)) == _send_statements(4), _data_statements(captured)


def test_template_message_queries(client, lc, app, signature, priced,
                                  django_assert_max_num_queries,
                                  django_capture_on_commit_callbacks):
    from sms_service.services import content

    content.seed_demo_content(app)
    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "+8613800138198"})  # warm the price
    _request(client, lc, "+8613800138104", django_capture_on_commit_callbacks,
             django_assert_max_num_queries, MAX_QUERIES, template="Order_Notice",
             order_id="7623432424540")


def test_test_number_lookup_only_when_the_app_has_some(client, lc, app, signature,
                                                       django_assert_max_num_queries,
                                                       django_capture_on_commit_callbacks):
    from sms_service.models import FixedCodeNumber

    FixedCodeNumber.objects.create(app=app, phone="+8613800138999", code="123456")
    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "+8613800138196"})  # warm the price
    captured = _request(client, lc, "+8613800138105", django_capture_on_commit_callbacks,
                        django_assert_max_num_queries, MAX_QUERIES)
    assert len(_data_statements(captured)) == _send_statements(2) + 1, _data_statements(captured)


# --- verifySmsCode ------------------------------------------------------------------


def test_verify_sms_code_queries(client, lc, signature, outbox, django_assert_max_num_queries,
                                 django_capture_on_commit_callbacks):
    phone = "+8613800138110"
    # Send (and deliver, eagerly, to the locmem outbox) outside the measurement.
    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone})
    assert response.status_code == 200, response.content
    (sent,) = [m for m in outbox if m.to == phone]
    (code,) = [run for run in re.findall(r"\d+", sent.body) if len(run) == 6]

    with django_capture_on_commit_callbacks(execute=False):
        with django_assert_max_num_queries(MAX_QUERIES) as captured:
            response = _post(client, lc, f"/1.1/verifySmsCode/{code}",
                             {"mobilePhoneNumber": phone})
    assert response.status_code == 200, response.content
    # The lookup and the consuming UPDATE; the app's webhooks come from the cache.
    assert len(_data_statements(captured)) == 2, _data_statements(captured)


def test_verify_wrong_code_queries(client, lc, signature, django_assert_max_num_queries,
                                   django_capture_on_commit_callbacks):
    phone = "+8613800138111"
    with django_capture_on_commit_callbacks(execute=False):
        assert _post(client, lc, "/1.1/requestSmsCode",
                     {"mobilePhoneNumber": phone}).status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        with django_assert_max_num_queries(MAX_QUERIES):
            response = _post(client, lc, "/1.1/verifySmsCode/000000",
                             {"mobilePhoneNumber": phone})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == 603


# --- delivery -----------------------------------------------------------------------


def test_a_delivery_writes_its_outcome_in_one_transaction(app, signature, priced, settings):
    """On PostgreSQL a message delivered on its own is written as a batch of
    one: claim, read, the call's start, then its final status, its charge and
    its events in one statement (not one statement and commit per step)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sms_service.models import LedgerEntry, LedgerKind
    from sms_service.services import outbox
    from sms_service.services.sending import SmsRequest, request_sms

    if connection.vendor != "postgresql":
        pytest.skip("the batch writes are PostgreSQL's; elsewhere each step is written alone")
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "BACKENDS": {"default": {
        "BACKEND": "sms_service.backends.dummy.DummyBackend", "OPTIONS": {"BATCH_SIZE": 1}}}}
    message = request_sms(app=app, request=SmsRequest(phone="+8613800138000"))
    with CaptureQueriesContext(connection) as captured:
        assert outbox.deliver(message_id=message.pk) == MessageStatus.DELIVERED
    statements = [" ".join(sql.split()[:3]) for sql in _data_statements(captured)]
    writes = [sql for sql in statements if not sql.startswith("SELECT")]
    assert writes == [
        'UPDATE "sms_service_message" SET',  # the claim
        'UPDATE "sms_service_message" AS',  # the call's start
        'WITH d AS',  # delivered, its charge and its four events: one statement
    ], statements
    # The message with its app, and the app's webhooks (cached after the first).
    assert len(statements) - len(writes) <= 2, statements
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert list(message.events.values_list("status", flat=True)) == [
        MessageStatus.SENDING, MessageStatus.SENDING, MessageStatus.ACCEPTED,
        MessageStatus.DELIVERED]
    assert LedgerEntry.objects.filter(message=message, kind=LedgerKind.CHARGE).count() == 1


def test_a_delivery_at_commit_does_not_read_its_message_back(app, signature, priced, settings,
                                                            django_capture_on_commit_callbacks):
    """With ``ASYNC`` off the request delivers the message it has just
    committed. The message is written claimed (nothing else may take it), so
    the delivery adds only the call's start and the outcome: no claim, no read
    of the message (the instance in memory is sent, and reflects the outcome)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sms_service.services.sending import SmsRequest, request_sms

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ASYNC": False, "BACKENDS": {"default": {
        "BACKEND": "sms_service.backends.dummy.DummyBackend"}}}
    with django_capture_on_commit_callbacks(execute=True):
        request_sms(app=app, request=SmsRequest(phone="+8613800138001"))  # warm the caches
    with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks(
            execute=True) as delivered:
        message = request_sms(app=app, request=SmsRequest(phone="+8613800138002"))
    assert delivered, "delivered at commit"
    reads = [sql for sql in _data_statements(captured)
             if sql.startswith('SELECT') and '"sms_service_message"' in sql.split(" WHERE ")[0]]
    assert reads == [], reads
    claims = [sql for sql in _data_statements(captured) if "attempts = attempts + 1" in sql]
    assert claims == [], claims
    assert message.status == MessageStatus.DELIVERED
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert message.attempts == 1
    assert message.payload is None
    assert list(message.events.values_list("status", flat=True)) == [
        MessageStatus.SENDING, MessageStatus.SENDING, MessageStatus.ACCEPTED,
        MessageStatus.DELIVERED]
