"""TwilioBackend against a fake Twilio API on 127.0.0.1 (real HTTP, no mocks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory, override_settings

import sms_service
from sms_service.backends import get_backend
from sms_service.backends.base import OutgoingMessage
from sms_service.backends.twilio import TwilioBackend
from sms_service.crypto import encrypt
from sms_service.exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SmsServiceConfigurationError,
)
from sms_service.models import Message, MessageStatus
from sms_service.services import outbox, receipts

from .fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, running_fake_twilio

FROM_NUMBER = "+15005550006"
TO_NUMBER = "+8618612345678"
WEBHOOK_PATH = "/sms_service/receipts/twilio"


def _options(fake: FakeTwilio | None = None, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ACCOUNT_SID": ACCOUNT_SID,
        "AUTH_TOKEN": AUTH_TOKEN,
        "FROM_NUMBER": FROM_NUMBER,
        "API_BASE_URL": fake.base_url if fake else "http://127.0.0.1:9",
        # Generous for normal calls; the timeout tests shorten the read timeout.
        "TIMEOUT": (2, 5),
    }
    options.update(overrides)
    return {k: v for k, v in options.items() if v is not None}


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio API on 127.0.0.1, stopped at teardown."""
    with running_fake_twilio() as fake:
        yield fake


@pytest.fixture
def make_backend(fake_twilio: FakeTwilio) -> Iterator[Callable[..., TwilioBackend]]:
    made: list[TwilioBackend] = []

    def make(**overrides: Any) -> TwilioBackend:
        backend = TwilioBackend(alias="twilio", **_options(fake_twilio, **overrides))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def sms(**fields: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": 7,
        "app_id": "app-1",
        "to": TO_NUMBER,
        "channel": "sms",
        "body": "【Demo】Your code is 123456.",
        "created": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    values.update(fields)
    return OutgoingMessage(**values)


def voice(digits: str = "123456", **fields: Any) -> OutgoingMessage:
    fields.setdefault("body", " ".join(digits))
    return sms(channel="voice", digits=digits, **fields)


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ACCOUNT_SID", "AUTH_TOKEN"])
def test_missing_credential_names_the_key(key: str) -> None:
    options = _options()
    del options[key]
    with pytest.raises(SmsServiceConfigurationError) as info:
        TwilioBackend(alias="sms", **options)
    assert f'SMS_SERVICE["BACKENDS"]["sms"]["OPTIONS"]["{key}"]' in str(info.value)


def test_a_sender_is_required() -> None:
    with pytest.raises(SmsServiceConfigurationError, match="FROM_NUMBER"):
        TwilioBackend(alias="sms", **_options(FROM_NUMBER=None))


def test_bad_timeout_names_the_key() -> None:
    with pytest.raises(SmsServiceConfigurationError, match=r'\["TIMEOUT"\]'):
        TwilioBackend(**_options(TIMEOUT="soon"))


def test_single_number_timeout_applies_to_connect_and_read() -> None:
    backend = TwilioBackend(**_options(TIMEOUT=4))
    assert backend.timeout == (4.0, 4.0)
    backend.close()


def test_get_backend_builds_twilio_from_settings(fake_twilio: FakeTwilio) -> None:
    config = {
        "BACKEND": "sms_service.backends.twilio.TwilioBackend",
        "OPTIONS": _options(fake_twilio),
    }
    with override_settings(SMS_SERVICE={"BACKENDS": {"default": config}}):
        backend = get_backend("default")
    assert isinstance(backend, TwilioBackend)
    assert backend.provider_name == "twilio"
    result = backend.send(sms())
    assert result.provider_message_id in fake_twilio.resources
    backend.close()


# --- sending ---------------------------------------------------------------------------


def test_sms_success(make_backend, fake_twilio: FakeTwilio) -> None:
    result = make_backend().send(sms())

    assert result.status == "accepted"
    assert result.provider_message_id.startswith("SM")
    assert result.raw["sid"] == result.provider_message_id
    (request,) = fake_twilio.posts
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form == {
        "To": TO_NUMBER,
        "From": FROM_NUMBER,
        "Body": "【Demo】Your code is 123456.",
    }
    assert request.auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert (
        f"django-sms-service/{sms_service.__version__}" in request.headers["User-Agent"]
    )
    # The reply's numbers and text are not kept in the result.
    assert "to" not in result.raw and "body" not in result.raw


def test_sms_through_a_messaging_service(make_backend, fake_twilio) -> None:
    make_backend(MESSAGING_SERVICE_SID="MG" + "1" * 32).send(sms())

    (request,) = fake_twilio.posts
    assert request.form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in request.form


@pytest.mark.parametrize("factory", [sms, voice], ids=["sms", "voice"])
def test_status_callback_is_passed_when_set(make_backend, fake_twilio, factory) -> None:
    backend = make_backend()
    backend.send(factory())
    backend.send(factory(status_callback="https://sms.example.com/receipts/twilio"))

    without, with_callback = fake_twilio.posts
    assert "StatusCallback" not in without.form
    assert (
        with_callback.form["StatusCallback"]
        == "https://sms.example.com/receipts/twilio"
    )


def test_voice_call_reads_only_the_digits(make_backend, fake_twilio) -> None:
    message = voice("123456", body="Your verification code is 1 2 3 4 5 6")
    result = make_backend(VOICE_LANGUAGE="zh-CN").send(message)

    assert result.provider_message_id.startswith("CA")
    (request,) = fake_twilio.posts
    assert request.path.endswith("/Calls.json")
    assert request.form["To"] == TO_NUMBER
    assert request.form["From"] == FROM_NUMBER
    assert "Body" not in request.form
    twiml = ET.fromstring(request.form["Twiml"])
    assert twiml.tag == "Response"
    says = twiml.findall("Say")
    assert [say.text for say in says] == ["1, 2, 3, 4, 5, 6"] * 2  # read, then repeated
    assert {say.get("language") for say in says} == {"zh-CN"}
    assert "verification" not in request.form["Twiml"]


def test_voice_language_is_xml_escaped(make_backend, fake_twilio) -> None:
    make_backend(VOICE_LANGUAGE='en"><Play>x</Play><Say a="').send(voice())

    twiml = ET.fromstring(fake_twilio.posts[0].form["Twiml"])
    assert twiml.find("Play") is None
    assert twiml.find("Say").get("language") == 'en"><Play>x</Play><Say a="'


@pytest.mark.parametrize("digits", ["", "12a456", "<Play>", "１２３"])
def test_voice_without_plain_digits_is_rejected_unsent(
    make_backend, fake_twilio, digits
) -> None:
    with pytest.raises(ProviderRejectedError):
        make_backend().send(voice(digits))
    assert fake_twilio.requests == []


def test_voice_needs_a_from_number(make_backend, fake_twilio) -> None:
    backend = make_backend(FROM_NUMBER=None, MESSAGING_SERVICE_SID="MG" + "1" * 32)
    with pytest.raises(SmsServiceConfigurationError, match=r'\["FROM_NUMBER"\]'):
        backend.send(voice())
    assert fake_twilio.requests == []


def test_unknown_channel_is_rejected(make_backend, fake_twilio) -> None:
    with pytest.raises(ProviderRejectedError):
        make_backend().send(sms(channel="fax"))
    assert fake_twilio.requests == []


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (504, 20504)])
def test_500_and_504_are_unknown_never_resent(make_backend, fake_twilio, status, code) -> None:
    # Twilio may have created the message before failing: a blind retry could
    # send the code twice.
    fake_twilio.inject("status", status=status, code=code)
    with pytest.raises(ProviderOutcomeUnknownError) as info:
        make_backend().send(sms())
    assert info.value.context["http_status"] == status


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (502, 20500), (503, 20503)])
def test_429_502_503_are_temporary(make_backend, fake_twilio, status, code) -> None:
    fake_twilio.inject("status", status=status, code=code)
    with pytest.raises(ProviderTemporaryError) as info:
        make_backend().send(sms())

    assert not isinstance(
        info.value, (ProviderRejectedError, ProviderOutcomeUnknownError)
    )
    assert info.value.context["http_status"] == status
    assert info.value.context["provider_code"] == str(code)
    assert info.value.context["message_id"] == 7
    assert fake_twilio.resources == {}
    if status == 429:
        assert info.value.retry_after == 1


def test_connection_refused_is_temporary(make_backend) -> None:
    # A bound socket that does not listen refuses connections: nothing was sent.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        backend = make_backend(API_BASE_URL=f"http://127.0.0.1:{port}")
        with pytest.raises(ProviderTemporaryError, match="cannot connect"):
            backend.send(sms())


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux listen backlog")
def test_connect_timeout_is_temporary(make_backend) -> None:
    # A listener whose accept queue is full drops new SYNs, so connecting times
    # out before any byte of the request is sent.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            backend = make_backend(
                API_BASE_URL=f"http://127.0.0.1:{port}", TIMEOUT=(0.3, 5)
            )
            with pytest.raises(ProviderTemporaryError, match="cannot connect"):
                backend.send(sms())
        finally:
            for filler in fillers:
                filler.close()


def test_invalid_number_is_rejected_with_twilio_code(make_backend, fake_twilio) -> None:
    # The fake answers like Twilio for a "To" it cannot parse.
    with pytest.raises(ProviderRejectedError) as info:
        make_backend().send(sms(to="8618612345678"))

    assert info.value.context["provider_code"] == "21211"
    assert info.value.context["http_status"] == 400
    assert "21211" in str(info.value)
    assert info.value.raw["code"] == 21211


def test_injected_400_is_rejected(make_backend, fake_twilio) -> None:
    fake_twilio.inject(
        "status",
        status=400,
        code=21610,
        message="Attempt to send to unsubscribed recipient",
    )
    with pytest.raises(ProviderRejectedError) as info:
        make_backend().send(sms())
    assert info.value.context["provider_code"] == "21610"
    assert "unsubscribed" in info.value.message


def test_bad_credentials_are_rejected(make_backend, fake_twilio) -> None:
    with pytest.raises(ProviderRejectedError) as info:
        make_backend(AUTH_TOKEN="wrong").send(sms())
    assert info.value.context["http_status"] == 401
    assert info.value.context["provider_code"] == "20003"


def test_read_timeout_is_unknown_and_twilio_did_take_it(
    make_backend, fake_twilio
) -> None:
    fake_twilio.inject("delay", seconds=30)  # woken at teardown
    with pytest.raises(ProviderOutcomeUnknownError):
        make_backend(TIMEOUT=(2, 0.5)).send(sms())
    # This is why the outcome is "unknown" and never resent: the message exists.
    assert len(fake_twilio.resources) == 1


@pytest.mark.parametrize("kind", ["close", "reset"])
def test_connection_dropped_after_sending_is_unknown(
    make_backend, fake_twilio, kind
) -> None:
    fake_twilio.inject(kind)
    with pytest.raises(ProviderOutcomeUnknownError):
        make_backend().send(sms())
    assert len(fake_twilio.posts) == 1  # the request did arrive


@pytest.mark.parametrize("kind", ["malformed", "no_sid"])
def test_unreadable_success_reply_is_unknown(make_backend, fake_twilio, kind) -> None:
    fake_twilio.inject(kind)
    with pytest.raises(ProviderOutcomeUnknownError, match="no sid"):
        make_backend().send(sms())


def test_a_fault_affects_one_request_only(make_backend, fake_twilio) -> None:
    fake_twilio.inject("status", status=503)
    backend = make_backend()
    results = backend.send_messages([sms(message_id=1), sms(message_id=2)])
    assert isinstance(results[0], ProviderTemporaryError)
    assert results[1].provider_message_id in fake_twilio.resources


def test_bad_api_base_url_is_a_configuration_error(make_backend) -> None:
    with pytest.raises(SmsServiceConfigurationError, match="API_BASE_URL"):
        make_backend(API_BASE_URL="127.0.0.1:8000").send(sms())


# --- delivery receipts -----------------------------------------------------------------


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm, written out independently of the backend."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    mac = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def receipt_request(
    params: dict[str, str],
    *,
    signature: str | None = None,
    signed_url: str = "http://testserver" + WEBHOOK_PATH,
    path: str = WEBHOOK_PATH,
    **extra: Any,
):
    if signature is None:
        signature = twilio_signature(AUTH_TOKEN, signed_url, params)
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
    return RequestFactory().post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        **headers,
        **extra,
    )


MESSAGE_CALLBACK = {
    "AccountSid": ACCOUNT_SID,
    "MessageSid": "SM" + "a" * 32,
    "SmsSid": "SM" + "a" * 32,
    "MessageStatus": "undelivered",
    "SmsStatus": "undelivered",
    "ErrorCode": "30003",
    "To": TO_NUMBER,
    "From": FROM_NUMBER,
    "ApiVersion": "2010-04-01",
}


def test_signed_message_receipt_is_parsed(make_backend) -> None:
    (report,) = make_backend().parse_delivery_reports(receipt_request(MESSAGE_CALLBACK))

    assert report.provider_message_id == "SM" + "a" * 32
    assert report.status == "undelivered"
    assert report.error_code == "30003"
    # Phone numbers stay out of the event log.
    assert TO_NUMBER not in str(report.raw) and FROM_NUMBER not in str(report.raw)


def test_signed_call_receipt_is_parsed(make_backend) -> None:
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + "b" * 32,
        "CallStatus": "completed",
        "CallDuration": "14",
    }
    (report,) = make_backend().parse_delivery_reports(receipt_request(params))
    assert (report.provider_message_id, report.status) == ("CA" + "b" * 32, "delivered")


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        ("queued", "accepted"),
        ("accepted", "accepted"),
        ("sending", "accepted"),
        ("sent", "accepted"),
        ("delivered", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
        ("something-new", "accepted"),
    ],
)
def test_message_statuses_map(make_backend, twilio_status, expected) -> None:
    params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": twilio_status}
    (report,) = make_backend().parse_delivery_reports(receipt_request(params))
    assert report.status == expected


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        ("completed", "delivered"),
        ("busy", "undelivered"),
        ("no-answer", "undelivered"),
        ("failed", "undelivered"),
        ("canceled", "undelivered"),
        ("ringing", "accepted"),
    ],
)
def test_call_statuses_map(make_backend, twilio_status, expected) -> None:
    params = {"CallSid": "CA" + "c" * 32, "CallStatus": twilio_status}
    (report,) = make_backend().parse_delivery_reports(receipt_request(params))
    assert report.status == expected


def test_missing_signature_is_refused(make_backend) -> None:
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(
            receipt_request(MESSAGE_CALLBACK, signature="")
        )


def test_wrong_signature_is_refused(make_backend) -> None:
    forged = twilio_signature(
        "not-the-token", "http://testserver" + WEBHOOK_PATH, MESSAGE_CALLBACK
    )
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(
            receipt_request(MESSAGE_CALLBACK, signature=forged)
        )


def test_tampered_receipt_is_refused(make_backend) -> None:
    signature = twilio_signature(
        AUTH_TOKEN, "http://testserver" + WEBHOOK_PATH, MESSAGE_CALLBACK
    )
    tampered = {**MESSAGE_CALLBACK, "MessageStatus": "delivered"}
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(
            receipt_request(tampered, signature=signature)
        )


def test_signature_for_another_url_is_refused(make_backend) -> None:
    request = receipt_request(
        MESSAGE_CALLBACK, signed_url="http://testserver/other" + WEBHOOK_PATH
    )
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(request)


def test_query_string_is_part_of_the_signed_url(make_backend) -> None:
    request = receipt_request(
        MESSAGE_CALLBACK,
        path=WEBHOOK_PATH + "?attempt=1",
        signed_url="http://testserver" + WEBHOOK_PATH + "?attempt=1",
    )
    assert len(make_backend().parse_delivery_reports(request)) == 1


def test_webhook_url_base_rebuilds_the_url_behind_a_proxy(make_backend) -> None:
    # Twilio signed the public https URL; Django sees http://testserver.
    public = "https://sms.example.com" + WEBHOOK_PATH
    request = receipt_request(MESSAGE_CALLBACK, signed_url=public)
    with pytest.raises(PermissionDenied):
        make_backend().parse_delivery_reports(request)
    backend = make_backend(WEBHOOK_URL_BASE="https://sms.example.com/")
    assert len(backend.parse_delivery_reports(request)) == 1


def test_default_port_spelling_is_accepted(make_backend) -> None:
    request = receipt_request(
        MESSAGE_CALLBACK, signed_url="https://sms.example.com:443" + WEBHOOK_PATH
    )
    backend = make_backend(WEBHOOK_URL_BASE="https://sms.example.com")
    assert len(backend.parse_delivery_reports(request)) == 1


def test_receipt_without_sid_gives_no_report(make_backend) -> None:
    request = receipt_request({"AccountSid": ACCOUNT_SID})
    assert make_backend().parse_delivery_reports(request) == []


# --- polling ---------------------------------------------------------------------------


def test_poll_message_status(make_backend, fake_twilio) -> None:
    backend = make_backend()
    sid = backend.send(sms()).provider_message_id

    assert backend.poll_status(sid).status == "accepted"  # still "queued" at Twilio
    fake_twilio.set_status(sid, "delivered")
    assert backend.poll_status(sid).status == "delivered"
    fake_twilio.set_status(
        sid, "undelivered", error_code=30003, error_message="Unreachable"
    )
    report = backend.poll_status(sid)
    assert (report.status, report.error_code, report.error_message) == (
        "undelivered",
        "30003",
        "Unreachable",
    )
    assert fake_twilio.requests[-1].path.endswith(f"/Messages/{sid}.json")


def test_poll_call_status(make_backend, fake_twilio) -> None:
    backend = make_backend()
    sid = backend.send(voice()).provider_message_id
    fake_twilio.set_status(sid, "no-answer")

    report = backend.poll_status(sid)
    assert (report.provider_message_id, report.status) == (sid, "undelivered")
    assert fake_twilio.requests[-1].path.endswith(f"/Calls/{sid}.json")


@pytest.mark.parametrize(
    "sid", ["", "locmem-1", "SM123", "SM" + "a" * 32 + "/../x", "XX" + "a" * 32]
)
def test_poll_foreign_sid_returns_none(make_backend, fake_twilio, sid) -> None:
    assert make_backend().poll_status(sid) is None
    assert fake_twilio.requests == []


def test_poll_sid_twilio_does_not_know_is_rejected(make_backend) -> None:
    with pytest.raises(ProviderRejectedError) as info:
        make_backend().poll_status("SM" + "d" * 32)
    assert info.value.context["http_status"] == 404


def test_poll_unreachable_twilio_is_temporary(make_backend) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        backend = make_backend(
            API_BASE_URL=f"http://127.0.0.1:{closed.getsockname()[1]}"
        )
        with pytest.raises(ProviderTemporaryError):
            backend.poll_status("SM" + "d" * 32)


def test_poll_with_a_bad_api_base_url_is_a_configuration_error(make_backend) -> None:
    with pytest.raises(SmsServiceConfigurationError, match="API_BASE_URL"):
        make_backend(API_BASE_URL="localhost").poll_status("SM" + "d" * 32)


# --- end to end through the outbox -----------------------------------------------------


@pytest.fixture
def twilio_settings(fake_twilio: FakeTwilio) -> Iterator[None]:
    config = {
        "BACKENDS": {
            "default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
            "twilio": {
                "BACKEND": "sms_service.backends.twilio.TwilioBackend",
                "OPTIONS": _options(fake_twilio, TIMEOUT=(2, 0.5)),
            },
        },
        "PUBLIC_BASE_URL": "",
        "MAX_RETRIES": 5,
    }
    with override_settings(SMS_SERVICE=config):
        yield


def queued_message(
    app, *, channel: str = "sms", text: str = "【Demo】Your code is 123456."
) -> Message:
    return Message.objects.create(
        app=app,
        phone=TO_NUMBER,
        channel=channel,
        body=text.replace("123456", "******"),
        payload=encrypt(text),
        backend="twilio",
    )


@pytest.mark.usefixtures("twilio_settings")
class TestOutboxWithTwilio:
    def test_accepted(self, app, fake_twilio) -> None:
        message = queued_message(app)

        assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED

        message.refresh_from_db()
        assert message.status == MessageStatus.ACCEPTED
        assert message.provider == "twilio"
        assert message.provider_message_id in fake_twilio.resources
        assert message.payload is None  # the code is wiped once Twilio has it
        (request,) = fake_twilio.posts
        assert request.form["Body"] == "【Demo】Your code is 123456."
        # A second run (a redelivered task) sends nothing.
        assert outbox.deliver(message_id=message.pk) == "skipped"
        assert len(fake_twilio.posts) == 1

    def test_voice_call_reads_the_stored_digits(self, app, fake_twilio) -> None:
        message = queued_message(app, channel="voice", text="123456")

        assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED

        (request,) = fake_twilio.posts
        says = ET.fromstring(request.form["Twiml"]).findall("Say")
        assert [say.text for say in says] == ["1, 2, 3, 4, 5, 6"] * 2

    def test_failed_on_400(self, app, fake_twilio) -> None:
        fake_twilio.inject("status", status=400, code=21211, message="Invalid 'To'")
        message = queued_message(app)

        assert outbox.deliver(message_id=message.pk) == MessageStatus.FAILED

        message.refresh_from_db()
        assert message.status == MessageStatus.FAILED
        assert message.error_code == "21211"
        assert message.payload is None
        assert message.finished_at is not None

    def test_requeued_on_503(self, app, fake_twilio) -> None:
        fake_twilio.inject("status", status=503, code=20503)
        message = queued_message(app)

        with pytest.raises(ProviderTemporaryError):
            outbox.deliver(message_id=message.pk)

        message.refresh_from_db()
        assert message.status == MessageStatus.QUEUED
        assert message.attempts == 1
        assert message.next_attempt_at is not None
        assert message.payload is not None  # kept for the retry

        # The retry goes through once Twilio is back.
        assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED
        assert len(fake_twilio.resources) == 1

    def test_unknown_on_read_timeout(self, app, fake_twilio) -> None:
        fake_twilio.inject("delay", seconds=30)  # woken at teardown
        message = queued_message(app)

        assert outbox.deliver(message_id=message.pk) == MessageStatus.UNKNOWN

        message.refresh_from_db()
        assert message.status == MessageStatus.UNKNOWN
        # Never resent: a second delivery attempt does nothing.
        assert outbox.deliver(message_id=message.pk) == "skipped"
        assert len(fake_twilio.posts) == 1

    def test_receipt_found_by_polling_is_applied(self, app, fake_twilio) -> None:
        message = queued_message(app)
        outbox.deliver(message_id=message.pk)
        message.refresh_from_db()
        fake_twilio.set_status(message.provider_message_id, "delivered")

        backend = get_backend("twilio")
        report = backend.poll_status(message.provider_message_id)
        receipts.apply_report(report, provider=backend.provider_name)

        message.refresh_from_db()
        assert message.status == MessageStatus.DELIVERED
        backend.close()
