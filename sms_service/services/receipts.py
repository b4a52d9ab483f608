"""Delivery receipts: the callback URL handed to providers, receipts from webhooks
and status polls, and receipts that arrive before their message is known.

Every report goes through :func:`apply_report`, whose conditional status
UPDATE makes replays and out-of-order receipts harmless; billing settles in the
same transaction (:func:`billing.on_status_change`).

A receipt can beat the worker's own database update (the provider posts it
while the worker is still between "provider accepted" and "provider id stored").
Such receipts are kept as :class:`UnmatchedReceipt` rows and applied when the id
is stored (:func:`apply_held_receipts`, called by the outbox) or by the periodic
:func:`reconcile_unmatched` for the remaining race window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from ..backends import get_backend
from ..backends.base import BaseSmsBackend, DeliveryReport
from ..conf import app_settings
from ..delivery import DeliveryStatus
from ..exceptions import ProviderError, SmsServiceConfigurationError
from ..models import Message, MessageEvent, MessageStatus, UnmatchedReceipt
from .lifecycle import transition

logger = logging.getLogger(__name__)



def status_callback_url(message: Message) -> str:
    """Absolute URL of the receipt webhook for the message's backend, or ""."""
    base = app_settings.PUBLIC_BASE_URL.rstrip("/")
    if not base:
        return ""
    return base + reverse(
        "sms_service:delivery-receipt", kwargs={"alias": message.backend}
    )


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
        MessageEvent.objects.record(message, f"receipt {report.status} (no change)", raw=_jsonable(report.raw))
        return message
    if message.status == MessageStatus.SENDING:
        # The receipt beat the worker's own database update: record it; the worker
        # applies acceptance and a later poll/receipt settles the final state.
        MessageEvent.objects.record(message, f"early receipt {report.status}", raw=_jsonable(report.raw))
        return message
    changed = transition(message, target, description=f"receipt: {report.status}",
                         error_code=report.error_code[:64], error_message=report.error_message)
    if not changed:
        MessageEvent.objects.record(message, f"receipt {report.status} ignored (status {message.status})",
                     raw=_jsonable(report.raw))
    return message


def _jsonable(raw: Any) -> Any:
    if raw is None or isinstance(raw, (str, int, float, bool, list, dict)):
        return raw
    return str(raw)


@dataclass(frozen=True)
class ReceiptOutcome:
    applied: int = 0
    unmatched: int = 0


def apply_reports(
    *, reports: list[DeliveryReport], backend: BaseSmsBackend
) -> ReceiptOutcome:
    """Apply reports from ``backend``; unknown ids are kept, never an error."""
    applied = unmatched = 0
    for report in reports:
        if not report.provider_message_id:
            continue
        if apply_report(report, provider=backend.provider_name) is None:
            _keep_unmatched(report, backend=backend)
            unmatched += 1
        else:
            applied += 1
    return ReceiptOutcome(applied=applied, unmatched=unmatched)


def _keep_unmatched(report: DeliveryReport, *, backend: BaseSmsBackend) -> None:
    """Keep the receipt once: a replay (same provider, id and status) is dropped
    by the unique constraint, so replaying a signed receipt stores nothing."""
    UnmatchedReceipt.objects.bulk_create([UnmatchedReceipt(
        backend=backend.alias[:32],
        provider=backend.provider_name[:32],
        provider_message_id=report.provider_message_id[:128],
        status=report.status[:16],
        error_code=(report.error_code or "")[:64],
        error_message=report.error_message or "",
        raw=_jsonable(report.raw),
    )], ignore_conflicts=True)


def apply_held_receipts(*, message: Message) -> int:
    """Apply receipts that arrived before ``message``'s provider id was stored.

    Each kept receipt is claimed with a conditional UPDATE, so concurrent callers
    (the worker and the reconcile task) apply it once.
    """
    if not message.provider_message_id:
        return 0
    waiting = UnmatchedReceipt.objects.filter(
        provider=message.provider,
        provider_message_id=message.provider_message_id,
        matched_at__isnull=True,
    ).order_by("received_at", "pk")
    applied = 0
    for receipt in waiting:
        claimed = UnmatchedReceipt.objects.filter(
            pk=receipt.pk, matched_at__isnull=True
        )
        if not claimed.update(matched_at=timezone.now(), message=message):
            continue
        apply_report(_as_report(receipt), provider=receipt.provider)
        applied += 1
    return applied


def _as_report(receipt: UnmatchedReceipt) -> DeliveryReport:
    return DeliveryReport(
        provider_message_id=receipt.provider_message_id,
        status=DeliveryStatus(receipt.status),
        error_code=receipt.error_code,
        error_message=receipt.error_message,
        raw=receipt.raw,
    )


def reconcile_unmatched(
    *, now: datetime | None = None, limit: int = 1000
) -> dict[str, int]:
    """Periodic: apply kept receipts whose message now has its provider id."""
    now = now or timezone.now()
    since = now - timedelta(seconds=app_settings.UNMATCHED_RECEIPT_RETRY_SECONDS)
    open_ids = (
        UnmatchedReceipt.objects.filter(matched_at__isnull=True, received_at__gte=since)
        .values_list("provider", "provider_message_id")
        .distinct()[:limit]
    )
    applied = 0
    for provider, provider_message_id in open_ids:
        message = (
            Message.objects.select_related("app")
            .filter(provider=provider, provider_message_id=provider_message_id)
            .first()
        )
        if message is not None:
            applied += apply_held_receipts(message=message)
    return {"applied": applied}


def poll_statuses(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic: ask providers that support it about messages still awaiting a
    receipt. Only messages younger than the overdue deadline are polled, so rows
    settled by policy are not asked about forever."""
    now = now or timezone.now()
    newest = now - timedelta(seconds=app_settings.POLL_AFTER_SECONDS)
    oldest = now - timedelta(seconds=app_settings.SETTLE_AFTER_SECONDS)
    waiting = Message.objects.filter(
        status__in=(MessageStatus.ACCEPTED, MessageStatus.UNKNOWN),
        updated_at__lt=newest,
        updated_at__gte=oldest,
    ).exclude(provider_message_id="")
    polled = changed = 0
    for alias in waiting.values_list("backend", flat=True).distinct().order_by():
        backend = _pollable_backend(alias)
        if backend is None:
            continue
        rows = (
            waiting.filter(backend=alias).select_related("app").order_by("updated_at")
        )
        for message in rows[: app_settings.POLL_BATCH_SIZE]:
            polled += 1
            changed += _poll_one(backend, message)
    return {"polled": polled, "changed": changed}


def _pollable_backend(alias: str) -> BaseSmsBackend | None:
    try:
        backend = get_backend(alias)
    except SmsServiceConfigurationError:
        logger.warning("status poll: backend alias %r is no longer configured", alias)
        return None
    # Backends that keep the base class's polling methods cannot tell anything.
    if not backend.can_poll():
        return None
    return backend


def _poll_one(backend: BaseSmsBackend, message: Message) -> int:
    try:
        report = backend.poll_message_status(
            message.provider_message_id, to=message.phone, sent_at=message.sent_at
        )
    except ProviderError as exc:
        logger.warning("status poll failed for message %s: %s", message.pk, exc)
        return 0
    if report is None:
        return 0
    before = message.status
    updated = apply_report(report, provider=message.provider)
    return int(updated is not None and updated.status != before)


def pull_receipts() -> dict[str, int]:
    """Periodic: fetch the receipts providers queue for pulling (backends with a
    ``pull_delivery_reports`` method, e.g. Tencent Cloud's PullSmsSendStatus)."""
    pulled = 0
    for alias in app_settings.BACKENDS:
        try:
            backend = get_backend(alias)
        except SmsServiceConfigurationError:
            logger.warning("receipt pull: backend alias %r cannot be built", alias)
            continue
        pull = getattr(backend, "pull_delivery_reports", None)
        if pull is None:
            continue
        try:
            reports = pull()
        except ProviderError as exc:
            logger.warning("receipt pull from %r failed: %s", alias, exc)
            continue
        pulled += apply_reports(reports=reports, backend=backend).applied
    return {"applied": pulled}


def receipt_summary(outcome: ReceiptOutcome) -> dict[str, Any]:
    return {
        "received": outcome.applied + outcome.unmatched,
        "unmatched": outcome.unmatched,
    }
