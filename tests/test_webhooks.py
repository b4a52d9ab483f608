"""Outbound webhooks: signed events, retries with backoff, the log and resend."""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from sms_service.models import Message, Webhook, WebhookDelivery
from sms_service.services import billing, content, webhooks
from tests.content_fixtures import make_reviewer
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.django_db

SEND = "/1.1/requestSmsCode"
NUMBER = "+8618612345678"


@pytest.fixture
def receiver():
    with webhook_receiver() as running:
        yield running


def _events(receiver) -> list[str]:
    return [json.loads(r.body)["event"] for r in receiver.requests]


def test_a_send_posts_signed_accepted_and_delivered_events(lc, app, signature, receiver):
    hook = Webhook.objects.create(app=app, url=receiver.url)
    assert lc.post(SEND, {"mobilePhoneNumber": NUMBER}).json() == {}
    assert _events(receiver) == ["message.accepted", "message.delivered"]
    request = receiver.requests[1]
    assert webhooks.verify_signature(
        secret=hook.secret, header=request.headers["X-SMS-Signature"], body=request.body
    )
    # A changed body or another secret fails the check.
    assert not webhooks.verify_signature(
        secret=hook.secret, header=request.headers["X-SMS-Signature"], body=request.body + b" "
    )
    assert not webhooks.verify_signature(
        secret="whsec_other", header=request.headers["X-SMS-Signature"], body=request.body
    )
    body = json.loads(request.body)
    message = Message.objects.get()
    assert body["app_id"] == app.app_id and request.headers["X-SMS-Event"] == body["event"]
    assert body["data"]["message_id"] == message.pk
    assert body["data"]["mobilePhoneNumber"] == NUMBER
    assert body["data"]["status"] == "delivered"
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 2


def test_an_old_signature_is_refused():
    body = b'{"event":"message.delivered"}'
    header = webhooks.signature_header(secret="s", body=body, timestamp=int(time.time()) - 600)
    assert not webhooks.verify_signature(secret="s", header=header, body=body)
    assert webhooks.verify_signature(secret="s", header=header, body=body, tolerance=900)


def test_failures_are_retried_until_the_receiver_answers(lc, app, signature, receiver):
    Webhook.objects.create(app=app, url=receiver.url, events=["message.delivered"])
    receiver.statuses = [500, 503]
    assert lc.post(SEND, {"mobilePhoneNumber": NUMBER}).json() == {}
    assert _events(receiver) == ["message.delivered"] * 3
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (
        "succeeded", 3, 200)
    # Every try carries the same body and event id.
    assert len({r.body for r in receiver.requests}) == 1


def test_backoff_doubles_up_to_its_cap():
    with override_settings(SMS_SERVICE={**settings.SMS_SERVICE, "WEBHOOK_RETRY_BACKOFF": 30,
                                        "WEBHOOK_RETRY_BACKOFF_MAX": 200}):
        assert [webhooks.backoff(n) for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_a_dead_receiver_never_blocks_a_send_and_is_given_up(lc, app, signature, outbox):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    Webhook.objects.create(app=app, url=dead, events=["message.delivered"])
    config = {**settings.SMS_SERVICE, "WEBHOOK_MAX_ATTEMPTS": 3}
    with override_settings(SMS_SERVICE=config):
        assert lc.post(SEND, {"mobilePhoneNumber": NUMBER}).json() == {}
    assert len(outbox) == 1 and Message.objects.get().status == "delivered"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "Connection" in delivery.last_error or "refused" in delivery.last_error


def test_the_admin_log_resends_a_delivery(client, app, receiver, django_capture_on_commit_callbacks):
    hook = Webhook.objects.create(app=app, url=receiver.url)
    receiver.statuses = [500]
    config = {**settings.SMS_SERVICE, "WEBHOOK_MAX_ATTEMPTS": 1}
    with override_settings(SMS_SERVICE=config), django_capture_on_commit_callbacks(execute=True):
        webhooks.emit(app=app, event="balance.low", data={"balance": "1"})
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert delivery.status == "failed"
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    log = client.get(reverse("admin:sms_service_webhookdelivery_changelist")).content.decode()
    assert "balance.low" in log and "Resend selected deliveries" in log
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:sms_service_webhookdelivery_changelist"),
                    {"action": "resend_selected", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(receiver.requests) == 2


def test_code_verified_and_review_events(lc, app, signature, receiver, outbox,
                                         django_capture_on_commit_callbacks):
    Webhook.objects.create(app=app, url=receiver.url,
                           events=["code.verified", "content.approved", "content.rejected"])
    lc.post(SEND, {"mobilePhoneNumber": NUMBER})
    code = "".join(ch for ch in outbox[0].body if ch.isdigit())[:6]
    assert lc.post(f"/1.1/verifySmsCode/{code}", {"mobilePhoneNumber": NUMBER}).json() == {}
    reviewer = make_reviewer()
    with django_capture_on_commit_callbacks(execute=True):
        pending = content.create_signature(app=app, name="s2", text="应用二")
        content.reject(item=pending, reviewer=reviewer, reason="Not your brand.")
        other = content.create_signature(app=app, name="s3", text="应用三")
        content.approve(item=other, reviewer=reviewer)
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["event"] for b in bodies] == ["code.verified", "content.rejected",
                                            "content.approved"]
    assert bodies[0]["data"] == {"mobilePhoneNumber": NUMBER, "purpose": "generic"}
    assert bodies[1]["data"]["reason"] == "Not your brand."
    assert bodies[2]["data"]["name"] == "s3"


def test_balance_low_event(app, receiver, django_capture_on_commit_callbacks):
    from tests.billing_support import held_message

    Webhook.objects.create(app=app, url=receiver.url, events=["balance.low"])
    app.balance_alert_threshold = Decimal("5")
    app.save()
    billing.top_up(app=app, amount="6", reason="funds")
    with django_capture_on_commit_callbacks(execute=True):
        held_message(app, cost="2")
    body = json.loads(receiver.requests[0].body)
    assert body["event"] == "balance.low"
    assert body["data"] == {"balance": "4.0000", "threshold": "5.0000"}


def test_inactive_webhooks_hear_nothing(app, receiver, django_capture_on_commit_callbacks):
    Webhook.objects.create(app=app, url=receiver.url, is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.emit(app=app, event="balance.low", data={}) == []
    assert receiver.requests == []


def test_a_webhook_switched_off_or_added_is_heard_at_once(app, receiver,
                                                          django_capture_on_commit_callbacks):
    """The subscriptions are cached per app: saving a webhook drops the entry."""
    hook = Webhook.objects.create(app=app, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        assert len(webhooks.emit(app=app, event="balance.low", data={})) == 1
        hook.is_active = False
        hook.save()
        assert webhooks.emit(app=app, event="balance.low", data={}) == []
        Webhook.objects.create(app=app, url=receiver.url, events=["code.verified"])
        assert webhooks.emit(app=app, event="balance.low", data={}) == []
        assert len(webhooks.emit(app=app, event="code.verified", data={})) == 1


def test_redispatch_sends_deliveries_a_broker_outage_left_behind(app, receiver):
    from datetime import timedelta

    from django.utils import timezone

    hook = Webhook.objects.create(app=app, url=receiver.url)
    old = WebhookDelivery.objects.create(
        webhook=hook, event="balance.low", payload={"id": "x", "event": "balance.low"},
        created_at=timezone.now() - timedelta(hours=2),
    )
    fresh = WebhookDelivery.objects.create(
        webhook=hook, event="balance.low", payload={"id": "y", "event": "balance.low"})
    assert webhooks.redispatch() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.status, fresh.status) == ("succeeded", "pending")
    assert len(receiver.requests) == 1
