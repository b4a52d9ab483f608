"""The message state machine: every status change goes through :func:`transition`.

Status lifecycle (see :mod:`sms_service.services.outbox` for who moves what)::

    queued -> sending -> accepted -> delivered | undelivered
                      -> delivered            (providers that are final at once)
                      -> failed               (provider refused the call)
                      -> unknown              (the call may have reached the provider)
    sending -> queued                         (temporary error, retry scheduled;
                                               a claim abandoned before the call)
    unknown -> queued                         (the provider says it has no such
                                               message: sent again)

A change is a conditional UPDATE on the old status, recorded in the message's
events, settled by billing in the same transaction and announced by the
``delivery_status_changed`` signal after it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..models import FINAL_STATUSES, Message, MessageEvent, MessageStatus
from . import billing

#: Allowed transitions; anything else is ignored (receipts out of order, replays).
_TRANSITIONS: dict[str, frozenset[str]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.SENDING, MessageStatus.FAILED}),
    MessageStatus.SENDING: frozenset({MessageStatus.QUEUED, MessageStatus.ACCEPTED, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.UNKNOWN}),
    MessageStatus.ACCEPTED: frozenset({MessageStatus.DELIVERED, MessageStatus.UNDELIVERED}),
    MessageStatus.UNKNOWN: frozenset({MessageStatus.ACCEPTED, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.QUEUED}),
}


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
        MessageEvent.objects.record(message, description or f"{old_status} → {new_status}", status=new_status)
        billing.on_status_change(message=message, old_status=old_status, new_status=new_status)
    signals.delivery_status_changed.send_robust(
        sender=Message, message=message, old_status=old_status, new_status=new_status
    )
    return True
