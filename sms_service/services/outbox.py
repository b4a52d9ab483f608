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
from ..backends.base import BaseSmsBackend, DeliveryReport, OutgoingMessage, SendResult
from ..conf import app_settings
from ..crypto import decrypt_message
from ..exceptions import (
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SendCancelled,
    SmsServiceConfigurationError,
)
from ..models import FINAL_STATUSES, App, Message, MessageEvent, MessageStatus
from . import billing, circuit, provider_templates, recovery

logger = logging.getLogger(__name__)


#: Allowed transitions; anything else is ignored (receipts out of order, replays).
_TRANSITIONS: dict[str, frozenset[str]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.SENDING, MessageStatus.FAILED}),
    MessageStatus.SENDING: frozenset({MessageStatus.QUEUED, MessageStatus.ACCEPTED, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.UNKNOWN}),
    MessageStatus.ACCEPTED: frozenset({MessageStatus.DELIVERED, MessageStatus.UNDELIVERED}),
    MessageStatus.UNKNOWN: frozenset({MessageStatus.ACCEPTED, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.QUEUED}),
}


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


def record_event(message: Message, description: str, *, status: str = "", **detail: Any) -> None:
    MessageEvent.objects.create(
        message=message, status=status, description=description[:255], detail=detail
    )


def transition(
    message: Message, new_status: str, *, description: str = "", **fields: Any
) -> bool:
    """Move ``message`` to ``new_status`` if its current status allows it.

    The UPDATE is conditional on the old status, so concurrent workers and
    repeated receipts apply each transition exactly once. Returns whether this
    call made the change.
    """
    old_status = message.status
    if new_status not in _TRANSITIONS.get(old_status, frozenset()):
        return False
    now = timezone.now()
    if new_status in FINAL_STATUSES:
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=old_status).update(
            status=new_status, updated_at=now, **fields
        )
        if not changed:
            return False
        for name, value in fields.items():
            setattr(message, name, value)
        message.status = new_status
        record_event(message, description or f"{old_status} → {new_status}", status=new_status)
        billing.on_status_change(message=message, old_status=old_status, new_status=new_status)
    signals.delivery_status_changed.send_robust(
        sender=Message, message=message, old_status=old_status, new_status=new_status
    )
    return True


def enqueue(message: Message) -> None:
    """Dispatch after the surrounding transaction commits (never for a rollback)."""
    if app_settings.ASYNC:
        from ..tasks import deliver_message

        transaction.on_commit(partial(_send_task, deliver_message, message.pk))
    else:
        transaction.on_commit(partial(_dispatch_now, message.pk))
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
    record_event(message, f"attempt {message.attempts}", status=MessageStatus.SENDING)
    aliases = _failover_route(message)
    last_error: ProviderTemporaryError | ProviderRejectedError | None = None
    for position, alias in enumerate(aliases):
        remaining = position < len(aliases) - 1
        if not circuit.allow(alias):
            # Skipped without a call: nothing can have been sent through it.
            record_event(message, f"{alias}: circuit open, skipped", backend=alias)
            last_error = ProviderTemporaryError(f"the circuit of backend {alias!r} is open")
            continue
        if alias != message.backend:
            Message.objects.filter(pk=message.pk).update(backend=alias)
            message.backend = alias
        backend = get_backend(alias)
        record_event(message, f"sending through {alias} ({backend.provider_name})",
                     status=MessageStatus.SENDING, backend=alias, provider=backend.provider_name)
        try:
            outgoing = _outgoing(message, backend)
            # Once per claim, just before the first provider call.
            if message.call_started_at is None and not recovery.start_call(message):
                return "skipped"  # this claim was abandoned and given to another run
            result = backend.send(outgoing)
        except SendCancelled as exc:
            transition(message, MessageStatus.FAILED, description=f"cancelled before sending: {exc}",
                       error_code="cancelled", error_message=str(exc), payload=None)
            return MessageStatus.FAILED
        except ProviderTemporaryError as exc:
            circuit.record_failure(alias)
            record_event(message, f"{alias} failed, nothing sent: {exc}", backend=alias)
            last_error = exc
            continue
        except ProviderRejectedError as exc:
            if remaining and exc.context.get("provider_fault"):
                # The provider's own refusal (account, template, signature):
                # the next provider may well send it.
                record_event(message, f"{alias} refused, trying the next: {exc}",
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
    template_id, params, sign_name = "", (), ""
    if backend is not None and backend.uses_templates:
        # The provider sends its own registered template, filled with the values.
        mapping = provider_templates.find(
            app=message.app, version=message.template_version, alias=backend.alias,
            channel=message.channel,
        )
        template_id, params = provider_templates.fill(
            mapping=mapping, values=values, alias=backend.alias
        )
        sign_name = message.signature.text if message.signature_id else ""
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
    from .receipts import status_callback_url

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
        from .receipts import apply_held_receipts

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


def apply_report(report: DeliveryReport, *, provider: str) -> Message | None:
    """Apply a delivery receipt; replays and out-of-order receipts change nothing."""
    message = (
        Message.objects.select_related("app")
        .filter(provider_message_id=report.provider_message_id, provider=provider)
        .first()
    )
    if message is None:
        return None
    # After acceptance a provider's "failed" is a failed delivery (billed as one).
    target = {MessageStatus.DELIVERED: MessageStatus.DELIVERED, MessageStatus.UNDELIVERED: MessageStatus.UNDELIVERED,
              MessageStatus.FAILED: MessageStatus.UNDELIVERED, MessageStatus.ACCEPTED: MessageStatus.ACCEPTED}.get(report.status)
    if target is None or message.status == target:
        record_event(message, f"receipt {report.status} (no change)", raw=_jsonable(report.raw))
        return message
    if message.status == MessageStatus.SENDING:
        # The receipt beat the worker's own database update: record it; the worker
        # applies acceptance and a later poll/receipt settles the final state.
        record_event(message, f"early receipt {report.status}", raw=_jsonable(report.raw))
        return message
    changed = transition(message, target, description=f"receipt: {report.status}",
                         error_code=report.error_code[:64], error_message=report.error_message)
    if not changed:
        record_event(message, f"receipt {report.status} ignored (status {message.status})",
                     raw=_jsonable(report.raw))
    return message


def _jsonable(raw: Any) -> Any:
    if raw is None or isinstance(raw, (str, int, float, bool, list, dict)):
        return raw
    return str(raw)


def redispatch_stuck() -> dict[str, int]:
    """Re-enqueue messages stuck in ``queued`` and claims abandoned before the
    provider call; mark rows whose call started and never reported back
    ``unknown`` (they may have reached the provider: never resend blindly), then
    ask the provider about unknown verification codes (sent again only when it
    has no such message). ``requeued`` counts every message sent again."""
    now = timezone.now()
    queued_cutoff = now - timedelta(seconds=app_settings.STUCK_QUEUED_AFTER_SECONDS)
    sending_cutoff = now - timedelta(seconds=app_settings.STUCK_SENDING_AFTER_SECONDS)
    released = recovery.release_abandoned_claims(now=now)
    stuck = list(Message.objects.stuck_queued(queued_cutoff).values_list("pk", flat=True)[:1000])
    # Touch them first, in one statement, so the next pass does not send them again.
    Message.objects.filter(pk__in=stuck, status=MessageStatus.QUEUED).update(updated_at=now)
    for message_id in released + stuck:
        _dispatch_now(message_id)
    abandoned = 0
    for message in Message.objects.stuck_sending(sending_cutoff)[:1000]:
        if transition(message, MessageStatus.UNKNOWN, description="worker never reported back"):
            abandoned += 1
    resent = recovery.resolve_unknown_codes(now=now)
    for message_id in resent:
        _dispatch_now(message_id)
    return {"requeued": len(released) + len(stuck) + len(resent), "unknown": abandoned}


def _dispatch_now(message_id: int) -> None:
    if app_settings.ASYNC:
        from ..tasks import deliver_message

        _send_task(deliver_message, message_id)
    else:
        try:
            deliver(message_id=message_id)
        except ProviderTemporaryError:
            pass  # rescheduled by deliver(); picked up on the next pass
