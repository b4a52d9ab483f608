"""Operator tools: settings, system checks, the sms_service_app command."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from sms_service.checks import check_settings
from sms_service.conf import app_settings
from sms_service.models import App


def run(*args) -> str:
    out = io.StringIO()
    call_command("sms_service_app", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestAppCommand:
    def test_create_prints_the_three_keys(self):
        data = json.loads(run("create", "Shop", "--company", "Shop Ltd"))
        app = App.objects.get(name="Shop")
        assert data["app_id"] == app.app_id
        assert data["app_key"] == app.app_key and data["master_key"] == app.master_key
        assert len(app.app_key) == 24 and app.app_key != app.master_key

    def test_create_with_given_keys_for_scripted_setups(self):
        run("create", "Scripted", "--app-id", "fixed-id", "--app-key", "k1", "--master-key", "m1")
        app = App.objects.get(app_id="fixed-id")
        assert (app.app_key, app.master_key) == ("k1", "m1")
        with pytest.raises(CommandError, match="exists already"):
            run("create", "Again", "--app-id", "fixed-id")

    def test_update_toggles_and_show(self, app):
        run("update", app.app_id, "--set", "allow_international=true", "--set",
            "sms_api_enabled=off", "--set", "name=Renamed")
        shown = json.loads(run("show", app.app_id))
        assert shown["allow_international"] is True
        assert shown["sms_api_enabled"] is False
        assert shown["name"] == "Renamed"

    @pytest.mark.parametrize(
        "setting, message",
        [
            ("allow_international=maybe", "takes true or false"),
            ("master_key=abc", "Unknown or read-only"),
            ("nonsense", "FIELD=VALUE"),
            ("default_language=fr", "not a valid choice"),
        ],
    )
    def test_update_refuses_bad_input_and_changes_nothing(self, app, setting, message):
        before = App.objects.values().get(pk=app.pk)
        with pytest.raises(CommandError, match=message):
            run("update", app.app_id, "--set", setting)
        assert App.objects.values().get(pk=app.pk) == before

    def test_unknown_app(self, db):
        with pytest.raises(CommandError, match="No app"):
            run("show", "missing")


def test_settings_have_documented_defaults_and_reload():
    assert app_settings.CODE_TTL_MINUTES == 10
    with override_settings(SMS_SERVICE={"CODE_TTL_MINUTES": 5}):
        assert app_settings.CODE_TTL_MINUTES == 5
    assert app_settings.CODE_TTL_MINUTES == 10
    with pytest.raises(AttributeError):
        app_settings.NO_SUCH_SETTING  # noqa: B018


@pytest.mark.parametrize(
    "config, check_id",
    [
        ({"BACKENDS": {"default": {"BACKEND": "no.such.Backend"}}}, "sms_service.E002"),
        ({"BACKENDS": {}}, "sms_service.E001"),
        ({"BACKENDS": {"default": {"BACKEND": "sms_service.backends.file.FileBackend"}}},
         "sms_service.E003"),
        ({"CHANNEL_BACKENDS": {"voice": "missing"}}, "sms_service.E004"),
        ({"CODE_TTL_MINUTES": 60}, "sms_service.E005"),
        ({"CODE_LENGTH": 4}, "sms_service.E006"),
        ({"RATE_LIMIT_CACHE": "nope"}, "sms_service.E007"),
    ],
)
def test_system_checks_catch_bad_configuration(config, check_id):
    base = {"BACKENDS": {"default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"}}}
    with override_settings(SMS_SERVICE={**base, **config}):
        ids = [error.id for error in check_settings()]
    assert check_id in ids


def test_missing_backend_option_names_the_key():
    config = {"BACKENDS": {"default": {"BACKEND": "sms_service.backends.file.FileBackend"}}}
    with override_settings(SMS_SERVICE=config):
        (error,) = [e for e in check_settings() if e.id == "sms_service.E003"]
    assert 'SMS_SERVICE["BACKENDS"]["default"]["OPTIONS"]["PATH"]' in error.msg


def test_twilio_voice_needs_a_caller_number_and_receipts_a_public_url():
    config = {"BACKENDS": {"default": {
        "BACKEND": "sms_service.backends.twilio.TwilioBackend",
        "OPTIONS": {"ACCOUNT_SID": "AC" + "0" * 32, "AUTH_TOKEN": "t",
                    "MESSAGING_SERVICE_SID": "MG" + "0" * 32},
    }}}
    with override_settings(SMS_SERVICE=config):
        ids = [error.id for error in check_settings()]
    assert "sms_service.E008" in ids and "sms_service.W002" in ids


@pytest.mark.django_db
def test_demo_seed_is_ready_to_send_and_idempotent(client):
    """`make demo`'s seed: an app with approved content, prices and credit."""
    from django.core import mail

    out = io.StringIO()
    call_command("sms_service_demo", stdout=out)
    first = out.getvalue()
    call_command("sms_service_demo", stdout=io.StringIO())
    app = App.objects.get(name="Demo")
    assert App.objects.filter(name="Demo").count() == 1
    assert app.app_id in first and app.app_key in first and app.master_key in first
    assert "password" in first
    assert str(app.balance) == "100.0000"  # credit added once
    assert mail.outbox == []  # seeding approves its own content silently
    headers = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": app.app_key}
    for body in ({"mobilePhoneNumber": "18612345678"},
                 {"mobilePhoneNumber": "18612345679", "template": "Order_Notice",
                  "order_id": "7623432424540"}):
        response = client.post("/1.1/requestSmsCode", data=json.dumps(body),
                               content_type="application/json", **headers)
        assert response.json() == {}, body
