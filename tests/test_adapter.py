"""A project changes behaviour by pointing SMS_SERVICE["ADAPTER"] at its subclass."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from sms_service.adapter import DefaultSmsAdapter, get_adapter
from sms_service.backends import locmem
from sms_service.exceptions import SmsServiceConfigurationError
from sms_service.models import CodePurpose, Message, Signature
from sms_service.services import billing, codes, content
from sms_service.services import outbox as outbox_service

from .adapters import ProjectAdapter
from .billing_support import funded_app, held_message

SEND = "/1.1/requestSmsCode"

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_adapter(settings):
    ProjectAdapter.notified = []
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "ADAPTER": "tests.adapters.ProjectAdapter",
        "BACKENDS": {
            "default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
            "north-america": {"BACKEND": "sms_service.backends.dummy.DummyBackend"},
        },
    }
    yield ProjectAdapter
    ProjectAdapter.notified = []


def test_the_setting_picks_the_class(project_adapter):
    assert type(get_adapter()) is ProjectAdapter


def test_the_default_adapter_without_the_setting():
    assert type(get_adapter()) is DefaultSmsAdapter


def test_a_project_generates_the_codes_and_they_verify(lc, signature, outbox, project_adapter):
    assert lc.post(SEND, {"mobilePhoneNumber": "18612345678"}).json() == {}
    assert "567856" in outbox[0].body
    verify = lc.post("/1.1/verifySmsCode/567856", {"mobilePhoneNumber": "18612345678"})
    assert verify.json() == {}


def test_a_code_of_the_wrong_length_is_a_configuration_error(lc, app, signature, outbox,
                                                             settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ADAPTER": "tests.adapters.ShortCodeAdapter"}
    with pytest.raises(SmsServiceConfigurationError, match="CODE_LENGTH"):
        codes.issue_code(app=app, phone="+8618612345678", purpose=CodePurpose.GENERIC,
                         ttl_minutes=10)
    response = lc.post(SEND, {"mobilePhoneNumber": "18612345678"})
    assert response.status_code == 500 and response.json()["code"] == 1
    assert outbox == [] and not Message.objects.exists()


def test_a_project_writes_the_default_text(lc, app, signature, outbox, project_adapter):
    app.default_language = "en"
    app.save()
    lc.post(SEND, {"mobilePhoneNumber": "18612345678", "ttl": 5})
    assert outbox[0].body == "【LeanCloud】[en] Demo: 567856 (5 min)"
    # The stored copy masks the code as always.
    assert Message.objects.get().body == "【LeanCloud】[en] Demo: ****** (5 min)"


@pytest.mark.parametrize("language, start", [
    ("zh", "【LeanCloud】您正在使用Demo服务进行短信验证操作"),
    ("en", "【LeanCloud】You are using Demo to verify your phone number."),
    ("fr", "【LeanCloud】您正在使用Demo服务进行短信验证操作"),  # no French text: Chinese
])
def test_the_default_texts_languages(lc, app, signature, outbox, language, start):
    app.default_language = language
    app.save()
    lc.post(SEND, {"mobilePhoneNumber": "18612345678"})
    assert outbox[0].body.startswith(start)


def test_a_project_routes_numbers_to_backends(lc, app, signature, outbox, project_adapter):
    app.allow_international = True
    app.save()
    lc.post(SEND, {"mobilePhoneNumber": "+12025550123"})
    lc.post(SEND, {"mobilePhoneNumber": "18612345678"})
    north_america, mainland = Message.objects.order_by("pk")
    assert (north_america.backend, north_america.provider) == ("north-america", "dummy")
    assert (mainland.backend, mainland.provider) == ("default", "locmem")
    assert [m.to for m in outbox] == ["+8618612345678"]


def test_routing_to_an_unconfigured_alias_is_refused_before_anything_is_written(
    lc, app, signature, outbox, project_adapter, settings
):
    app.allow_international = True
    app.save()
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "BACKENDS": {
        "default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"}}}
    response = lc.post(SEND, {"mobilePhoneNumber": "+12025550123"})
    assert response.status_code == 500 and response.json()["code"] == 1
    assert not Message.objects.exists() and outbox == []
    with pytest.raises(SmsServiceConfigurationError, match="north-america"):
        outbox_service.route(app=app, phone="+12025550123", channel="sms",
                             kind="verification")


def test_a_project_tells_the_client_ip(lc, signature, project_adapter):
    lc.post(SEND, {"mobilePhoneNumber": "18612345678"}, HTTP_X_REAL_IP="203.0.113.9")
    assert Message.objects.get().client_ip == "203.0.113.9"


def test_review_decisions_and_balance_alerts_reach_the_project_by_one_path(
    app, project_adapter, django_capture_on_commit_callbacks
):
    signature = content.create_signature(app=app, name="s", text="应用A")
    rejected = content.create_signature(app=app, name="t", text="应用B")
    with django_capture_on_commit_callbacks(execute=True):
        content.approve(item=signature, reviewer=None)
        content.reject(item=rejected, reviewer=None, reason="Show a trademark.")
    poor = funded_app("3", balance_alert_threshold=Decimal("2"))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            held_message(poor, cost="1")
    events = [(event, context) for event, _, context in project_adapter.notified]
    assert events == [
        ("content_approved", {"item": Signature.objects.get(pk=signature.pk)}),
        ("content_rejected", {"item": Signature.objects.get(pk=rejected.pk)}),
        ("balance_low", {"balance": Decimal("1"), "threshold": Decimal("2")}),
    ]
    assert "approved" in project_adapter.notified[0][1]
    assert mail.outbox == []  # the project's adapter replaced the email


def test_a_failing_notification_never_undoes_the_decision(
    app, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.test_adapter.BrokenEmailBackend"
    app.owner_email = "owner@example.com"
    app.save()
    signature = content.create_signature(app=app, name="s", text="应用A")
    with django_capture_on_commit_callbacks(execute=True):
        content.approve(item=signature, reviewer=None)
    assert Signature.objects.get(pk=signature.pk).is_approved


class BrokenEmailBackend:
    def __init__(self, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("mail server down")


# --- the system check ------------------------------------------------------------------


def _check_ids(settings, adapter: str, **extra) -> list[str]:
    from sms_service.checks import check_adapter

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ADAPTER": adapter, **extra}
    return [error.id for error in check_adapter()]


def test_check_accepts_the_default_and_a_subclass(settings):
    assert _check_ids(settings, "sms_service.adapter.DefaultSmsAdapter") == []
    assert _check_ids(settings, "tests.adapters.ProjectAdapter") == []


def test_check_refuses_an_adapter_lacking_hooks(settings):
    from sms_service.checks import check_adapter

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ADAPTER": "tests.adapters.NoHooksAdapter"}
    messages = [error.msg for error in check_adapter()]
    assert any("generate_code" in m and "sending" in m for m in messages)
    assert any("notify_owner" in m for m in messages)


def test_check_names_the_feature_that_needs_the_hook(settings, monkeypatch):
    from sms_service import checks

    # A hook needed only while billing is on: off, the same adapter passes.
    monkeypatch.setattr(checks, "ADAPTER_HOOKS", [
        ("balance alerts", lambda: bool(checks.app_settings.BILLING_ENABLED),
         ("notify_owner",)),
    ])
    assert _check_ids(settings, "tests.adapters.NoHooksAdapter") == ["sms_service.E010"]
    assert _check_ids(settings, "tests.adapters.NoHooksAdapter", BILLING_ENABLED=False) == []


def test_check_refuses_an_adapter_that_cannot_be_imported(settings):
    assert _check_ids(settings, "tests.adapters.Missing") == ["sms_service.E009"]


def test_manage_check_fails_on_a_bad_adapter(settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ADAPTER": "tests.adapters.NoHooksAdapter"}
    with pytest.raises(SystemCheckError, match="sms_service.E010"):
        call_command("check")


def test_billing_and_review_send_their_email_through_the_default_adapter(
    app, django_capture_on_commit_callbacks
):
    app.owner_email = "owner@example.com"
    app.balance_alert_threshold = Decimal("2")
    app.save()
    billing.top_up(app=app, amount="3", reason="funds")
    app.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        held_message(app, cost="2")
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert locmem.outbox == []
