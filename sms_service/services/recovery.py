"""Recovery of messages a dead worker or an ambiguous provider reply left behind.

A worker claims a message (``queued -> sending``), then records the start of the
provider call (``call_started_at``) in a conditional UPDATE that only its own
claim can make, and only then calls the provider. So:

* a ``sending`` row without ``call_started_at`` never reached the provider: once
  its claim is older than ``STUCK_CLAIMED_AFTER_SECONDS`` it goes back to
  ``queued`` and is sent again at once. If the worker was only slow, its own
  ``start_call`` then fails and it sends nothing: one provider call either way;
* a ``sending`` row with ``call_started_at`` may have reached the provider: it
  becomes ``unknown`` (:func:`redispatch_stuck`);
* an ``unknown`` verification code is not left to wait for a receipt that may
  never come: the provider is asked whether it has the message (backends with
  ``can_find_sent``; Twilio lists messages by number and time). Found: it is
  ``accepted`` like any sent message. Not found: it is sent again. Either way
  the hold made at the request is charged once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..backends import get_backend
from ..conf import app_settings
from ..exceptions import ProviderError, SmsServiceConfigurationError
from ..models import Message, MessageEvent, MessageKind, MessageStatus
from . import outbox
from .lifecycle import transition

logger = logging.getLogger(__name__)

#: Unknown codes looked up per pass (each lookup is one provider request).
RESOLVE_BATCH_SIZE = 100


def release_abandoned_claims(*, now: datetime) -> list[int]:
    """Put claims older than ``STUCK_CLAIMED_AFTER_SECONDS`` whose provider call
    never started back in the queue; returns their ids (to dispatch)."""
    cutoff = now - timedelta(seconds=app_settings.STUCK_CLAIMED_AFTER_SECONDS)
    released = []
    for message in Message.objects.abandoned_claims(cutoff)[:1000]:
        with transaction.atomic():
            changed = Message.objects.filter(
                pk=message.pk, status=MessageStatus.SENDING, attempts=message.attempts,
                call_started_at__isnull=True,
            ).update(status=MessageStatus.QUEUED, updated_at=now)
            if changed:
                MessageEvent.objects.record(
                    message, "claimed but never handed to the provider: sending again",
                    status=MessageStatus.QUEUED,
                )
        if changed:
            released.append(message.pk)
            signals.delivery_status_changed.send_robust(
                sender=Message, message=message, old_status=MessageStatus.SENDING, new_status=MessageStatus.QUEUED
            )
    return released


def resolve_unknown_codes(*, now: datetime) -> list[int]:
    """Ask providers about ``unknown`` verification codes whose call started
    ``RESOLVE_UNKNOWN_AFTER_SECONDS`` ago or more and that could still be used.
    Returns the ids put back in the queue (to dispatch)."""
    started_before = now - timedelta(seconds=app_settings.RESOLVE_UNKNOWN_AFTER_SECONDS)
    # A code older than the longest TTL is dead: sending it again helps nobody.
    created_after = now - timedelta(minutes=app_settings.CODE_MAX_TTL_MINUTES)
    candidates = (
        Message.objects.select_related("app")
        .filter(status=MessageStatus.UNKNOWN, kind=MessageKind.VERIFICATION, payload__isnull=False,
                call_started_at__lt=started_before, created_at__gt=created_after)
        .order_by("call_started_at")[:RESOLVE_BATCH_SIZE]
    )
    resend = []
    for message in candidates:
        if resolve_unknown(message) == MessageStatus.QUEUED:
            resend.append(message.pk)
    return resend


def resolve_unknown(message: Message) -> str:
    """Settle one ``unknown`` message by asking its provider. Returns the new
    status, or ``"unknown"`` when the provider cannot tell (yet)."""
    try:
        backend = get_backend(message.backend)
    except SmsServiceConfigurationError:
        logger.exception("message %s: its backend is not configured", message.pk)
        return MessageStatus.UNKNOWN
    if not backend.can_find_sent:
        return MessageStatus.UNKNOWN
    since = message.call_started_at or message.created_at
    try:
        result = backend.find_sent(outbox._outgoing(message), since=since)
    except ProviderError as exc:
        logger.warning("message %s: cannot ask %s about it: %s",
                       message.pk, backend.provider_name, exc)
        return MessageStatus.UNKNOWN
    if result is not None:
        MessageEvent.objects.record(message, f"{backend.provider_name} has it: {result.provider_message_id}")
        outbox._handle_success(message, backend.provider_name, result)
        return message.status
    if transition(message, MessageStatus.QUEUED, call_started_at=None,
                         description=f"{backend.provider_name} has no such message: sending again"):
        return MessageStatus.QUEUED
    return message.status


def redispatch_stuck() -> dict[str, int]:
    """Re-enqueue messages stuck in ``queued`` and claims abandoned before the
    provider call; mark rows whose call started and never reported back
    ``unknown`` (they may have reached the provider: never resend blindly), then
    ask the provider about unknown verification codes (sent again only when it
    has no such message), and wake the delivery runs that queued messages
    have waited for too long (:func:`outbox.wake_waiting`). ``requeued``
    counts every message sent again."""
    now = timezone.now()
    queued_cutoff = now - timedelta(seconds=app_settings.STUCK_QUEUED_AFTER_SECONDS)
    sending_cutoff = now - timedelta(seconds=app_settings.STUCK_SENDING_AFTER_SECONDS)
    released = release_abandoned_claims(now=now)
    stuck = list(Message.objects.stuck_queued(queued_cutoff).values_list("pk", flat=True)[:1000])
    # Touch them first, in one statement, so the next pass does not send them again.
    Message.objects.filter(pk__in=stuck, status=MessageStatus.QUEUED).update(updated_at=now)
    for message_id in released + stuck:
        outbox.dispatch_now(message_id)
    abandoned = 0
    for message in Message.objects.stuck_sending(sending_cutoff)[:1000]:
        if transition(message, MessageStatus.UNKNOWN, description="worker never reported back"):
            abandoned += 1
    resent = resolve_unknown_codes(now=now)
    for message_id in resent:
        outbox.dispatch_now(message_id)
    outbox.wake_waiting(now=now)
    return {"requeued": len(released) + len(stuck) + len(resent), "unknown": abandoned}
