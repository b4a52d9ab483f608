"""The billing pages of the admin: books, bill, chart, audited top-ups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from sms_service.backends.base import DeliveryReport
from sms_service.models import LedgerEntry
from sms_service.services import receipts
from tests.billing_support import accepted_message, assert_books, funded_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return user


def billing_url(app) -> str:
    return reverse("admin:sms_service_ledgerentry_app_billing", args=[app.pk])


def test_billing_page_shows_balance_held_bill_and_chart(client, superuser):
    app = funded_app("10")
    charged = accepted_message(app, cost="2")
    accepted_message(app, cost="3")
    receipts.apply_report(
        DeliveryReport(charged.provider_message_id, "delivered"), provider="fake"
    )
    response = client.get(billing_url(app))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and "<rect" in page
    assert response.context["books"].balance == Decimal("5")
    assert response.context["books"].held == Decimal("3")
    assert response.context["open_holds"] == 1
    assert response.context["by_template"][0]["amount"] == Decimal("2")
    assert client.get(reverse("admin:sms_service_ledgerentry_apps")).status_code == 200


def test_top_up_from_the_admin_is_confirmed_then_audited(client, superuser):
    app = funded_app("0")
    data = {"kind": "top_up", "amount": "12.5", "reason": "wire transfer 7"}
    # The first POST only asks for confirmation, with what will happen.
    response = client.post(billing_url(app), data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Record 12.5000 CNY for Billing?" in page and "Balance after: 12.5000 CNY" in page
    assert not LedgerEntry.objects.filter(app=app).exists()
    response = client.post(billing_url(app), {**data, "confirmed": "yes"})
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(app=app)
    assert (entry.amount, entry.actor, entry.reason) == (
        Decimal("12.5"),
        superuser,
        "wire transfer 7",
    )
    # No reason, no money.
    client.post(billing_url(app), {"kind": "top_up", "amount": "1", "reason": "",
                                   "confirmed": "yes"})
    # A debit larger than the balance is refused with a message, not a 500.
    response = client.post(
        billing_url(app),
        {"kind": "adjustment", "amount": "-20", "reason": "oops", "confirmed": "yes"},
        follow=True,
    )
    assert "Insufficient balance" in response.content.decode()
    app.refresh_from_db()
    assert app.balance == Decimal("12.5")
    assert_books(app)


def test_viewers_without_add_permission_cannot_move_money(client):
    viewer = get_user_model().objects.create_user(
        "viewer", password="pw", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_ledgerentry"))
    client.force_login(viewer)
    app = funded_app("1")
    assert client.get(billing_url(app)).status_code == 200
    response = client.post(
        billing_url(app), {"kind": "top_up", "amount": "5", "reason": "self-service",
                           "confirmed": "yes"}
    )
    assert response.status_code == 403
    app.refresh_from_db()
    assert app.balance == 1


def test_ledger_is_read_only_in_the_admin(client, superuser):
    app = funded_app("1")
    entry = LedgerEntry.objects.get(app=app)
    assert (
        client.get(reverse("admin:sms_service_ledgerentry_changelist")).status_code
        == 200
    )
    assert client.get(reverse("admin:sms_service_ledgerentry_add")).status_code == 403
    delete = reverse("admin:sms_service_ledgerentry_delete", args=[entry.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:sms_service_price_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:sms_service_unmatchedreceipt_changelist")).status_code
        == 200
    )
