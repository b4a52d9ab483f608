"""Billing data: unit prices, the append-only ledger and unmatched receipts.

Representation (see also :mod:`sms_service.services.billing`):

* ``App.balance`` is the money the app can still spend. Money taken out of it
  for messages whose bill is not settled yet is "held"; the held total is not a
  column but ``Σ held_change`` over the ledger (so settling a charge writes one
  ledger row and never touches the busy App row).
* Every change of the balance is one :class:`LedgerEntry` written in the same
  transaction, so ``App.balance == Σ amount`` over the app's entries, always.

=========== ========== ============= =================================================
kind        amount     held_change   when
=========== ========== ============= =================================================
top_up      +x         0             an administrator adds money
hold        −x         +x            a message is queued
charge      0          −x            its bill is settled: delivered, undelivered, or
                                     overdue under the "charge" policy
release     +x         −x            the provider refused the call (not billed), or
                                     overdue under the "release" policy
refund      +x         0             an administrator refunds a charged message
adjustment  ±x         0             an audited manual correction
=========== ========== ============= =================================================

The bill is the set of ``charge`` entries. Idempotency is enforced by the
database: one entry per (message, kind), and at most one settlement (charge or
release) per message, so repeated receipts and task retries cannot bill twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .app import App
from .messages import Channel, Message


#: Money columns: Decimal with 4 places, never floats.
class _Money(TypedDict):
    max_digits: int
    decimal_places: int


MONEY: _Money = {"max_digits": 16, "decimal_places": 4}


class Price(models.Model):
    """Unit price of one billed message (SMS segment or voice call) per region."""

    region = models.CharField(
        _("region"),
        max_length=2,
        help_text=_("ISO 3166-1 alpha-2 code of the destination, e.g. CN, US."),
    )
    channel = models.CharField(
        _("channel"), max_length=8, choices=Channel.choices, default=Channel.SMS
    )
    unit_price = models.DecimalField(
        _("unit price"),
        **MONEY,
        help_text=_("Per SMS segment, or per voice call."),
    )
    note = models.CharField(_("note"), max_length=128, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("price")
        verbose_name_plural = _("prices")
        ordering = ["region", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "channel"], name="sms_price_region_channel"
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__gte=0), name="sms_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region} {self.get_channel_display()}: {self.unit_price}"

    def save(self, *args, **kwargs) -> None:
        self.region = self.region.upper()
        super().save(*args, **kwargs)


class LedgerKind(models.TextChoices):
    TOP_UP = "top_up", _("Top-up")
    HOLD = "hold", _("Hold")
    CHARGE = "charge", _("Charge")
    RELEASE = "release", _("Release")
    REFUND = "refund", _("Refund")
    ADJUSTMENT = "adjustment", _("Adjustment")


#: Entries that settle a hold; a message has at most one of them.
SETTLEMENT_KINDS = (LedgerKind.CHARGE, LedgerKind.RELEASE)


class LedgerQuerySet(models.QuerySet):
    def for_app(self, app: App) -> LedgerQuerySet:
        return self.filter(app=app)

    def totals(self) -> dict[str, Decimal]:
        """``{"balance": Σ amount, "held": Σ held_change}`` over the entries."""
        sums = self.aggregate(
            balance=models.Sum("amount"), held=models.Sum("held_change")
        )
        return {key: value or Decimal(0) for key, value in sums.items()}


class LedgerEntry(models.Model):
    """One movement of an app's money. Rows are never updated or deleted."""

    app = models.ForeignKey(
        App,
        verbose_name=_("app"),
        on_delete=models.CASCADE,
        related_name="ledger",
        db_index=False,  # sms_ledger_app_created leads with it
    )
    kind = models.CharField(_("kind"), max_length=16, choices=LedgerKind.choices)
    amount = models.DecimalField(
        _("balance change"), **MONEY, help_text=_("Signed change of the balance.")
    )
    held_change = models.DecimalField(
        _("held change"),
        **MONEY,
        default=0,
        help_text=_("Signed change of the amount held for unsettled messages."),
    )
    message = models.ForeignKey(
        Message,
        verbose_name=_("message"),
        null=True,
        blank=True,
        # Keep the money history if old messages are ever purged.
        on_delete=models.SET_NULL,
        related_name="ledger_entries",
        # Keeps its own index: when a migration drops a foreign key's index,
        # Django drops every single-column index on that column, and on
        # PostgreSQL sms_ledger_one_settlement is one (tests/test_schema.py).
    )
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=64,
        blank=True,
        help_text=_("Caller-chosen key making a top-up or adjustment happen once."),
    )
    reason = models.TextField(_("reason"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # sms_ledger_actor: top-ups and adjustments only
    )
    created_at = models.DateTimeField(_("at"), default=timezone.now)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["app", "-created_at"], name="sms_ledger_app_created"),
            models.Index(fields=["kind", "created_at"], name="sms_ledger_kind_created"),
            # Holds and charges (nearly every row) have no actor: leave them out.
            models.Index(
                fields=["actor"], condition=models.Q(actor__isnull=False), name="sms_ledger_actor"
            ),
        ]
        constraints = [
            # Retried tasks and replayed receipts hit these instead of billing twice.
            models.UniqueConstraint(
                fields=["message", "kind"],
                condition=models.Q(message__isnull=False),
                name="sms_ledger_once_per_message",
            ),
            models.UniqueConstraint(
                fields=["message"],
                condition=models.Q(kind__in=["charge", "release"]),
                name="sms_ledger_one_settlement",
            ),
            models.UniqueConstraint(
                fields=["app", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="sms_ledger_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.app_id})"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Ledger entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Ledger entries are append-only.")

    @property
    def billed(self) -> Decimal:
        """The amount this entry puts on the bill (charges only)."""
        return -self.held_change if self.kind == LedgerKind.CHARGE else Decimal(0)


class UnmatchedReceipt(models.Model):
    """A delivery receipt no message could be found for (yet).

    Receipts may arrive before the worker stored the provider's id; they are kept
    here and applied when the id is stored, or by the reconcile task. Receipts for
    ids this server never sent stay here for the administrator. One row per
    (provider, id, status): a replayed receipt adds nothing.
    """

    backend = models.CharField(_("backend alias"), max_length=32)
    provider = models.CharField(_("provider"), max_length=32)
    provider_message_id = models.CharField(_("provider message id"), max_length=128)
    status = models.CharField(_("reported status"), max_length=16)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    raw = models.JSONField(_("raw receipt"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    matched_at = models.DateTimeField(_("applied"), null=True, blank=True)
    message = models.ForeignKey(
        Message,
        verbose_name=_("message"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("unmatched receipt")
        verbose_name_plural = _("unmatched receipts")
        ordering = ["-received_at"]
        indexes = [
            models.Index(
                fields=["matched_at", "received_at"], name="sms_unmatched_open"
            ),
        ]
        constraints = [
            # Also the index of the lookups by (provider, provider_message_id).
            models.UniqueConstraint(
                fields=["provider", "provider_message_id", "status"],
                name="sms_unmatched_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.provider_message_id}: {self.status}"
