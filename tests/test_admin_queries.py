"""The console's list pages run as many queries for many rows as for a few.

Each page is loaded once over a small data set and once after more rows of the
same kind were added (in more apps, by more users): a query per row would show
up as a difference.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sms_service.models import (
    App,
    KeyRotation,
    LedgerEntry,
    Message,
    Webhook,
    WebhookDelivery,
)
from sms_service.services import billing, content, users

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(admin_client):
    """A superuser's client (pytest-django's)."""
    return admin_client


def _rows(batch: int) -> App:
    """Traffic, money, content, webhooks and key rotations of one more app."""
    app = App.objects.create(name=f"App {batch}")
    reviewer = get_user_model().objects.create_user(f"reviewer{batch}")
    billing.top_up(app=app, amount="10", reason="funds", actor=reviewer)
    for index in range(3):
        Message.objects.create(app=app, phone=f"+86186{batch:04d}{index:04d}", region="CN",
                               body="x", status="delivered", cost=Decimal("0.05"))
    signature = content.create_signature(app=app, name=f"sign_{batch}", text=f"应用{batch}")
    content.create_signature(app=app, name=f"sign_{batch}_b", text=f"乙{batch}")
    content.approve(item=signature, reviewer=None)
    for index in range(2):
        content.create_template(app=app, name=f"T{batch}_{index}", kind="notification",
                                body="Your order {{order_id}} ships today.",
                                signature=signature)
    hook = Webhook.objects.create(app=app, url=f"https://example.com/{batch}")
    for _ in range(2):
        WebhookDelivery.objects.create(webhook=hook, event="balance.low", payload={})
    for index in range(2):  # phone users, each with a session
        users.signup(app=app, username=f"user{batch}_{index}", password="Secret-pw-1")
    for which in ("app_key", "master_key"):
        KeyRotation.objects.create(app=app, which=which, actor=reviewer, via="admin",
                                   grace_until=timezone.now() + timedelta(hours=1))
    return app


def _count(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(queries)


PAGES = [
    "/admin/sms_service/message/",
    "/admin/sms_service/ledgerentry/",
    "/admin/sms_service/signature/",
    "/admin/sms_service/template/",
    "/admin/sms_service/template/review-queue/",
    "/admin/sms_service/webhook/",
    "/admin/sms_service/webhookdelivery/",
    "/admin/sms_service/app/",
    "/admin/sms_service/appuser/",
    "/admin/sms_service/usersession/",
    "/admin/sms_service/ledgerentry/apps/",
    "/admin/sms_service/message/dashboard/?range=7d",
    "/admin/",
]


@pytest.mark.parametrize("path", PAGES)
def test_list_pages_are_flat(root, path):
    _rows(1)
    root.get(path)  # warm: content types, permissions, sessions
    few = _count(root, path)
    for batch in range(2, 6):
        _rows(batch)
    assert _count(root, path) == few, path


def test_an_apps_page_and_bill_are_flat(root):
    app = _rows(1)
    pages = [f"/admin/sms_service/app/{app.pk}/change/",
             f"/admin/sms_service/app/{app.pk}/rotate-key/",
             f"/admin/sms_service/ledgerentry/apps/{app.pk}/"]
    for path in pages:
        root.get(path)
    few = [_count(root, path) for path in pages]
    for _ in range(4):  # more rotations and ledger entries of the same app
        KeyRotation.objects.create(app=app, which="app_key", via="admin",
                                   actor=get_user_model().objects.create_user(
                                       f"u{KeyRotation.objects.count()}"))
        billing.top_up(app=app, amount="1", reason="more")
    assert LedgerEntry.objects.filter(app=app).count() == 5
    assert [_count(root, path) for path in pages] == few


def test_a_template_page_is_flat_in_its_versions(root):
    app = _rows(1)
    template = app.templates.first()
    path = f"/admin/sms_service/template/{template.pk}/change/"
    root.get(path)
    few = _count(root, path)
    reviewer = get_user_model().objects.create_superuser("boss", "b@example.com", "pw")
    for number in range(4):  # approved versions by a reviewer, then a new one each
        content.approve(item=template.versions.order_by("-number").first(), reviewer=reviewer)
        content.save_template(template=template, body=f"Order {{{{order_id}}}} step {number}.",
                              signature=template.versions.first().signature,
                              submitted_by=reviewer)
    assert template.versions.count() == 5
    assert _count(root, path) == few
