"""SMS pumping defence: what it held back, why, and who lifted it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .app import App


class PumpingBlockQuerySet(models.QuerySet):
    def active(self) -> PumpingBlockQuerySet:
        return self.filter(lifted_at__isnull=True)


class PumpingBlock(models.Model):
    """Sends of one app to a number range or a country held back because its
    codes were rarely verified. Active until an operator lifts it."""

    class Scope(models.TextChoices):
        RANGE = "range", _("Number range")
        COUNTRY = "country", _("Country")

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="pumping_blocks"
    )
    scope = models.CharField(_("scope"), max_length=8, choices=Scope.choices)
    value = models.CharField(
        _("range or country"), max_length=20,
        help_text=_("The number's first digits (E.164) or the ISO country code."),
    )
    reason = models.TextField(_("reason"))
    #: The figures that triggered it: sent, verified, share, baseline, window.
    stats = models.JSONField(_("figures"), default=dict, blank=True)
    refused = models.PositiveIntegerField(_("sends refused"), default=0)
    created_at = models.DateTimeField(_("held back since"), default=timezone.now)
    lifted_at = models.DateTimeField(_("lifted at"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("lifted by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )

    objects = PumpingBlockQuerySet.as_manager()

    class Meta:
        verbose_name = _("pumping block")
        verbose_name_plural = _("pumping blocks")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "scope", "value"], condition=models.Q(lifted_at__isnull=True),
                name="sms_pumping_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} {self.value} ({self.app})"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None
