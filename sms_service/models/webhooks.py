"""Outbound webhooks: per-app endpoints and the log of every delivery."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .app import App


class WebhookEvent(models.TextChoices):
    MESSAGE_ACCEPTED = "message.accepted", _("Message accepted by the provider")
    MESSAGE_DELIVERED = "message.delivered", _("Message delivered")
    MESSAGE_FAILED = "message.failed", _("Message failed")
    CODE_VERIFIED = "code.verified", _("Code verified")
    BALANCE_LOW = "balance.low", _("Balance low")
    CONTENT_APPROVED = "content.approved", _("Signature or template approved")
    CONTENT_REJECTED = "content.rejected", _("Signature or template rejected")


def generate_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Webhook(models.Model):
    """An HTTP endpoint of an app that hears about its events, signed with ``secret``."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(
        _("signing secret"),
        max_length=100,
        default=generate_webhook_secret,
        help_text=_("Signs every request (HMAC-SHA256); the receiver checks it."),
    )
    events = models.JSONField(
        _("events"),
        default=list,
        blank=True,
        help_text=_("The events sent to this URL. None chosen: every event."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        ordering = ["app", "pk"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event: str) -> bool:
        return self.is_active and (not self.events or event in self.events)


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    RETRYING = "retrying", _("Failed, will retry")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Gave up")


class WebhookDelivery(models.Model):
    """One event for one webhook: its JSON body and every attempt's outcome."""

    webhook = models.ForeignKey(
        Webhook, verbose_name=_("webhook"), on_delete=models.CASCADE,
        related_name="deliveries",
    )
    event = models.CharField(_("event"), max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField(_("body"))
    status = models.CharField(
        _("status"), max_length=10, choices=WebhookDeliveryStatus.choices,
        default=WebhookDeliveryStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    response_status = models.PositiveIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"], name="sms_whd_status")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook.url}"
