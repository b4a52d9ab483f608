"""Delivery receipts: the generic webhook, receipts that beat the worker, status
polling, and what they do to the bill, replayed and out of order."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from sms_service import signals, tasks
from sms_service.backends.base import (
    BaseSmsBackend,
    DeliveryReport,
    OutgoingMessage,
    SendResult,
)
from sms_service.models import MessageStatus, UnmatchedReceipt
from sms_service.services import outbox, receipts
from tests.billing_support import (
    accepted_message,
    assert_books,
    bill,
    funded_app,
    held_message,
)

pytestmark = pytest.mark.django_db

SECRET = "receipt-secret"
AUTH_TOKEN = "twilio-token-for-tests"


class HookBackend(BaseSmsBackend):
    """A provider that posts JSON receipts with a shared-secret header, answers
    status polls from :attr:`statuses`, and (when :attr:`early` is set) posts the
    receipt to our webhook before its own send call returns."""

    provider_name = "fake"
    statuses: dict[str, str] = {}
    early: str = ""

    def build_payload(self, message: OutgoingMessage) -> OutgoingMessage:
        return message

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> str:
        pid = f"fake-{message.message_id}"
        if self.early:
            # The receipt reaches us while the worker still has to store the id.
            post_receipts(Client(), [{"id": pid, "status": self.early}])
        return pid

    def parse_response(self, message, payload, response) -> SendResult:
        return SendResult(provider_message_id=response, status="accepted")

    def parse_delivery_reports(self, request) -> list[DeliveryReport]:
        if not constant_time_compare(
            request.headers.get("X-Secret", ""), self.option("SECRET")
        ):
            raise PermissionDenied("bad secret")
        return [
            DeliveryReport(item["id"], item["status"])
            for item in json.loads(request.body)
        ]

    def poll_status(self, provider_message_id: str) -> DeliveryReport | None:
        status = self.statuses.get(provider_message_id)
        return DeliveryReport(provider_message_id, status) if status else None


BACKENDS = {
    "default": {"BACKEND": f"{__name__}.HookBackend", "OPTIONS": {"SECRET": SECRET}},
    "locmem": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
    "twilio": {
        "BACKEND": "sms_service.backends.twilio.TwilioBackend",
        "OPTIONS": {
            "ACCOUNT_SID": "AC" + "0" * 32,
            "AUTH_TOKEN": AUTH_TOKEN,
            "FROM_NUMBER": "+15005550006",
            "API_BASE_URL": "http://127.0.0.1:9",
        },
    },
}


@pytest.fixture(autouse=True)
def _backends():
    HookBackend.statuses = {}
    HookBackend.early = ""
    with override_settings(SMS_SERVICE={"BACKENDS": BACKENDS}):
        yield


def post_receipts(
    client: Client,
    items: list[dict[str, str]],
    *,
    secret: str = SECRET,
    alias: str = "default",
):
    return client.post(
        reverse("sms_service:delivery-receipt", kwargs={"alias": alias}),
        data=json.dumps(items),
        content_type="application/json",
        HTTP_X_SECRET=secret,
    )


# --- the webhook ----------------------------------------------------------------------


def test_webhook_receipt_settles_the_bill_and_is_logged(client):
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    receiver = mock.Mock()
    signals.delivery_status_changed.connect(receiver)
    try:
        response = post_receipts(
            client, [{"id": message.provider_message_id, "status": "delivered"}]
        )
    finally:
        signals.delivery_status_changed.disconnect(receiver)
    assert response.status_code == 200
    assert response.json() == {"received": 1, "unmatched": 0}
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert bill(app) == 2
    assert message.events.filter(
        status=MessageStatus.DELIVERED, description="receipt: delivered"
    ).exists()
    receiver.assert_called_once()
    assert receiver.call_args.kwargs["new_status"] == MessageStatus.DELIVERED
    assert_books(app)


def test_webhook_replayed_10_times_out_of_order_bills_once(client):
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    pid = message.provider_message_id
    for status in [
        "undelivered",
        "accepted",
        "delivered",
        "undelivered",
        "accepted",
    ] * 2:
        assert post_receipts(client, [{"id": pid, "status": status}]).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.UNDELIVERED
    assert bill(app) == 2
    assert_books(app)


def test_bad_secret_is_403_json_and_changes_nothing(client):
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    response = post_receipts(
        client,
        [{"id": message.provider_message_id, "status": "delivered"}],
        secret="wrong",
    )
    assert response.status_code == 403
    assert response.json()["code"] == 403
    message.refresh_from_db()
    assert message.status == MessageStatus.ACCEPTED
    assert bill(app) == 0


def test_webhook_answers_json_errors_for_bad_requests(client):
    url = reverse("sms_service:delivery-receipt", kwargs={"alias": "default"})
    assert client.get(url).status_code == 405
    unknown = client.post(
        reverse("sms_service:delivery-receipt", kwargs={"alias": "nope"})
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, 404)
    no_hook = client.post(
        reverse("sms_service:delivery-receipt", kwargs={"alias": "locmem"})
    )
    assert no_hook.status_code == 404
    malformed = client.post(
        url, data="{not json", content_type="application/json", HTTP_X_SECRET=SECRET
    )
    assert (malformed.status_code, malformed.json()["code"]) == (400, 1)


def test_unknown_message_receipt_is_kept_never_a_500(client):
    response = post_receipts(client, [{"id": "never-sent", "status": "delivered"}])
    assert response.status_code == 200
    assert response.json() == {"received": 1, "unmatched": 1}
    kept = UnmatchedReceipt.objects.get()
    assert (kept.provider, kept.provider_message_id, kept.status) == (
        "fake",
        "never-sent",
        "delivered",
    )
    assert kept.matched_at is None


def test_receipt_before_the_provider_id_is_stored_is_applied_by_the_worker():
    app = funded_app("5")
    message = held_message(app, cost="2")
    HookBackend.early = "delivered"

    assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED

    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    kept = UnmatchedReceipt.objects.get()
    assert kept.message == message and kept.matched_at is not None
    assert bill(app) == 2
    assert_books(app)


def test_reconcile_task_applies_receipts_the_worker_missed():
    app = funded_app("5")
    message = accepted_message(app, cost="2")
    # Stored after the worker looked (the race the periodic task covers).
    UnmatchedReceipt.objects.create(
        backend="default",
        provider="fake",
        provider_message_id=message.provider_message_id,
        status="undelivered",
    )
    assert tasks.reconcile_unmatched_receipts() == {"applied": 1}
    assert tasks.reconcile_unmatched_receipts() == {"applied": 0}
    message.refresh_from_db()
    assert message.status == MessageStatus.UNDELIVERED
    assert bill(app) == 2


# --- Twilio's signed callbacks through the generic view ---------------------------------


def twilio_signature(url: str, params: dict[str, str]) -> str:
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_twilio_receipt_signature_is_checked_by_the_webhook(client):
    from sms_service.models import Message

    app = funded_app("5")
    message = accepted_message(app, cost="1")
    sid = "SM" + "b" * 32
    Message.objects.filter(pk=message.pk).update(
        provider="twilio", provider_message_id=sid
    )
    url = reverse("sms_service:delivery-receipt", kwargs={"alias": "twilio"})
    params = {
        "AccountSid": "AC" + "0" * 32,
        "MessageSid": sid,
        "MessageStatus": "delivered",
    }

    def post(signature: str):
        return client.post(
            url,
            data=urlencode(params),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=signature,
        )

    forged = post(twilio_signature("http://testserver/elsewhere", params))
    assert (forged.status_code, forged.json()["code"]) == (403, 403)
    assert post(twilio_signature("http://testserver" + url, params)).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert bill(app) == 1


def test_replays_of_a_signed_receipt_for_an_unknown_message_are_kept_once(client):
    url = reverse("sms_service:delivery-receipt", kwargs={"alias": "twilio"})
    sid = "SM" + "c" * 32

    def post(status: str):
        params = {"AccountSid": "AC" + "0" * 32, "MessageSid": sid, "MessageStatus": status}
        return client.post(
            url, data=urlencode(params), content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=twilio_signature("http://testserver" + url, params),
        )

    for _ in range(20):
        response = post("delivered")
        assert response.json() == {"received": 1, "unmatched": 1}
    assert post("failed").status_code == 200  # another status is another receipt
    kept = UnmatchedReceipt.objects.order_by("pk")
    assert [(r.provider_message_id, r.status) for r in kept] == [
        (sid, "delivered"), (sid, "failed"),
    ]


# --- status polling ---------------------------------------------------------------------


def test_poll_task_applies_provider_statuses_for_messages_awaiting_receipts():
    app = funded_app("5")
    waiting = accepted_message(app, cost="1")
    silent = accepted_message(app, cost="1")
    from sms_service.models import Message

    Message.objects.filter(pk__in=[waiting.pk, silent.pk]).update(backend="default")
    HookBackend.statuses = {waiting.provider_message_id: "delivered"}

    assert tasks.poll_delivery_statuses() == {"polled": 0, "changed": 0}  # too recent
    with time_machine.travel(timezone.now() + timedelta(seconds=301), tick=False):
        assert receipts.poll_statuses() == {"polled": 2, "changed": 1}
    waiting.refresh_from_db()
    silent.refresh_from_db()
    assert (waiting.status, silent.status) == (MessageStatus.DELIVERED, MessageStatus.ACCEPTED)
    assert bill(app) == 1
    assert_books(app)


def test_poll_skips_backends_that_cannot_poll():
    app = funded_app("5")
    message = accepted_message(app, cost="1")
    from sms_service.models import Message

    Message.objects.filter(pk=message.pk).update(backend="locmem")
    with time_machine.travel(timezone.now() + timedelta(seconds=301), tick=False):
        assert receipts.poll_statuses() == {"polled": 0, "changed": 0}


def test_settle_task_runs_the_overdue_policy():
    app = funded_app("5")
    accepted_message(app, cost="1")
    with time_machine.travel(timezone.now() + timedelta(days=4), tick=False):
        assert tasks.settle_overdue_messages()["settled"] == 1
    assert bill(app) == 1
