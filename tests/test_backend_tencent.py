"""TencentBackend on Tencent Cloud's official SDK against a fake API on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory, override_settings
from django.utils import timezone

from sms_service import tasks
from sms_service.backends.base import OutgoingMessage
from sms_service.backends.tencent import ERROR_CODES, TencentBackend
from sms_service.exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SmsServiceConfigurationError,
)
from sms_service.models import Message, MessageStatus
from sms_service.services import receipts

from .fake_provider import free_port_refusing, outgoing, running
from .fake_tencent import SDK_APP_ID, SECRET_ID, SECRET_KEY, FakeTencent

TOKEN = "callback-secret"


def _options(fake: FakeTencent | None = None, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "SECRET_ID": SECRET_ID,
        "SECRET_KEY": SECRET_KEY,
        "SDK_APP_ID": SDK_APP_ID,
        "SIGN_NAME": "Demo",
        "ENDPOINT": fake.host if fake else f"127.0.0.1:{free_port_refusing()}",
        "PROTOCOL": "http",
        "TIMEOUT": (2, 5),
        "RECEIPT_TOKEN": TOKEN,
    }
    options.update(overrides)
    return {key: value for key, value in options.items() if value is not None}


@pytest.fixture
def fake_tencent() -> Iterator[FakeTencent]:
    with running(FakeTencent()) as fake:
        yield fake


@pytest.fixture
def make_backend(fake_tencent: FakeTencent) -> Callable[..., TencentBackend]:
    def make(**overrides: Any) -> TencentBackend:
        return TencentBackend(alias="tencent", **_options(fake_tencent, **overrides))

    return make


def sms(**fields: Any) -> OutgoingMessage:
    fields.setdefault("template_id", "449739")
    return outgoing(**fields)


@pytest.mark.parametrize("key", ["SECRET_ID", "SECRET_KEY", "SDK_APP_ID"])
def test_missing_setting_names_the_key(key: str) -> None:
    with pytest.raises(SmsServiceConfigurationError, match=key):
        TencentBackend(alias="tencent", **_options(**{key: None}))


def test_sms_is_sent_with_the_template_and_ordered_parameters(make_backend, fake_tencent) -> None:
    result = make_backend().send(sms(sign_name="Shop"))

    (call,) = fake_tencent.calls_to("SendSms")
    assert call.params["PhoneNumberSet"] == ["+8618612345678"]
    assert call.params["SmsSdkAppId"] == SDK_APP_ID
    assert call.params["SignName"] == "Shop"
    assert call.params["TemplateId"] == "449739"
    assert call.params["TemplateParamSet"] == ["123456", "10"]  # order kept
    assert call.params["SessionContext"] == "7"
    assert result.provider_message_id in fake_tencent.sent
    assert f"Credential={SECRET_ID}/" in call.headers["Authorization"]


def test_voice_is_not_supported(make_backend, fake_tencent) -> None:
    with pytest.raises(ProviderRejectedError, match="voice"):
        make_backend().send(sms(channel="voice", digits="123456"))
    assert fake_tencent.calls == []


def test_without_a_template_id_nothing_is_sent(make_backend, fake_tencent) -> None:
    with pytest.raises(ProviderRejectedError, match="template"):
        make_backend().send(sms(template_id=""))
    assert fake_tencent.calls == []


@pytest.mark.parametrize(
    ("code", "error", "provider_fault"),
    [
        ("FailedOperation.SignatureIncorrectOrUnapproved", ProviderRejectedError, True),
        ("FailedOperation.InsufficientBalanceInSmsPackage", ProviderRejectedError, True),
        ("AuthFailure.SignatureFailure", ProviderRejectedError, True),
        ("FailedOperation.PhoneNumberInBlacklist", ProviderRejectedError, False),
        ("InternalError.Timeout", ProviderOutcomeUnknownError, False),
        ("ResourceUnavailable.Something", ProviderTemporaryError, True),
    ],
)
def test_request_errors_map_with_their_reason(make_backend, fake_tencent, code, error,
                                              provider_fault) -> None:
    fake_tencent.inject("error", code=code)
    with pytest.raises(error) as info:
        make_backend().send(sms())
    assert info.value.context["provider_code"] == code
    assert info.value.context["provider_fault"] is provider_fault
    assert fake_tencent.sent == {}


@pytest.mark.parametrize(
    ("code", "error"),
    [("LimitExceeded.PhoneNumberDailyLimit", ProviderRejectedError),
     ("InvalidParameterValue.TemplateParameterFormatError", ProviderRejectedError)],
)
def test_per_number_errors_map(make_backend, fake_tencent, code, error) -> None:
    fake_tencent.inject("send_error", code=code)
    with pytest.raises(error) as info:
        make_backend().send(sms())
    assert info.value.context["provider_code"] == code
    assert ERROR_CODES[code].reason in str(info.value)


def test_invalid_number_is_rejected(make_backend, fake_tencent) -> None:
    with pytest.raises(ProviderRejectedError) as info:
        make_backend().send(sms(to="8618612345678"))
    assert info.value.context["provider_code"] == "InvalidParameterValue.IncorrectPhoneNumber"


def test_unknown_app_id_is_a_provider_refusal(make_backend, fake_tencent) -> None:
    with pytest.raises(ProviderRejectedError) as info:
        make_backend(SDK_APP_ID="1400999999").send(sms())
    assert info.value.context["provider_fault"] is True


def test_throttling_is_temporary(make_backend, fake_tencent) -> None:
    fake_tencent.inject("throttle")
    with pytest.raises(ProviderTemporaryError) as info:
        make_backend().send(sms())
    assert info.value.context["provider_code"] == "RequestLimitExceeded"


@pytest.mark.parametrize(
    ("status", "error"),
    [(502, ProviderTemporaryError), (503, ProviderTemporaryError),
     (500, ProviderOutcomeUnknownError), (504, ProviderOutcomeUnknownError)],
)
def test_5xx(make_backend, fake_tencent, status, error) -> None:
    fake_tencent.inject("status", status=status)
    with pytest.raises(error) as info:
        make_backend().send(sms())
    assert info.value.context["http_status"] == status


def test_connection_refused_is_temporary() -> None:
    with pytest.raises(ProviderTemporaryError, match="cannot connect"):
        TencentBackend(alias="tencent", **_options()).send(sms())


def test_read_timeout_is_unknown_and_tencent_did_send(make_backend, fake_tencent) -> None:
    fake_tencent.inject("delay", seconds=30)
    with pytest.raises(ProviderOutcomeUnknownError, match="did not answer"):
        make_backend(TIMEOUT=(2, 0.3)).send(sms())
    assert len(fake_tencent.sent) == 1


@pytest.mark.parametrize("kind", ["close", "reset", "malformed"])
def test_dropped_or_unreadable_reply_is_unknown(make_backend, fake_tencent, kind) -> None:
    fake_tencent.inject(kind)
    with pytest.raises(ProviderOutcomeUnknownError):
        make_backend().send(sms())


# --- receipts --------------------------------------------------------------------------


def callback(body: Any, *, token: str | None = TOKEN):
    path = "/sms_service/receipts/tencent" + (f"?token={token}" if token is not None else "")
    return RequestFactory().post(path, data=json.dumps(body), content_type="application/json")


def test_status_callback_is_parsed(make_backend) -> None:
    reports = make_backend().parse_delivery_reports(callback([
        {"user_receive_time": "2025-01-02 08:03:04", "nationcode": "86",
         "mobile": "18612345678", "report_status": "SUCCESS", "errmsg": "DELIVRD",
         "description": "用户短信送达成功", "sid": "2028:1"},
        {"mobile": "18612345679", "report_status": "FAIL", "errmsg": "MK:0001",
         "description": "空号", "sid": "2028:2"},
    ]))
    assert [(r.provider_message_id, r.status, r.error_code) for r in reports] == [
        ("2028:1", "delivered", ""), ("2028:2", "undelivered", "MK:0001")]
    assert "mobile" not in reports[0].raw


@pytest.mark.parametrize("token", [None, "wrong"])
def test_callback_without_the_secret_is_refused(make_backend, token) -> None:
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(callback([], token=token))


def test_poll_one_message_by_phone_number(make_backend, fake_tencent) -> None:
    backend = make_backend()
    sent = backend.send(sms())
    now = datetime.now(UTC)
    assert backend.poll_message_status(sent.provider_message_id, to="+8618612345678", sent_at=now) is None

    fake_tencent.report(sent.provider_message_id, "FAIL", "MK:0005")
    report = backend.poll_message_status(sent.provider_message_id, to="+8618612345678", sent_at=now)
    assert (report.status, report.error_code) == ("undelivered", "MK:0005")


def test_pull_hands_out_each_receipt_once(make_backend, fake_tencent) -> None:
    backend = make_backend()
    first = backend.send(sms()).provider_message_id
    second = backend.send(sms(message_id=8)).provider_message_id
    fake_tencent.report(first)
    fake_tencent.report(second, "FAIL", "MK:0001")

    reports = backend.pull_delivery_reports()
    assert {(r.provider_message_id, r.status) for r in reports} == {
        (first, "delivered"), (second, "undelivered")}
    assert backend.pull_delivery_reports() == []


def test_pull_from_an_unreachable_tencent_is_temporary() -> None:
    with pytest.raises(ProviderTemporaryError):
        TencentBackend(alias="tencent", **_options()).pull_delivery_reports()


# --- through the outbox's receipt paths --------------------------------------------------


@pytest.fixture
def tencent_settings(fake_tencent) -> Iterator[None]:
    config = {"BACKENDS": {
        "default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
        "tencent": {"BACKEND": "sms_service.backends.tencent.TencentBackend",
                    "OPTIONS": _options(fake_tencent)},
    }}
    with override_settings(SMS_SERVICE=config):
        yield


def _accepted(app, serial: str):
    return Message.objects.create(
        app=app, phone="+8618612345678", body="【Demo】您的验证码是******",
        backend="tencent", provider="tencent", provider_message_id=serial,
        status=MessageStatus.ACCEPTED, sent_at=timezone.now(),
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("tencent_settings")
def test_pulled_receipts_settle_messages(app, fake_tencent) -> None:
    serial = TencentBackend(alias="tencent", **_options(fake_tencent)).send(sms()).provider_message_id
    message = _accepted(app, serial)
    fake_tencent.report(serial)

    assert tasks.pull_delivery_receipts() == {"applied": 1}

    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


@pytest.mark.django_db
@pytest.mark.usefixtures("tencent_settings")
def test_callback_through_the_webhook_answers_tencents_shape(app, client) -> None:
    message = _accepted(app, "2028:42")
    body = [{"sid": "2028:42", "report_status": "FAIL", "errmsg": "MK:0001", "description": "空号"}]
    response = client.post(f"/sms_service/receipts/tencent?token={TOKEN}",
                           data=json.dumps(body), content_type="application/json")

    assert response.status_code == 200
    assert response.json()["result"] == 0
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.UNDELIVERED, "MK:0001")
    forged = client.post("/sms_service/receipts/tencent?token=nope",
                         data=json.dumps(body), content_type="application/json")
    assert forged.status_code == 403


@pytest.mark.django_db
@pytest.mark.usefixtures("tencent_settings")
def test_status_poll_asks_by_phone_number(app, fake_tencent) -> None:
    serial = TencentBackend(alias="tencent", **_options(fake_tencent)).send(sms()).provider_message_id
    message = _accepted(app, serial)
    fake_tencent.report(serial, "FAIL", "MK:0004")
    Message.objects.filter(pk=message.pk).update(
        updated_at=message.updated_at - timedelta(minutes=10))

    assert receipts.poll_statuses() == {"polled": 1, "changed": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.UNDELIVERED
