"""The outbox: one Message row per SMS or voice call, with an append-only event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..delivery import DeliveryStatus
from ..localtime import local_time
from .app import App


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    VOICE = "voice", _("Voice call")


class MessageKind(models.TextChoices):
    VERIFICATION = "verification", _("Verification")
    NOTIFICATION = "notification", _("Notification")
    MARKETING = "marketing", _("Marketing")


#: The status column's values: the enum backends and receipts use too.
MessageStatus = DeliveryStatus


class MessageQuerySet(models.QuerySet):
    def for_app(self, app: App) -> MessageQuerySet:
        return self.filter(app=app)

    def stuck_queued(self, older_than: datetime) -> MessageQuerySet:
        """Queued rows nobody is working on: the broker lost them or was down."""
        return self.filter(
            models.Q(next_attempt_at__isnull=True) | models.Q(next_attempt_at__lt=older_than),
            status=MessageStatus.QUEUED,
            updated_at__lt=older_than,
        )

    def stuck_sending(self, older_than: datetime) -> MessageQuerySet:
        """Rows whose provider call started and never reported back (a worker
        killed mid-call): the provider may have the message."""
        return self.filter(
            status=MessageStatus.SENDING,
            call_started_at__isnull=False,
            updated_at__lt=older_than,
        )

    def abandoned_claims(self, older_than: datetime) -> MessageQuerySet:
        """Rows claimed by a worker that died before calling the provider."""
        return self.filter(
            status=MessageStatus.SENDING,
            call_started_at__isnull=True,
            updated_at__lt=older_than,
        )


class Message(models.Model):
    """An SMS or voice call in the outbox.

    ``body`` is the text as shown to people: for verification messages the code is
    replaced by asterisks. The exact text to send lives only in ``payload``,
    encrypted, and is wiped once the provider has taken the message.
    """

    app = models.ForeignKey(
        App,
        verbose_name=_("app"),
        on_delete=models.CASCADE,
        related_name="messages",
        db_index=False,  # the (app, ...) indexes below lead with it
    )
    phone = models.CharField(_("phone number (E.164)"), max_length=20)
    region = models.CharField(_("region"), max_length=2, blank=True)
    channel = models.CharField(
        _("channel"), max_length=8, choices=Channel.choices, default=Channel.SMS
    )
    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=MessageKind.choices,
        default=MessageKind.VERIFICATION,
    )
    template_version = models.ForeignKey(
        "sms_service.TemplateVersion",
        verbose_name=_("template version"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
    )
    signature = models.ForeignKey(
        "sms_service.Signature",
        verbose_name=_("signature"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
    )
    body = models.TextField(_("text"))
    payload = models.BinaryField(_("encrypted payload"), null=True, editable=False)
    length = models.PositiveIntegerField(_("characters"), default=0)
    segments = models.PositiveSmallIntegerField(_("billed messages"), default=1)
    cost = models.DecimalField(
        _("cost"), max_digits=16, decimal_places=4, default=0
    )
    is_test = models.BooleanField(
        _("test number"), default=False, help_text=_("Never sent, never billed.")
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=MessageStatus.choices,
        default=MessageStatus.QUEUED,
    )
    backend = models.CharField(_("backend alias"), max_length=32, default="default")
    provider = models.CharField(_("provider"), max_length=32, blank=True)
    provider_message_id = models.CharField(
        _("provider message id"), max_length=128, blank=True
    )
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    call_started_at = models.DateTimeField(
        _("provider call started"),
        null=True,
        blank=True,
        help_text=_("Set just before the provider is called. A claimed message without "
                    "it never reached the provider and can be sent again."),
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt"), null=True, blank=True, help_text=_("When the next try is due; empty when no retry is scheduled.")
    )
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    sent_at = models.DateTimeField(_("accepted by provider"), null=True, blank=True)
    finished_at = models.DateTimeField(_("final status at"), null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-created_at"]
        permissions = [("view_full_numbers", _("Can see full phone numbers"))]
        indexes = [
            models.Index(fields=["app", "-created_at"], name="sms_msg_app_created"),
            models.Index(fields=["app", "phone", "-created_at"], name="sms_msg_app_phone"),
            models.Index(fields=["status", "updated_at"], name="sms_msg_status_upd"),
            # Receipts find their message by provider id; rows the provider has
            # not taken yet have none and stay out of the index.
            models.Index(
                fields=["provider_message_id"],
                condition=~models.Q(provider_message_id=""),
                name="sms_msg_provider_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {mask_phone(self.phone)} ({self.status})"

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


class MessageEventManager(models.Manager["MessageEvent"]):
    def record(
        self, message: Message, description: str, *, status: str = "", **detail: Any
    ) -> MessageEvent:
        """Append one line to ``message``'s history (``detail`` must be JSON)."""
        return self.create(
            message=message, status=status, description=description[:255], detail=detail
        )


class MessageEvent(models.Model):
    """Append-only history of a message: status changes, provider replies, receipts."""

    message = models.ForeignKey(
        Message, verbose_name=_("message"), on_delete=models.CASCADE, related_name="events"
    )
    status = models.CharField(_("status"), max_length=16, blank=True)
    description = models.CharField(_("description"), max_length=255)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    created_at = models.DateTimeField(_("at"), default=timezone.now)

    objects = MessageEventManager()

    class Meta:
        verbose_name = _("message event")
        verbose_name_plural = _("message events")
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{local_time(self.created_at, seconds=True)} {self.description}"


#: Permission to see numbers unmasked (exports; everywhere else they are masked).
FULL_NUMBERS_PERMISSION = "sms_service.view_full_numbers"


def mask_phone(phone: str) -> str:
    """``+8618612345678`` -> ``+86186****5678``: enough to tell numbers apart."""
    if len(phone) <= 8:
        return phone[:2] + "*" * max(len(phone) - 2, 0)
    return phone[:-8] + "****" + phone[-4:]
