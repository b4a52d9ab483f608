"""The outbox: commit a message, enqueue it after commit, deliver it once.

Status lifecycle::

    queued -> sending -> accepted -> delivered | undelivered
                      -> delivered            (providers that are final at once)
                      -> failed               (provider refused the call)
                      -> unknown              (the call may have reached the provider)
    sending -> queued                         (temporary error, retry scheduled;
                                               a claim abandoned before the call)
    unknown -> queued                         (the provider says it has no such
                                               message: sent again)

``call_started_at`` is set just before the provider is called, under the claim
(see :mod:`sms_service.services.recovery`).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .. import signals
from ..adapter import get_adapter
from ..backends import get_backend
from ..backends.base import BaseSmsBackend, OutgoingMessage, SendResult
from ..conf import app_settings
from ..crypto import decrypt_message
from ..exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SendCancelled,
    SmsServiceConfigurationError,
)
from ..models import App, Message, MessageEvent, MessageStatus
from . import circuit, provider_templates, taskqueue
from .lifecycle import transition
from .receipts import apply_held_receipts, status_callback_url

logger = logging.getLogger(__name__)


def route(*, app: App, phone: str, channel: str, kind: str) -> list[str]:
    """The backend aliases for a message, best first (the adapter's
    ``get_backend_aliases``); every alias must be configured in ``BACKENDS``.
    A message is sent through the first."""
    aliases = list(get_adapter().get_backend_aliases(app=app, phone=phone, channel=channel,
                                                     kind=kind))
    if not aliases:
        raise SmsServiceConfigurationError(
            "The adapter's get_backend_aliases() returned no backend alias."
        )
    unknown = [alias for alias in aliases if alias not in app_settings.BACKENDS]
    if unknown:
        raise SmsServiceConfigurationError(
            f'The adapter routes to {unknown[0]!r}, which SMS_SERVICE["BACKENDS"] lacks.'
        )
    return aliases


def enqueue(message: Message) -> None:
    """Dispatch after the surrounding transaction commits (never for a rollback)."""
    if app_settings.ASYNC:
        task = taskqueue.get("deliver_message")
        transaction.on_commit(partial(_send_task, task, message.pk))
    else:
        transaction.on_commit(partial(dispatch_now, message.pk))
    transaction.on_commit(
        partial(signals.message_queued.send_robust, sender=Message, message=message)
    )


def _send_task(task: Any, message_id: int) -> None:
    try:
        task.delay(message_id)
    except Exception:
        # The broker is down: the row stays queued and redispatch_stuck() sends it
        # once the broker is back. The caller's request has already succeeded.
        logger.exception("could not enqueue message %s; it will be redispatched", message_id)


def start_call(message: Message) -> bool:
    """Record that the provider is about to be called; False when this run's
    claim was released meanwhile (it must not call the provider)."""
    now = timezone.now()
    started = Message.objects.filter(
        pk=message.pk, status=MessageStatus.SENDING, attempts=message.attempts,
        call_started_at__isnull=True,
    ).update(call_started_at=now)
    if started:
        message.call_started_at = now
    return bool(started)


def deliver(*, message_id: int) -> str:
    """Send one queued message through its backend. Safe to call more than once.

    Raises :class:`ProviderTemporaryError` after putting the message back in the
    queue when a retry may help (the Celery task retries with backoff).
    """
    now = timezone.now()
    claimed = Message.objects.filter(pk=message_id, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENDING, attempts=F("attempts") + 1, updated_at=now, next_attempt_at=None,
        call_started_at=None,
    )
    if not claimed:
        return "skipped"
    message = Message.objects.select_related("app").get(pk=message_id)
    MessageEvent.objects.record(message, f"attempt {message.attempts}", status=MessageStatus.SENDING)
    aliases = _failover_route(message)
    last_error: ProviderTemporaryError | ProviderRejectedError | None = None
    for position, alias in enumerate(aliases):
        remaining = position < len(aliases) - 1
        if not circuit.allow(alias):
            # Skipped without a call: nothing can have been sent through it.
            MessageEvent.objects.record(message, f"{alias}: circuit open, skipped", backend=alias)
            last_error = ProviderTemporaryError(f"the circuit of backend {alias!r} is open")
            continue
        if alias != message.backend:
            Message.objects.filter(pk=message.pk).update(backend=alias)
            message.backend = alias
        backend = get_backend(alias)
        MessageEvent.objects.record(message, f"sending through {alias} ({backend.provider_name})",
                     status=MessageStatus.SENDING, backend=alias, provider=backend.provider_name)
        try:
            outgoing = _outgoing(message, backend)
            # Once per claim, just before the first provider call.
            if message.call_started_at is None and not start_call(message):
                return "skipped"  # this claim was abandoned and given to another run
            result = backend.send(outgoing)
        except SendCancelled as exc:
            transition(message, MessageStatus.FAILED, description=f"cancelled before sending: {exc}",
                       error_code="cancelled", error_message=str(exc), payload=None)
            return MessageStatus.FAILED
        except ProviderTemporaryError as exc:
            circuit.record_failure(alias)
            MessageEvent.objects.record(message, f"{alias} failed, nothing sent: {exc}", backend=alias)
            last_error = exc
            continue
        except ProviderRejectedError as exc:
            if remaining and exc.context.get("provider_fault"):
                # The provider's own refusal (account, template, signature):
                # the next provider may well send it.
                MessageEvent.objects.record(message, f"{alias} refused, trying the next: {exc}",
                             backend=alias)
                last_error = exc
                continue
            _fail(message, exc)
            return MessageStatus.FAILED
        except ProviderOutcomeUnknownError as exc:
            # The provider may have sent it: never resent, here or elsewhere.
            transition(message, MessageStatus.UNKNOWN, description=f"outcome unknown ({alias}): {exc}",
                       error_message=str(exc))
            return MessageStatus.UNKNOWN
        circuit.record_success(alias)
        _handle_success(message, backend.provider_name, result)
        return message.status
    if isinstance(last_error, ProviderRejectedError):
        _fail(message, last_error)
        return MessageStatus.FAILED
    assert last_error is not None  # the route has at least one alias, and each failed
    if _handle_temporary(message, last_error):
        raise last_error
    return MessageStatus.FAILED


def _failover_route(message: Message) -> list[str]:
    """The aliases to try, in order: the message's route when its backend is on
    it (every attempt starts from the best), else the backend alone."""
    try:
        aliases = route(app=message.app, phone=message.phone, channel=message.channel,
                        kind=message.kind)
    except SmsServiceConfigurationError:
        logger.exception("no route for message %s; using its backend", message.pk)
        return [message.backend]
    return aliases if message.backend in aliases else [message.backend]


def _fail(message: Message, exc: ProviderRejectedError) -> None:
    transition(message, MessageStatus.FAILED, description=f"provider refused: {exc}",
               error_code=str(exc.context.get("provider_code", ""))[:64],
               error_message=str(exc), payload=None)


def _outgoing(message: Message, backend: BaseSmsBackend | None = None) -> OutgoingMessage:
    if message.payload is not None:
        text, values = decrypt_message(message.payload)
    else:
        text, values = message.body, {}
    digits = text if message.channel == "voice" else ""
    template_id, sign_name = "", ""
    params: tuple[tuple[str, str], ...] = ()
    if backend is not None and backend.uses_templates:
        # The provider sends its own registered template, filled with the values.
        mapping = provider_templates.find(
            app=message.app, version=message.template_version, alias=backend.alias,
            channel=message.channel,
        )
        template_id, params = provider_templates.fill(
            mapping=mapping, values=values, alias=backend.alias
        )
        sign_name = message.signature.text if message.signature else ""
    return OutgoingMessage(
        message_id=message.pk,
        app_id=message.app.app_id,
        to=message.phone,
        channel=message.channel,
        body=_voice_text(text) if message.channel == "voice" else text,
        digits=digits,
        created=message.created_at,
        status_callback=_status_callback(message),
        template_id=template_id,
        template_params=params,
        sign_name=sign_name,
    )


def _voice_text(digits: str) -> str:
    # A voice call reads the digits only, spaced so they are read one by one.
    return " ".join(digits)


def _status_callback(message: Message) -> str:
    return status_callback_url(message)


def _handle_success(message: Message, provider: str, result: SendResult) -> None:
    now = timezone.now()
    status = MessageStatus.DELIVERED if result.status == MessageStatus.DELIVERED else MessageStatus.ACCEPTED
    fields = {"provider": provider, "provider_message_id": result.provider_message_id,
              "sent_at": now, "payload": None}
    if status == MessageStatus.DELIVERED:
        # Record acceptance first so billing sees the same path as a receipt; both
        # or neither (a worker killed in between would leave it awaiting a
        # receipt that a final-at-once provider never sends).
        with transaction.atomic():
            transition(message, MessageStatus.ACCEPTED, description=f"accepted by {provider}",
                       **fields)
            transition(message, MessageStatus.DELIVERED,
                       description=f"{provider} reports delivered")
    elif transition(message, MessageStatus.ACCEPTED, description=f"accepted by {provider}", **fields):
        # Receipts the provider posted before the id above was stored.
        apply_held_receipts(message=message)


def _handle_temporary(message: Message, exc: ProviderTemporaryError) -> bool:
    """Re-queue with a backoff delay; returns False when out of attempts (failed)."""
    if message.attempts > app_settings.MAX_RETRIES:
        transition(message, MessageStatus.FAILED, description=f"gave up after {message.attempts} attempts: {exc}",
                   error_message=str(exc), payload=None)
        return False
    delay = retry_delay(message.attempts)
    transition(message, MessageStatus.QUEUED, description=f"temporary error, retry in {delay}s: {exc}",
               error_message=str(exc), next_attempt_at=timezone.now() + timedelta(seconds=delay),
               call_started_at=None)
    exc.retry_after = delay
    return True


def retry_delay(attempt: int) -> int:
    """Exponential backoff with full jitter, capped (attempt 1 -> up to 2 s)."""
    cap = app_settings.RETRY_BACKOFF_MAX
    return max(1, int(random.uniform(0, min(cap, 2**attempt))))


def dispatch_now(message_id: int) -> None:
    if app_settings.ASYNC:
        _send_task(taskqueue.get("deliver_message"), message_id)
    else:
        try:
            deliver(message_id=message_id)
        except ProviderTemporaryError:
            pass  # rescheduled by deliver(); picked up on the next pass
