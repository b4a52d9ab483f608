"""Outbound webhooks: signed JSON events posted to an app's own HTTP endpoints.

:func:`emit` runs in the signal receivers (:mod:`sms_service.receivers`): it
stores one :class:`~sms_service.models.WebhookDelivery` per interested webhook
and hands its id to Celery after the surrounding transaction commits, so a send
never waits for a receiver. :func:`attempt` posts one delivery; a failure is
retried with exponential backoff up to ``WEBHOOK_MAX_ATTEMPTS``.

Every request carries ``X-SMS-Signature: t=<unix seconds>,v1=<hex>``, where
``hex = HMAC-SHA256(secret, "<t>." + raw body)``; :func:`verify_signature` is
the receiver's check (also usable outside Django, it needs only the stdlib).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import __version__, caching
from ..conf import app_settings
from ..models import App, Webhook, WebhookDelivery, WebhookDeliveryStatus
from . import taskqueue

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-SMS-Signature"
EVENT_HEADER = "X-SMS-Event"
DELIVERY_HEADER = "X-SMS-Delivery"

#: Longest response body kept in the delivery log.
_MAX_ERROR = 500


# --- signing -----------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(secret=secret, timestamp=timestamp, body=body)}"


def verify_signature(
    *, secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, fields.get("v1", ""))


# --- emitting ----------------------------------------------------------------------


def _subscriptions_key(app_pk: int) -> str:
    return f"sms_service:webhooks:{app_pk}"


def subscriptions(app_pk: int) -> list[tuple[int, list[str]]]:
    """``(webhook pk, events)`` of the app's active webhooks (no events: all).

    Read on every event (every verified code), so kept in the caches like the
    app itself; saving or deleting a webhook drops the entry (see
    :mod:`sms_service.receivers`)."""
    return caching.read_through(
        _subscriptions_key(app_pk),
        lambda: [(pk, list(events or [])) for pk, events in
                 Webhook.objects.filter(app_id=app_pk, is_active=True)
                 .order_by("pk").values_list("pk", "events")],
        300,
    )


def forget_subscriptions(app_pk: int) -> None:
    caching.forget(_subscriptions_key(app_pk))


def emit(*, app: App | int, event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Queue ``event`` for every active webhook of ``app`` that wants it.

    The body is ``{"id", "event", "created_at", "app_id", "data"}``. Deliveries
    are handed to Celery after commit (never for a rolled-back transaction).
    """
    app_pk = app if isinstance(app, int) else app.pk
    hooks = [pk for pk, events in subscriptions(app_pk) if not events or event in events]
    if not hooks:
        return []
    app_id = app.app_id if isinstance(app, App) else (
        App.objects.filter(pk=app_pk).values_list("app_id", flat=True).first()
    )
    payload = {
        "id": str(uuid.uuid4()),
        "event": event,
        "created_at": timezone.now().isoformat(),
        "app_id": app_id,
        "data": data,
    }
    deliveries = [
        WebhookDelivery.objects.create(webhook_id=hook, event=event, payload=payload)
        for hook in hooks
    ]
    for delivery in deliveries:
        transaction.on_commit(partial(enqueue, delivery.pk))
    return deliveries


def enqueue(delivery_id: int, countdown: float | None = None) -> None:
    """Hand a delivery to Celery; a broker outage leaves it for :func:`redispatch`."""
    try:
        taskqueue.get("deliver_webhook").apply_async((delivery_id,), countdown=countdown)
    except Exception:
        logger.exception("could not enqueue webhook delivery %s; it will be redispatched",
                         delivery_id)


# --- delivering --------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: the signed body goes to the configured URL only."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from the base, capped."""
    base = app_settings.WEBHOOK_RETRY_BACKOFF
    return min(base * 2 ** max(attempts - 1, 0), app_settings.WEBHOOK_RETRY_BACKOFF_MAX)


def attempt(*, delivery_id: int) -> float | None:
    """Post one delivery. Returns the countdown of the next try, or None when it
    succeeded, gave up, or is not due (already delivered or given up)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .select_related("webhook")
            .filter(pk=delivery_id, status__in=[WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.RETRYING])
            .first()
        )
        if delivery is None:
            return None
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        status, error = _post(delivery, body)
        now = timezone.now()
        delivery.attempts += 1
        delivery.response_status = status
        delivery.last_error = error[:_MAX_ERROR]
        countdown = None
        if status is not None and 200 <= status < 300:
            delivery.status = WebhookDeliveryStatus.SUCCEEDED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif delivery.attempts >= app_settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status = WebhookDeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            countdown = backoff(delivery.attempts)
            delivery.status = WebhookDeliveryStatus.RETRYING
            delivery.next_attempt_at = now + timedelta(seconds=countdown)
        delivery.save()
    return countdown


def _post(delivery: WebhookDelivery, body: bytes) -> tuple[int | None, str]:
    request = urllib.request.Request(
        delivery.webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"django-sms-service/{__version__} (webhook)",
            SIGNATURE_HEADER: signature_header(secret=delivery.webhook.secret, body=body),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.payload.get("id", ""),
        },
    )
    try:
        with _opener.open(request, timeout=app_settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(_MAX_ERROR).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:  # refused, timeout, DNS, bad URL
        return None, f"{type(exc).__name__}: {exc}"


def resend(*, delivery: WebhookDelivery) -> None:
    """Send a delivery again (admin action): a fresh round of attempts, same body."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDeliveryStatus.PENDING, attempts=0, next_attempt_at=None
    )
    transaction.on_commit(partial(enqueue, delivery.pk))


def redispatch(*, now: Any = None, limit: int = 500) -> int:
    """Periodic: re-enqueue deliveries whose task a broker outage lost."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=app_settings.WEBHOOK_RETRY_BACKOFF_MAX)
    due = list(
        WebhookDelivery.objects.filter(
            Q(status=WebhookDeliveryStatus.PENDING, created_at__lt=stale)
            | Q(status=WebhookDeliveryStatus.RETRYING, next_attempt_at__lt=now - timedelta(minutes=5))
        ).values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        enqueue(pk)
    return len(due)
