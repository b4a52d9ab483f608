"""Template-based providers: our texts mapped to Aliyun / Tencent Cloud templates,
sent end to end through requestSmsCode and the outbox to the fake providers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from sms_service.models import (
    LedgerEntry,
    LedgerKind,
    Message,
    MessageStatus,
    ProviderTemplate,
    Signature,
)

from . import test_backend_aliyun, test_backend_tencent
from .billing_support import funded_app, set_price
from .content_fixtures import approved_signature, approved_template, latest
from .fake_aliyun import FakeAliyun
from .fake_provider import running
from .fake_tencent import FakeTencent

pytestmark = pytest.mark.django_db

NUMBER = "+8618612345678"


@pytest.fixture
def fake_aliyun() -> Iterator[FakeAliyun]:
    with running(FakeAliyun()) as fake:
        yield fake


@pytest.fixture
def fake_tencent() -> Iterator[FakeTencent]:
    with running(FakeTencent()) as fake:
        yield fake


@pytest.fixture
def aliyun_default(fake_aliyun) -> Iterator[None]:
    config = {"DEFAULT_UNIT_PRICES": {"sms": "0", "voice": "0"}, "BACKENDS": {"default": {
        "BACKEND": "sms_service.backends.aliyun.AliyunBackend",
        "OPTIONS": test_backend_aliyun._options(fake_aliyun, SIGN_NAME=None),
    }}}
    with override_settings(SMS_SERVICE=config):
        yield


@pytest.fixture
def tencent_default(fake_tencent) -> Iterator[None]:
    config = {"DEFAULT_UNIT_PRICES": {"sms": "0", "voice": "0"}, "BACKENDS": {"default": {
        "BACKEND": "sms_service.backends.tencent.TencentBackend",
        "OPTIONS": test_backend_tencent._options(fake_tencent),
    }}}
    with override_settings(SMS_SERVICE=config):
        yield


def signed(app):
    """``app`` with the approved default signature 【Demo】."""
    signature = approved_signature(app, name="sign_Demo", text="Demo")
    Signature.objects.filter(pk=signature.pk).update(is_default=True)
    return app


@pytest.fixture
def cn_app(lc):
    return signed(lc.app)


def default_mapping(*, backend="default", channel="sms", app=None, template_id="SMS_100001",
                    parameters=("code", "ttl")) -> ProviderTemplate:
    return ProviderTemplate.objects.create(backend=backend, channel=channel, app=app,
                                           provider_template_id=template_id,
                                           parameters=list(parameters))


@pytest.mark.usefixtures("aliyun_default")
def test_default_code_text_goes_out_as_the_mapped_aliyun_template(lc, cn_app, fake_aliyun) -> None:
    default_mapping(parameters=("code", "ttl"))

    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER, "ttl": 5})

    assert response.status_code == 200, response.content
    (call,) = fake_aliyun.calls_to("SendSms")
    assert call.params["TemplateCode"] == "SMS_100001"
    assert call.params["SignName"] == "Demo"  # the message's signature
    params = json.loads(call.params["TemplateParam"])
    assert list(params) == ["code", "ttl"] and params["ttl"] == "5"
    # The code the provider sent is the one that verifies.
    verified = lc.post(f"/1.1/verifySmsCode/{params['code']}", {"mobilePhoneNumber": NUMBER})
    assert verified.status_code == 200, verified.content
    message = Message.objects.get()
    assert message.status == MessageStatus.ACCEPTED and message.provider == "aliyun"
    assert message.payload is None  # code and values wiped once Aliyun has them


@pytest.mark.usefixtures("aliyun_default")
def test_an_apps_own_default_mapping_wins(lc, cn_app, fake_aliyun) -> None:
    default_mapping(template_id="SMS_100001")
    default_mapping(template_id="SMS_200002", app=cn_app)

    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER})

    assert fake_aliyun.calls_to("SendSms")[0].params["TemplateCode"] == "SMS_200002"


@pytest.mark.usefixtures("aliyun_default")
def test_voice_code_uses_the_voice_mapping(lc, cn_app, fake_aliyun) -> None:
    default_mapping(channel="voice", template_id="TTS_300003", parameters=("code",))

    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER, "smsType": "voice"})

    assert response.status_code == 200, response.content
    (call,) = fake_aliyun.calls_to("SingleCallByTts")
    assert call.params["TtsCode"] == "TTS_300003"
    assert json.loads(call.params["TtsParam"])["code"].isdigit()


@pytest.mark.usefixtures("aliyun_default")
def test_missing_mapping_is_refused_before_anything_is_held(lc, fake_aliyun) -> None:
    app = funded_app("10")
    lc.app = signed(app)
    set_price("0.05")
    default_mapping(channel="voice", template_id="TTS_1")  # SMS has none

    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER})

    assert response.status_code == 400
    assert response.json()["code"] == 604
    assert 'backend "default"' in response.json()["error"]
    assert not Message.objects.exists()
    assert not LedgerEntry.objects.filter(app=app).exclude(kind=LedgerKind.TOP_UP).exists()
    app.refresh_from_db()
    assert app.balance == Decimal("10")
    assert fake_aliyun.calls == []


@pytest.mark.usefixtures("tencent_default")
def test_template_version_parameters_go_to_tencent_in_order(lc, cn_app, fake_tencent) -> None:
    template = approved_template(cn_app, "order_shipped",
                                 "Order {{order_id}} ships {{day}}, thanks {{name}}.")
    ProviderTemplate.objects.create(template_version=latest(template), backend="default",
                                    provider_template_id="449739",
                                    parameters=["name", "order_id", "day"])

    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER,
                                               "template": "order_shipped",
                                               "order_id": "A-17", "day": "Monday",
                                               "name": "Kim"})

    assert response.status_code == 200, response.content
    (call,) = fake_tencent.calls_to("SendSms")
    assert call.params["TemplateId"] == "449739"
    assert call.params["TemplateParamSet"] == ["Kim", "A-17", "Monday"]


@pytest.mark.usefixtures("tencent_default")
def test_a_mapping_naming_an_unknown_value_fails_the_message_unbilled(lc, fake_tencent) -> None:
    app = funded_app("10")
    lc.app = signed(app)
    set_price("0.05")
    default_mapping(parameters=("code", "coupon"))

    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER})

    message = Message.objects.get()
    assert message.status == MessageStatus.FAILED
    assert "coupon" in message.error_message
    app.refresh_from_db()
    assert app.balance == Decimal("10")
    assert fake_tencent.calls == []


def test_free_text_backends_keep_the_rendered_text(lc, cn_app, outbox) -> None:
    default_mapping()  # ignored: locmem sends text

    lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": NUMBER})

    (sent,) = outbox
    assert sent.body.startswith("【Demo】") and sent.template_id == ""


# --- admin -----------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.mark.usefixtures("aliyun_default")
def test_mapping_is_edited_beside_the_version(admin_client, cn_app) -> None:
    template = approved_template(cn_app, "welcome", "Welcome {{name}}.")
    version = latest(template)
    template_page = admin_client.get(
        reverse("admin:sms_service_template_change", args=[template.pk]))
    url = reverse("admin:sms_service_templateversion_change", args=[version.pk])
    assert url in template_page.content.decode()

    prefix = "provider_templates"
    response = admin_client.post(url, {
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-backend": "default", f"{prefix}-0-provider_template_id": "SMS_5",
        f"{prefix}-0-parameters": "name",
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    mapping = ProviderTemplate.objects.get()
    assert (mapping.template_version, mapping.provider_template_id, mapping.parameters) == (
        version, "SMS_5", ["name"])
    version.refresh_from_db()
    assert version.body == "Welcome {{name}}."  # the version itself is unchanged


@pytest.mark.usefixtures("aliyun_default")
def test_admin_refuses_a_bad_parameter_list(admin_client) -> None:
    response = admin_client.post(reverse("admin:sms_service_providertemplate_add"), {
        "backend": "default", "channel": "sms", "provider_template_id": "SMS_1",
        "parameters": "code, code",
    })
    assert response.status_code == 200
    assert "listed twice" in response.content.decode()
    assert not ProviderTemplate.objects.exists()
