"""Delivery statuses: one enum for send results, delivery receipts and the outbox.

A leaf module (it imports only Django), so backends, which never touch the
database, use the same values as the ``Message.status`` column.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DeliveryStatus(models.TextChoices):
    """Where a message is. Backends return ``ACCEPTED`` or ``DELIVERED`` from a send
    and ``ACCEPTED``, ``DELIVERED``, ``UNDELIVERED`` or ``FAILED`` in receipts; the
    outbox adds the states of its own pipeline."""

    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    ACCEPTED = "accepted", _("Accepted, awaiting receipt")
    DELIVERED = "delivered", _("Delivered")
    UNDELIVERED = "undelivered", _("Delivery failed")
    FAILED = "failed", _("Call failed")
    UNKNOWN = "unknown", _("Outcome unknown")


#: Statuses after which the provider will not be called again.
FINAL_STATUSES = frozenset(
    {DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED}
)
