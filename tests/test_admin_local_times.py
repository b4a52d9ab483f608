"""Admin pages show times in the site's time zone, with the zone named.

The site runs on Asia/Shanghai (UTC+8, "CST"); everything happened at 05:05 UTC,
which is 13:05 there. No page may show the UTC clock time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sms_service.models import (
    KeyRotation,
    LedgerEntry,
    Message,
    MessageEvent,
    Webhook,
    WebhookDelivery,
)
from sms_service.services import billing, content

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 30, 5, 5, tzinfo=UTC)
LOCAL = "2026-11-30 13:05"


@pytest.fixture
def shanghai(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    timezone.deactivate()
    yield
    timezone.deactivate()


@pytest.fixture
def root(admin_client, shanghai):
    """A superuser's client (pytest-django's) on the Shanghai site."""
    return admin_client


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def assert_local(html: str, where: str, seconds: bool = False) -> None:
    shown = f"{LOCAL}:00 CST" if seconds else f"{LOCAL} CST"
    assert shown in html, f"{where}: no {shown}"
    assert "5:05" not in html and "05:05" not in html, f"{where} shows the UTC time"
    # Django's own format ("Nov. 30, 2026, 1:05 p.m.") does not name the zone.
    assert "1:05 p.m." not in html, f"{where} shows a time without its zone"


def test_message_list_and_page(root, app):
    message = Message.objects.create(app=app, phone="+8618612345678", body="x",
                                     status="delivered", created_at=AT, sent_at=AT,
                                     call_started_at=AT, next_attempt_at=AT)
    MessageEvent.objects.create(message=message, status="delivered",
                                description="Delivered", created_at=AT)
    assert_local(page(root, "/admin/sms_service/message/"), "message list")
    html = page(root, f"/admin/sms_service/message/{message.pk}/change/")
    assert_local(html, "message page", seconds=True)
    assert "Asia/Shanghai" in html


def test_ledger_list_and_bill(root, app):
    billing.top_up(app=app, amount=Decimal("10"), reason="invoice")
    LedgerEntry.objects.update(created_at=AT)
    assert_local(page(root, "/admin/sms_service/ledgerentry/"), "ledger")
    html = page(root, f"/admin/sms_service/ledgerentry/apps/{app.pk}/")
    assert_local(html, "bill")
    assert "Days in time zone Asia/Shanghai" in html


def test_dashboard_names_its_zone(root, app):
    html = page(root, "/admin/sms_service/message/dashboard/")
    assert "Days in time zone Asia/Shanghai" in html


def test_review_queue_and_template_page(root, app):
    signature = content.create_signature(app=app, name="sign_Demo", text="演示")
    template = content.create_template(app=app, name="Notice", kind="notification",
                                       body="Your order ships today.", signature=signature)
    signature.__class__.objects.update(created_at=AT)
    template.versions.update(created_at=AT)
    assert_local(page(root, "/admin/sms_service/template/review-queue/"), "review queue")
    assert_local(page(root, f"/admin/sms_service/template/{template.pk}/change/"),
                 "template versions", seconds=True)
    assert_local(page(root, "/admin/sms_service/signature/"), "signature list")
    assert_local(page(root, f"/admin/sms_service/signature/{signature.pk}/change/"),
                 "signature page", seconds=True)


def test_webhook_log(root, app):
    hook = Webhook.objects.create(app=app, url="https://example.com/hook", created_at=AT)
    delivery = WebhookDelivery.objects.create(webhook=hook, event="balance.low",
                                              payload={}, created_at=AT, delivered_at=AT)
    assert_local(page(root, "/admin/sms_service/webhookdelivery/"), "webhook log")
    assert_local(page(root, f"/admin/sms_service/webhookdelivery/{delivery.pk}/change/"),
                 "webhook delivery", seconds=True)


def test_key_rotation_audit(root, app):
    KeyRotation.objects.create(app=app, which="app_key", via="test", created_at=AT,
                               grace_until=AT + timedelta(hours=1))
    html = page(root, f"/admin/sms_service/app/{app.pk}/rotate-key/")
    assert_local(html, "rotation page")
    assert "2026-11-30 14:05 CST" in html  # the grace period's end
    assert_local(page(root, f"/admin/sms_service/app/{app.pk}/change/"), "app page",
                 seconds=True)


def test_utc_site_says_utc(admin_client, app, settings):
    settings.TIME_ZONE = "UTC"
    Message.objects.create(app=app, phone="+8618612345678", body="x", created_at=AT)
    assert "2026-11-30 05:05 UTC" in page(admin_client, "/admin/sms_service/message/")

