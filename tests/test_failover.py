"""Routing and failover: ROUTES through the adapter, the next provider when one
fails the call, circuit breakers per backend, never a resend after an unknown
outcome, one charge per message. Real HTTP to the fake Aliyun and Tencent Cloud."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from sms_service.adapter import get_adapter
from sms_service.models import (
    LedgerEntry,
    LedgerKind,
    Message,
    MessageStatus,
    ProviderTemplate,
)
from sms_service.services import circuit, outbox, receipts

from . import test_backend_aliyun, test_backend_tencent
from .billing_support import funded_app, set_price
from .fake_aliyun import FakeAliyun
from .fake_provider import free_port_refusing, running
from .fake_tencent import FakeTencent
from .test_provider_templates import NUMBER, signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_aliyun() -> Iterator[FakeAliyun]:
    with running(FakeAliyun()) as fake:
        yield fake


@pytest.fixture
def fake_tencent() -> Iterator[FakeTencent]:
    with running(FakeTencent()) as fake:
        yield fake


def routes_config(fake_aliyun, fake_tencent, *, aliyun_down: bool = False,
                  breaker=None) -> dict:
    aliyun = test_backend_aliyun._options(fake_aliyun, TIMEOUT=(2, 0.5))
    if aliyun_down:
        aliyun["ENDPOINT"] = f"127.0.0.1:{free_port_refusing()}"
    return {
        "BACKENDS": {
            "default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"},
            "aliyun": {"BACKEND": "sms_service.backends.aliyun.AliyunBackend",
                       "OPTIONS": aliyun},
            "tencent": {"BACKEND": "sms_service.backends.tencent.TencentBackend",
                        "OPTIONS": test_backend_tencent._options(fake_tencent)},
        },
        "ROUTES": [{"region": "CN", "channel": "sms", "backends": ["aliyun", "tencent"]}],
        "CIRCUIT_BREAKER": breaker or {"FAILURES": 3, "WINDOW_SECONDS": 60,
                                       "COOL_DOWN_SECONDS": 30},
        "MAX_RETRIES": 3,
        "DEFAULT_UNIT_PRICES": {"sms": "0", "voice": "0"},
    }


@pytest.fixture
def cn_app(lc):
    app = funded_app("10")
    lc.app = signed(app)
    set_price("0.05")
    for alias, template_id in (("aliyun", "SMS_100001"), ("tencent", "449739")):
        ProviderTemplate.objects.create(backend=alias, provider_template_id=template_id,
                                        parameters=["code", "ttl"])
    return app


def send(lc, number: str = NUMBER):
    response = lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": number})
    assert response.status_code == 200, response.content
    return Message.objects.filter(phone=number).latest("pk")


def test_routes_pick_the_aliases_by_region_channel_and_kind(cn_app) -> None:
    config = {"BACKENDS": {alias: {"BACKEND": "sms_service.backends.dummy.DummyBackend"}
                           for alias in ("default", "aliyun", "tencent", "twilio", "calls")},
              "ROUTES": [{"region": ["CN", "HK"], "channel": "sms",
                          "backends": ["aliyun", "tencent"]},
                         {"region": "*", "channel": "voice", "backends": ["calls"]},
                         {"kind": "marketing", "backends": ["tencent"]},
                         {"backends": ["twilio"]}]}
    adapter = get_adapter()
    with override_settings(SMS_SERVICE=config):
        def aliases(phone, channel="sms", kind="verification"):
            return adapter.get_backend_aliases(app=cn_app, phone=phone, channel=channel,
                                               kind=kind)
        assert aliases(NUMBER) == ["aliyun", "tencent"]
        assert aliases("+85261234567") == ["aliyun", "tencent"]
        assert aliases(NUMBER, channel="voice") == ["calls"]
        assert aliases("+14155550100", kind="marketing") == ["tencent"]
        assert aliases("+14155550100") == ["twilio"]


def test_aliyun_down_tencent_delivers_charged_once(lc, cn_app, fake_aliyun, fake_tencent) -> None:
    with override_settings(SMS_SERVICE=routes_config(fake_aliyun, fake_tencent,
                                                     aliyun_down=True)):
        message = send(lc)

    message.refresh_from_db()
    assert message.status == MessageStatus.ACCEPTED
    assert (message.backend, message.provider) == ("tencent", "tencent")
    (call,) = fake_tencent.calls_to("SendSms")
    assert call.params["TemplateId"] == "449739"
    events = [e.description for e in message.events.all()]
    assert any(e.startswith("sending through aliyun") for e in events)
    assert any(e.startswith("aliyun failed, nothing sent") for e in events)
    assert any(e.startswith("sending through tencent") for e in events)
    # The receipt settles it; one hold, one charge, whatever the attempts.
    fake_tencent.report(message.provider_message_id)
    with override_settings(SMS_SERVICE=routes_config(fake_aliyun, fake_tencent)):
        receipts.pull_receipts()
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    entries = LedgerEntry.objects.filter(message=message)
    assert entries.filter(kind=LedgerKind.HOLD).count() == 1
    assert entries.filter(kind=LedgerKind.CHARGE).count() == 1
    cn_app.refresh_from_db()
    assert cn_app.balance == Decimal("10") - message.cost


def test_an_unknown_outcome_is_never_sent_elsewhere(lc, cn_app, fake_aliyun, fake_tencent) -> None:
    fake_aliyun.inject("delay", seconds=30)
    with override_settings(SMS_SERVICE=routes_config(fake_aliyun, fake_tencent)):
        message = send(lc)

    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
    assert len(fake_aliyun.sent) == 1  # Aliyun has it
    assert fake_tencent.calls == []


def test_a_refusal_of_the_message_is_not_retried_elsewhere(lc, cn_app, fake_aliyun,
                                                           fake_tencent) -> None:
    fake_aliyun.inject("error", code="isv.BLACK_LIST")
    with override_settings(SMS_SERVICE=routes_config(fake_aliyun, fake_tencent)):
        message = send(lc)

    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "isv.BLACK_LIST")
    assert fake_tencent.calls == []


def test_a_refusal_by_the_provider_goes_to_the_next(lc, cn_app, fake_aliyun, fake_tencent) -> None:
    fake_aliyun.inject("error", code="isv.AMOUNT_NOT_ENOUGH")
    with override_settings(SMS_SERVICE=routes_config(fake_aliyun, fake_tencent)):
        message = send(lc)

    message.refresh_from_db()
    assert (message.status, message.provider) == (MessageStatus.ACCEPTED, "tencent")


def test_the_circuit_opens_after_a_burst_and_recovers(lc, cn_app, fake_aliyun,
                                                      fake_tencent) -> None:
    config = routes_config(fake_aliyun, fake_tencent,
                           breaker={"FAILURES": 3, "WINDOW_SECONDS": 60, "COOL_DOWN_SECONDS": 30})
    start = timezone.now()
    with override_settings(SMS_SERVICE=config), time_machine.travel(start, tick=False) as clock:
        for i in range(3):
            fake_aliyun.inject("status", status=503, code="ServiceUnavailable")
            send(lc, f"+861861234{i:04d}")
        assert circuit.state("aliyun") == circuit.OPEN
        calls = len(fake_aliyun.calls)

        # Open: Aliyun is skipped without a call, Tencent sends.
        message = send(lc, "+8618612349999")
        message.refresh_from_db()
        assert message.provider == "tencent"
        assert len(fake_aliyun.calls) == calls
        assert "aliyun: circuit open, skipped" in [e.description for e in message.events.all()]

        # After the cool-down one probe goes to Aliyun; its success closes the circuit.
        clock.shift(31)
        assert circuit.state("aliyun") == circuit.HALF_OPEN
        message = send(lc, "+8618612348888")
        message.refresh_from_db()
        assert message.provider == "aliyun"
        assert circuit.state("aliyun") == circuit.CLOSED
    assert Message.objects.filter(provider="tencent").count() == 4


def test_a_failed_probe_opens_the_circuit_again(cn_app, fake_aliyun, fake_tencent) -> None:
    config = routes_config(fake_aliyun, fake_tencent,
                           breaker={"FAILURES": 1, "WINDOW_SECONDS": 60, "COOL_DOWN_SECONDS": 10})
    with override_settings(SMS_SERVICE=config), \
            time_machine.travel(timezone.now(), tick=False) as clock:
        assert circuit.record_failure("aliyun") == circuit.OPEN
        clock.shift(11)
        assert circuit.allow("aliyun") is True   # the probe
        assert circuit.allow("aliyun") is False  # only one, in any process
        assert circuit.record_failure("aliyun") == circuit.OPEN
        assert circuit.state("aliyun") == circuit.OPEN


def test_when_every_provider_fails_the_message_waits_for_a_retry(
        lc, cn_app, fake_aliyun, fake_tencent) -> None:
    fake_aliyun.inject("status", status=503, code="ServiceUnavailable")
    fake_tencent.inject("status", status=502)
    with override_settings(SMS_SERVICE=routes_config(fake_aliyun, fake_tencent)):
        message = send(lc)
        message.refresh_from_db()
        assert message.status == MessageStatus.QUEUED and message.next_attempt_at is not None
        assert message.payload is not None  # kept for the retry
        assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED
    message.refresh_from_db()
    assert message.provider == "aliyun"  # the retry starts from the best again
    assert json.loads(fake_aliyun.calls_to("SendSms")[-1].params["TemplateParam"])["code"]
