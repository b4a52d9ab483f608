"""The admin: app settings, the message log and the dashboard."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from sms_service.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(user)
    return client


def make(app, status, n=1, **extra):
    for _ in range(n):
        Message.objects.create(app=app, phone="+8618612345678", body="【Demo】x",
                               status=status, **extra)


def test_dashboard_draws_daily_bars_and_figures(staff, app):
    make(app, "delivered", 3)
    make(app, "undelivered", 1)
    make(app, "failed", 2)
    make(app, "delivered", 5, is_test=True)  # test numbers are not traffic
    response = staff.get("/admin/sms_service/message/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and html.count("<rect") == 3
    assert "Delivered: 3 (of 6)" in html and "Call failed: 2 (of 6)" in html
    figures = dict(response.context["figures"])
    assert figures["Messages"] == 6
    assert figures["Delivery rate"] == "75.0%"


def test_dashboard_filters_by_app(staff, app):
    from sms_service.models import App

    other = App.objects.create(name="Other")
    make(app, "delivered", 2)
    make(other, "delivered", 7)
    response = staff.get(f"/admin/sms_service/message/dashboard/?app={other.pk}")
    assert dict(response.context["figures"])["Messages"] == 7


def test_dashboard_needs_admin_login(client):
    response = client.get("/admin/sms_service/message/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_dashboard_needs_view_permission(client, app):
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/sms_service/message/dashboard/").status_code == 403


def test_message_log_is_read_only_and_masks_numbers(staff, app):
    make(app, "delivered")
    message = Message.objects.get()
    page = staff.get(f"/admin/sms_service/message/{message.pk}/change/").content.decode()
    assert "+86186****5678" in page
    assert "+8618612345678" not in page
    listing = staff.get("/admin/sms_service/message/").content.decode()
    assert "+86186****5678" in listing and "+8618612345678" not in listing
    assert staff.get("/admin/sms_service/message/add/").status_code == 403
    assert "/admin/sms_service/message/dashboard/" in listing  # linked from the log


def test_app_admin_groups_settings_like_the_console(admin_client, app):
    page = admin_client.get(f"/admin/sms_service/app/{app.pk}/change/").content.decode()
    for heading in ("Security", "SMS settings", "Account settings"):
        assert heading in page
    assert app.master_key in page  # shown read-only to administrators
