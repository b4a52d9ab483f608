"""SITE_APP_ID: the app whose SMS settings the bundled account pages use."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from sms_service.exceptions import SmsServiceConfigurationError
from sms_service.models import App
from sms_service.services.tenants import get_site_app

SITE_ID = "SiteApp00000000000000000-gzGzoHsz"


def test_site_app_is_the_app_named_by_the_setting(app, settings):
    other = App.objects.create(name="Other")
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SITE_APP_ID": other.app_id}
    assert get_site_app().pk == other.pk
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SITE_APP_ID": app.app_id}
    assert get_site_app().pk == app.pk


def test_missing_or_unknown_site_app_is_a_configuration_error_naming_the_setting(db, settings):
    with pytest.raises(SmsServiceConfigurationError, match=r'SMS_SERVICE\["SITE_APP_ID"\]'):
        get_site_app()
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SITE_APP_ID": SITE_ID}
    with pytest.raises(SmsServiceConfigurationError, match="no app has that id"):
        get_site_app()


def test_demo_creates_the_site_app_under_its_configured_id(db, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SITE_APP_ID": SITE_ID}
    call_command("sms_service_demo", stdout=io.StringIO())
    call_command("sms_service_demo", stdout=io.StringIO())
    assert list(App.objects.values_list("app_id", flat=True)) == [SITE_ID]
    site = get_site_app()
    assert site.name == "Demo" and site.default_signature_text  # ready to send codes
