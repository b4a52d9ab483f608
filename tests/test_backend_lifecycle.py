"""Backend lifecycle: one instance per alias per process, open/close, connection reuse,
and the pre_send / post_send signals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from sms_service import signals
from sms_service.backends import close_backends, get_backend, locmem
from sms_service.backends.base import BaseSmsBackend, OutgoingMessage, SendResult
from sms_service.crypto import encrypt
from sms_service.delivery import DeliveryStatus
from sms_service.exceptions import ProviderTemporaryError, SendCancelled
from sms_service.models import Message, MessageStatus
from sms_service.services import outbox

from .billing_support import assert_books, funded_app, held_message
from .fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, running_fake_twilio


class CountingBackend(BaseSmsBackend):
    """Counts how often it is opened and closed (a stand-in for a connection pool)."""

    provider_name = "counting"
    built = 0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        type(self).built += 1
        self.opened = 0
        self.closed = 0
        self.is_open = False

    def open(self) -> bool:
        if self.is_open:
            return False
        self.is_open = True
        self.opened += 1
        return True

    def close(self) -> None:
        self.is_open = False
        self.closed += 1

    def build_payload(self, message: OutgoingMessage) -> str:
        assert self.is_open, "sent through a closed backend"
        return message.body

    def post_to_provider(self, message: OutgoingMessage, payload: str) -> str:
        return f"counting-{message.message_id}"

    def parse_response(self, message: OutgoingMessage, payload: Any, response: str) -> SendResult:
        return SendResult(provider_message_id=response, status=DeliveryStatus.ACCEPTED)


COUNTING = {"default": {"BACKEND": f"{__name__}.CountingBackend"}}


def sms(message_id: int = 1) -> OutgoingMessage:
    return OutgoingMessage(message_id=message_id, app_id="app", to="+8618612345678",
                           channel="sms", body="【Demo】hello",
                           created=datetime(2025, 1, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def _fresh_instances() -> Iterator[None]:
    close_backends()
    yield
    close_backends()


def test_one_instance_per_alias_per_process() -> None:
    with override_settings(SMS_SERVICE={"BACKENDS": COUNTING}):
        CountingBackend.built = 0
        first = get_backend()
        assert get_backend("default") is first
        assert CountingBackend.built == 1


def test_a_settings_change_closes_and_replaces_the_instances() -> None:
    with override_settings(SMS_SERVICE={"BACKENDS": COUNTING}):
        before = get_backend()
        before.send(sms())
        with override_settings(SMS_SERVICE={"BACKENDS": COUNTING, "MAX_RETRIES": 1}):
            after = get_backend()
        assert after is not before
        assert (before.opened, before.closed, before.is_open) == (1, 1, False)


def test_options_given_to_get_backend_build_a_private_instance() -> None:
    with override_settings(SMS_SERVICE={"BACKENDS": COUNTING}):
        assert get_backend(EXTRA=1) is not get_backend()


def test_the_shared_instance_stays_open_across_sends() -> None:
    with override_settings(SMS_SERVICE={"BACKENDS": COUNTING}):
        backend = get_backend()
        for i in range(3):
            backend.send(sms(i))
        assert (backend.opened, backend.closed) == (1, 0)


def test_context_manager_and_send_messages_open_and_close() -> None:
    backend = CountingBackend()
    with backend as same:
        assert same is backend and backend.is_open
        backend.send(sms())
    assert (backend.opened, backend.closed) == (1, 1)
    results = backend.send_messages([sms(1), sms(2)])
    assert [r.provider_message_id for r in results] == ["counting-1", "counting-2"]
    assert (backend.opened, backend.closed, backend.is_open) == (2, 2, False)


# --- Twilio: one HTTP session, one connection per batch --------------------------------


@pytest.fixture
def keep_alive_twilio() -> Iterator[FakeTwilio]:
    with running_fake_twilio(keep_alive=True) as fake:
        yield fake


@pytest.mark.django_db
def test_twilio_sends_a_batch_over_one_connection(app, keep_alive_twilio: FakeTwilio) -> None:
    config = {"BACKENDS": {"default": {
        "BACKEND": "sms_service.backends.twilio.TwilioBackend",
        "OPTIONS": {"ACCOUNT_SID": ACCOUNT_SID, "AUTH_TOKEN": AUTH_TOKEN,
                    "FROM_NUMBER": "+15005550006", "API_BASE_URL": keep_alive_twilio.base_url,
                    "TIMEOUT": (2, 5)},
    }}, "ASYNC": False}
    with override_settings(SMS_SERVICE=config):
        messages = [
            Message.objects.create(app=app, phone=f"+86186123456{i:02d}", body="hi",
                                   payload=encrypt("【Demo】hi"), backend="default")
            for i in range(5)
        ]
        for message in messages:
            assert outbox.deliver(message_id=message.pk) == MessageStatus.ACCEPTED
        backend = get_backend()
        assert backend.session is not None
    # The settings change closed the session: its pooled connection is gone.
    assert backend.session is None
    assert len(keep_alive_twilio.posts) == 5
    assert len(keep_alive_twilio.connections) == 1


@pytest.mark.django_db
def test_a_fresh_session_per_message_would_open_one_connection_each(
    app, keep_alive_twilio: FakeTwilio
) -> None:
    """The counter-example: closing between messages costs a connection each."""
    from sms_service.backends.twilio import TwilioBackend

    backend = TwilioBackend(ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN=AUTH_TOKEN,
                            FROM_NUMBER="+15005550006", API_BASE_URL=keep_alive_twilio.base_url)
    for i in range(3):
        with backend:
            backend.send(sms(i))
    assert len(keep_alive_twilio.connections) == 3


# --- pre_send / post_send -------------------------------------------------------------


@pytest.fixture
def receivers() -> Iterator[list[Any]]:
    connected: list[Any] = []
    yield connected
    for signal, receiver in connected:
        signal.disconnect(receiver)


def connect(receivers: list[Any], signal: Any, receiver: Any) -> None:
    signal.connect(receiver)
    receivers.append((signal, receiver))


@pytest.mark.django_db
def test_pre_send_can_cancel_a_message_which_is_then_not_billed(receivers) -> None:
    app = funded_app("10")

    def refuse(*, message: OutgoingMessage, **kwargs: Any) -> None:
        raise SendCancelled("number on the project's block list")

    connect(receivers, signals.pre_send, refuse)
    message = held_message(app, cost="2")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.FAILED
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "cancelled")
    assert "block list" in message.error_message
    assert locmem.outbox == []
    app.refresh_from_db()
    assert app.balance == Decimal("10")
    assert_books(app)


@pytest.mark.django_db
def test_a_crashing_pre_send_receiver_is_a_temporary_failure(app, receivers, settings) -> None:
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "ASYNC": False}

    def crash(**kwargs: Any) -> None:
        raise RuntimeError("bug in a receiver")

    connect(receivers, signals.pre_send, crash)
    message = Message.objects.create(app=app, phone="+8618612345678", body="hi")
    with pytest.raises(ProviderTemporaryError):
        outbox.deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.next_attempt_at is not None
    assert locmem.outbox == []


@pytest.mark.django_db
def test_post_send_gets_the_result_and_its_errors_do_not_undo_the_send(app, receivers) -> None:
    seen: list[tuple[str, str, DeliveryStatus]] = []

    def record(*, sender: type, backend: BaseSmsBackend, message: OutgoingMessage,
               result: SendResult, **kwargs: Any) -> None:
        seen.append((backend.alias, message.to, result.status))
        raise RuntimeError("receiver bug")

    connect(receivers, signals.post_send, record)
    message = Message.objects.create(app=app, phone="+8618612345678", body="hi")
    assert outbox.deliver(message_id=message.pk) == MessageStatus.DELIVERED
    assert seen == [("default", "+8618612345678", DeliveryStatus.DELIVERED)]
    assert len(locmem.outbox) == 1
