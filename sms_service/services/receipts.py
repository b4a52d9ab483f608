"""Delivery receipts: the callback URL handed to providers and report handling."""

from __future__ import annotations

from django.urls import reverse

from ..conf import app_settings
from ..models import Message


def status_callback_url(message: Message) -> str:
    """Absolute URL of the receipt webhook for the message's backend, or ""."""
    base = app_settings.PUBLIC_BASE_URL.rstrip("/")
    if not base:
        return ""
    return base + reverse("sms_service:delivery-receipt", kwargs={"alias": message.backend})
