"""Owner notifications: the one path for review decisions and balance alerts.

Callers schedule :func:`notify_owner` with ``transaction.on_commit`` so that a
rolled-back change is never announced. Delivery is the adapter's
:meth:`~sms_service.adapter.DefaultSmsAdapter.notify_owner` (email by default);
a failure there is logged and never undoes the change.
"""

from __future__ import annotations

import logging
from typing import Any

from ..adapter import get_adapter
from ..models import App

logger = logging.getLogger(__name__)

#: The events an adapter's ``notify_owner`` receives.
CONTENT_APPROVED = "content_approved"
CONTENT_REJECTED = "content_rejected"
BALANCE_LOW = "balance_low"


def notify_owner(
    *, app: App, subject: str, body: str, event: str, context: dict[str, Any] | None = None
) -> bool:
    """Hand one notification to the adapter. Returns False when it raised."""
    try:
        get_adapter().notify_owner(
            app=app, subject=subject, body=body, event=event, context=context or {}
        )
    except Exception:
        logger.exception("could not notify the owner of app %s about %s", app.app_id, event)
        return False
    return True
