"""Celery tasks: one-liners over the services, ids only (never codes or texts)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import task_postrun, task_prerun, worker_ready
from django.db import close_old_connections, connection

from .conf import app_settings
from .exceptions import ProviderTemporaryError
from .services import outbox, recovery, taskqueue


@taskqueue.register
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_message(self, message_id: int) -> str:
    """Send a queued message. At most one run sends it (the service claims the row)."""
    try:
        return outbox.deliver(message_id=message_id)
    except ProviderTemporaryError as exc:
        # deliver() put the row back in the queue with its backoff delay.
        raise self.retry(
            exc=exc, countdown=exc.retry_after or 1, max_retries=app_settings.MAX_RETRIES
        ) from exc


@taskqueue.register
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_queued(alias: str) -> int:
    """A delivery run: send a batch of backend ``alias``'s queued messages (one
    task wakes it for many commits; see ``outbox.wake``)."""
    return outbox.deliver_queued(alias=alias)


@shared_task(ignore_result=True)
def redispatch_stuck_messages() -> dict[str, int]:
    """Periodic (every few seconds): re-send rows a broker outage left in
    ``queued`` and claims a dead worker abandoned; settle unknown codes."""
    return recovery.redispatch_stuck()


@worker_ready.connect
def _wake_delivery_runs(sender: Any = None, **kwargs: Any) -> None:
    """A worker that starts wakes the delivery runs of every backend that
    shares them: a run whose task died with a previous worker would otherwise
    hold back the commits of the next few seconds (see ``outbox.wake``)."""
    outbox.wake_every_backend()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender: Any = None, **kwargs: Any) -> None:
    """Around each of this package's tasks, drop database connections that
    failed or outlived CONN_MAX_AGE, as Django does around a request.

    Celery's Django fix-up closes the connection after every task unless
    CELERY_DB_REUSE_MAX is set, and then keeps it without these checks: a
    worker that reuses connections (the example project does) still gets a
    fresh one after a database restart.
    """
    if not getattr(sender, "name", "").startswith("sms_service."):
        return
    if getattr(getattr(sender, "request", None), "is_eager", False) or connection.in_atomic_block:
        return  # run inline, inside the caller's transaction
    close_old_connections()


# --- Billing and delivery receipts ----------------------------------------------


@shared_task(ignore_result=True)
def poll_delivery_statuses() -> dict[str, int]:
    """Periodic: ask providers without webhooks about messages awaiting a receipt."""
    from .services import receipts

    return receipts.poll_statuses()


@shared_task(ignore_result=True)
def pull_delivery_receipts() -> dict[str, int]:
    """Periodic: fetch receipts providers queue for pulling (Tencent Cloud)."""
    from .services import receipts

    return receipts.pull_receipts()


@shared_task(ignore_result=True)
def reconcile_unmatched_receipts() -> dict[str, int]:
    """Periodic: apply receipts that arrived before their provider id was stored."""
    from .services import receipts

    return receipts.reconcile_unmatched()


@shared_task(ignore_result=True)
def settle_overdue_messages() -> dict[str, int]:
    """Periodic: settle messages with no receipt in time (OVERDUE_POLICY)."""
    from .services import billing

    return billing.settle_overdue()


@shared_task(ignore_result=True)
def expire_verification_codes() -> int:
    """Periodic: mark codes past their expiry ``expired``."""
    from .services import codes

    return codes.expire_codes()


@shared_task(ignore_result=True)
def prune_phone_users() -> dict[str, int]:
    """Periodic: drop finished login-failure counts and long-revoked sessions."""
    from .services import users

    return users.prune()


@shared_task(ignore_result=True)
def remove_stale_captchas() -> dict[str, int]:
    """Periodic: delete expired CAPTCHA challenges and validate tokens."""
    from .services import captcha

    return captcha.remove_stale()


# --- Outbound webhooks -------------------------------------------------------------


@taskqueue.register
@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    """Post one webhook delivery; a failure schedules the next try with backoff."""
    from .services import webhooks

    countdown = webhooks.attempt(delivery_id=delivery_id)
    if countdown is not None:
        webhooks.enqueue(delivery_id, countdown=countdown)


@shared_task(ignore_result=True)
def redispatch_webhooks() -> int:
    """Periodic: re-enqueue webhook deliveries a broker outage left behind."""
    from .services import webhooks

    return webhooks.redispatch()
