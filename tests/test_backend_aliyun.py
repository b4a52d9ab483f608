"""AliyunBackend on Aliyun's official SDK against a fake Aliyun API on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory, override_settings

from sms_service.backends import get_backend
from sms_service.backends.aliyun import CHINA, ERROR_CODES, AliyunBackend, aliyun_number
from sms_service.backends.base import OutgoingMessage
from sms_service.exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SmsServiceConfigurationError,
)

from .fake_aliyun import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun
from .fake_provider import free_port_refusing, outgoing, running

TOKEN = "receipt-secret"


def _options(fake: FakeAliyun | None = None, **overrides: Any) -> dict[str, Any]:
    host = fake.host if fake else f"127.0.0.1:{free_port_refusing()}"
    options: dict[str, Any] = {
        "ACCESS_KEY_ID": ACCESS_KEY_ID,
        "ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
        "SIGN_NAME": "Demo",
        "ENDPOINT": host,
        "VOICE_ENDPOINT": host,
        "VOICE_SHOW_NUMBER": "057188880000",
        "PROTOCOL": "http",
        "TIMEOUT": (2, 5),
        "RECEIPT_TOKEN": TOKEN,
    }
    options.update(overrides)
    return {key: value for key, value in options.items() if value is not None}


@pytest.fixture
def fake_aliyun() -> Iterator[FakeAliyun]:
    with running(FakeAliyun()) as fake:
        yield fake


@pytest.fixture
def make_backend(fake_aliyun: FakeAliyun) -> Callable[..., AliyunBackend]:
    def make(**overrides: Any) -> AliyunBackend:
        return AliyunBackend(alias="aliyun", **_options(fake_aliyun, **overrides))

    return make


def sms(**fields: Any) -> OutgoingMessage:
    fields.setdefault("template_id", "SMS_154950909")
    return outgoing(**fields)


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ACCESS_KEY_ID", "ACCESS_KEY_SECRET"])
def test_missing_credential_names_the_key(key: str) -> None:
    with pytest.raises(SmsServiceConfigurationError, match=key):
        AliyunBackend(alias="aliyun", **_options(**{key: None}))


def test_get_backend_builds_aliyun_from_settings(fake_aliyun) -> None:
    config = {"BACKENDS": {"cn": {"BACKEND": "sms_service.backends.aliyun.AliyunBackend",
                                  "OPTIONS": _options(fake_aliyun)}}}
    with override_settings(SMS_SERVICE=config):
        backend = get_backend("cn")
    assert isinstance(backend, AliyunBackend) and backend.alias == "cn"
    assert backend.uses_templates


@pytest.mark.parametrize(
    ("e164", "spelled"),
    [("+8618612345678", "18612345678"), ("+85261234567", "85261234567"),
     ("+14155550100", "14155550100")],
)
def test_numbers_are_spelled_the_aliyun_way(e164: str, spelled: str) -> None:
    assert aliyun_number(e164) == spelled


# --- sending ---------------------------------------------------------------------------


def test_sms_is_sent_with_the_template_and_its_parameters(make_backend, fake_aliyun) -> None:
    result = make_backend().send(sms(sign_name="Shop"))

    (call,) = fake_aliyun.calls_to("SendSms")
    assert call.params["PhoneNumbers"] == "18612345678"
    assert call.params["SignName"] == "Shop"  # the message's signature wins
    assert call.params["TemplateCode"] == "SMS_154950909"
    assert json.loads(call.params["TemplateParam"]) == {"code": "123456", "ttl": "10"}
    assert call.params["OutId"] == "7"
    assert result.status == "accepted"
    assert result.provider_message_id in fake_aliyun.sent
    # The SDK signs with the configured key pair (ACS3-HMAC-SHA256).
    assert call.headers["Authorization"].startswith("ACS3-HMAC-SHA256 Credential=" + ACCESS_KEY_ID)


def test_sign_name_option_is_the_fallback(make_backend, fake_aliyun) -> None:
    make_backend().send(sms())
    assert fake_aliyun.calls_to("SendSms")[0].params["SignName"] == "Demo"


def test_without_a_template_code_nothing_is_sent(make_backend, fake_aliyun) -> None:
    with pytest.raises(ProviderRejectedError, match="template") as info:
        make_backend().send(sms(template_id=""))
    assert info.value.context["provider_fault"] is True
    assert fake_aliyun.calls == []


def test_voice_code_is_a_tts_call(make_backend, fake_aliyun) -> None:
    result = make_backend().send(sms(channel="voice", digits="123456",
                                     template_id="TTS_10001", template_params=(("code", "123456"),)))

    (call,) = fake_aliyun.calls_to("SingleCallByTts")
    assert call.params["CalledNumber"] == "18612345678"
    assert call.params["CalledShowNumber"] == "057188880000"
    assert call.params["TtsCode"] == "TTS_10001"
    assert json.loads(call.params["TtsParam"]) == {"code": "123456"}
    assert result.provider_message_id in fake_aliyun.sent


def test_voice_needs_a_show_number(make_backend, fake_aliyun) -> None:
    backend = make_backend(VOICE_SHOW_NUMBER=None)
    with pytest.raises(SmsServiceConfigurationError, match="VOICE_SHOW_NUMBER"):
        backend.send(sms(channel="voice", digits="123456"))
    assert fake_aliyun.calls == []


# --- error classes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "provider_fault"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", ProviderRejectedError, False),
        ("isv.MOBILE_NUMBER_ILLEGAL", ProviderRejectedError, False),
        ("isv.SMS_SIGNATURE_ILLEGAL", ProviderRejectedError, True),
        ("isv.AMOUNT_NOT_ENOUGH", ProviderRejectedError, True),
        ("isp.SYSTEM_ERROR", ProviderTemporaryError, True),
        ("isp.GATEWAY_ERROR", ProviderOutcomeUnknownError, False),
        ("isv.SOMETHING_NEW", ProviderRejectedError, False),
    ],
)
def test_error_codes_map_with_their_reason(make_backend, fake_aliyun, code, error,
                                           provider_fault) -> None:
    fake_aliyun.inject("error", code=code)
    with pytest.raises(error) as info:
        make_backend().send(sms())
    assert info.value.context["provider_code"] == code
    assert info.value.context["provider_fault"] is provider_fault
    if code in ERROR_CODES:
        assert ERROR_CODES[code].reason in str(info.value)
    assert fake_aliyun.sent == {}


def test_every_code_has_a_reason() -> None:
    assert all(outcome.reason for outcome in ERROR_CODES.values())


def test_throttling_is_temporary(make_backend, fake_aliyun) -> None:
    fake_aliyun.inject("throttle")
    with pytest.raises(ProviderTemporaryError) as info:
        make_backend().send(sms())
    assert info.value.context["provider_code"] == "Throttling.User"


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(503, "ServiceUnavailable", ProviderTemporaryError),
     (502, "BadGateway", ProviderTemporaryError),
     (500, "InternalError", ProviderOutcomeUnknownError),
     (504, "GatewayTimeout", ProviderOutcomeUnknownError)],
)
def test_5xx(make_backend, fake_aliyun, status, code, error) -> None:
    fake_aliyun.inject("status", status=status, code=code)
    with pytest.raises(error) as info:
        make_backend().send(sms())
    assert info.value.context["http_status"] == status


def test_bad_credentials_are_a_provider_refusal(make_backend, fake_aliyun) -> None:
    with pytest.raises(ProviderRejectedError) as info:
        make_backend(ACCESS_KEY_ID="LTAI-other").send(sms())
    assert info.value.context["provider_code"] == "InvalidAccessKeyId.NotFound"
    assert info.value.context["provider_fault"] is True


def test_connection_refused_is_temporary() -> None:
    backend = AliyunBackend(alias="aliyun", **_options())
    with pytest.raises(ProviderTemporaryError, match="cannot connect"):
        backend.send(sms())


def test_read_timeout_is_unknown_and_aliyun_did_send(make_backend, fake_aliyun) -> None:
    fake_aliyun.inject("delay", seconds=30)  # woken at teardown
    with pytest.raises(ProviderOutcomeUnknownError, match="did not answer"):
        make_backend(TIMEOUT=(2, 0.3)).send(sms())
    assert len(fake_aliyun.sent) == 1  # it would reach the handset: never resend


@pytest.mark.parametrize("kind", ["close", "reset", "malformed"])
def test_dropped_or_unreadable_reply_is_unknown(make_backend, fake_aliyun, kind) -> None:
    fake_aliyun.inject(kind)
    with pytest.raises(ProviderOutcomeUnknownError):
        make_backend().send(sms())


def test_the_sdk_never_repeats_a_send(make_backend, fake_aliyun) -> None:
    fake_aliyun.inject("status", status=503, code="ServiceUnavailable")
    with pytest.raises(ProviderTemporaryError):
        make_backend().send(sms())
    assert len(fake_aliyun.calls_to("SendSms")) == 1


# --- receipts --------------------------------------------------------------------------


def push(body: Any, *, token: str | None = TOKEN):
    path = "/sms_service/receipts/aliyun" + (f"?token={token}" if token is not None else "")
    return RequestFactory().post(path, data=json.dumps(body), content_type="application/json")


def test_sms_report_push_is_parsed(make_backend) -> None:
    reports = make_backend().parse_delivery_reports(push([
        {"phone_number": "18612345678", "send_time": "2025-01-02 11:12:13",
         "report_time": "2025-01-02 11:12:20", "success": True, "err_code": "DELIVERED",
         "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "123^0", "out_id": "7"},
        {"phone_number": "18612345679", "success": False, "err_code": "MK:0001",
         "err_msg": "空号", "biz_id": "124^0"},
    ]))
    assert [(r.provider_message_id, r.status, r.error_code) for r in reports] == [
        ("123^0", "delivered", ""), ("124^0", "undelivered", "MK:0001")]
    assert "phone_number" not in reports[0].raw  # numbers stay out of the event log


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_push_without_the_secret_is_refused(make_backend, token) -> None:
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(push([], token=token))


def test_receipts_are_refused_when_no_secret_is_configured(make_backend) -> None:
    with pytest.raises(PermissionDenied):
        make_backend(RECEIPT_TOKEN=None).parse_delivery_reports(push([], token=""))


def test_poll_reports_the_delivery(make_backend, fake_aliyun) -> None:
    backend = make_backend()
    message = sms()
    sent = backend.send(message)
    now = datetime.now(UTC)
    assert backend.poll_message_status(sent.provider_message_id, to=message.to, sent_at=now).status == "accepted"

    fake_aliyun.set_status(sent.provider_message_id, 3)
    report = backend.poll_message_status(sent.provider_message_id, to=message.to, sent_at=now)
    assert report.status == "delivered"
    fake_aliyun.set_status(sent.provider_message_id, 2, "MK:0004")
    report = backend.poll_message_status(sent.provider_message_id, to=message.to, sent_at=now)
    assert (report.status, report.error_code) == ("undelivered", "MK:0004")
    query = fake_aliyun.calls_to("QuerySendDetails")[-1].params
    assert query["PhoneNumber"] == "18612345678"
    assert query["SendDate"] == now.astimezone(CHINA).strftime("%Y%m%d")


def test_poll_needs_number_and_day(make_backend, fake_aliyun) -> None:
    assert make_backend().poll_message_status("123^0", to="", sent_at=None) is None
    assert fake_aliyun.calls == []


def test_poll_of_an_unreachable_aliyun_is_temporary() -> None:
    backend = AliyunBackend(alias="aliyun", **_options())
    with pytest.raises(ProviderTemporaryError):
        backend.poll_message_status("123^0", to="+8618612345678", sent_at=datetime.now(UTC))


def test_a_fault_affects_one_request_only(make_backend, fake_aliyun) -> None:
    fake_aliyun.inject("status", status=503)
    backend = make_backend()
    with pytest.raises(ProviderTemporaryError):
        backend.send(sms())
    assert backend.send(replace(sms(), message_id=8)).status == "accepted"
