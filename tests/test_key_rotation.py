"""Rotating the app key and master key: admin (with confirmation), CLI, grace period."""

from __future__ import annotations

import hashlib
import io
import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from sms_service.models import KeyRotation
from sms_service.services import tenants as apps

pytestmark = pytest.mark.django_db

STATUS = "/1.1/requestSmsCode"


def _call(client, app, key: str, *, master: bool = False, sign: bool = False):
    """A LeanCloud request with X-LC-Key or X-LC-Sign; returns the HTTP status."""
    if sign:
        ts = str(int(time.time() * 1000))
        value = hashlib.md5((ts + key).encode()).hexdigest() + "," + ts
        headers = {"HTTP_X_LC_SIGN": value + (",master" if master else "")}
    else:
        headers = {"HTTP_X_LC_KEY": key + (",master" if master else "")}
    # A body without a number: authenticated requests get 400 (212), others 401.
    response = client.post(STATUS, data="{}", content_type="application/json",
                           HTTP_X_LC_ID=app.app_id, **headers)
    return response.status_code


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    client.user = user
    return client


def test_rotation_without_grace_stops_the_old_key_at_once(client, app):
    old = app.app_key
    assert _call(client, app, old) == 400
    new = apps.rotate_key(app=app, which="app_key", reason="leaked in a repo")
    assert new != old and app.app_key == new
    assert _call(client, app, old) == 401
    assert _call(client, app, old, sign=True) == 401
    assert _call(client, app, new) == 400
    assert _call(client, app, new, sign=True) == 400
    entry = KeyRotation.objects.get()
    assert (entry.which, entry.reason, entry.grace_until) == ("app_key", "leaked in a repo", None)
    assert entry.old_key_hint == old[-4:]


def test_the_old_key_works_during_the_grace_period_only(client, app):
    old = app.master_key
    apps.rotate_key(app=app, which="master_key", grace=timedelta(hours=1))
    assert _call(client, app, old, master=True) == 400
    assert _call(client, app, old, master=True, sign=True) == 400
    assert _call(client, app, app.master_key, master=True) == 400
    # The old master key never works as an app key.
    assert _call(client, app, old) == 401
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert _call(client, app, old, master=True) == 401
        assert _call(client, app, app.master_key, master=True) == 400


def test_a_second_rotation_ends_the_first_grace(client, app):
    first = app.app_key
    apps.rotate_key(app=app, which="app_key", grace=timedelta(hours=1))
    apps.rotate_key(app=app, which="app_key")
    assert _call(client, app, first) == 401


def test_grace_is_bounded(app):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        apps.rotate_key(app=app, which="app_key", grace=timedelta(days=31))
    with pytest.raises(ValidationError):
        apps.rotate_key(app=app, which="app_id")
    assert not KeyRotation.objects.exists()


def test_admin_rotation_asks_for_confirmation_then_audits(superuser_client, client, app):
    url = reverse("admin:sms_service_app_rotate_key", args=[app.pk])
    change = superuser_client.get(reverse("admin:sms_service_app_change", args=[app.pk]))
    assert url in change.content.decode()
    old = app.app_key
    page = superuser_client.get(url)
    assert page.status_code == 200 and "Grace period" in page.content.decode()
    # Without the confirmation box nothing changes.
    response = superuser_client.post(url, {"which": "app_key", "grace_hours": "24"})
    assert response.status_code == 200
    app.refresh_from_db()
    assert app.app_key == old and not KeyRotation.objects.exists()
    response = superuser_client.post(url, {"which": "app_key", "grace_hours": "24",
                                           "reason": "staff left", "confirm": "on"})
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.app_key != old and app.previous_app_key == old
    entry = KeyRotation.objects.get()
    assert entry.actor == superuser_client.user and entry.via == "admin"
    assert entry.reason == "staff left" and entry.grace_until > timezone.now()
    history = superuser_client.get(reverse("admin:sms_service_app_change", args=[app.pk]))
    assert "staff left" in history.content.decode()


def test_admin_rotation_needs_the_change_permission(client, app):
    from django.contrib.auth.models import Permission

    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_app"))
    client.force_login(viewer)
    url = reverse("admin:sms_service_app_rotate_key", args=[app.pk])
    assert client.post(url, {"which": "app_key", "grace_hours": "0",
                             "confirm": "on"}).status_code == 403


def test_cli_rotation_prints_the_new_key_and_audits(client, app):
    old = app.master_key
    out, err = io.StringIO(), io.StringIO()
    call_command("sms_service_app", "rotate-key", app.app_id, "--key", "master_key",
                 "--grace-hours", "2", "--reason", "yearly", stdout=out, stderr=err)
    shown = json.loads(out.getvalue())
    app.refresh_from_db()
    assert shown["master_key"] == app.master_key != old
    assert "works until" in err.getvalue()
    entry = KeyRotation.objects.get()
    assert entry.via.startswith("manage.py by ") and entry.reason == "yearly"
    assert _call(client, app, old, master=True) == 400
