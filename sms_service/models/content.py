"""Signatures and templates with their review workflow (R-SIG, R-TPL)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .app import App
from .messages import MessageKind


class ReviewStatus(models.TextChoices):
    PENDING = "pending", _("Pending review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class Reviewable(models.Model):
    status = models.CharField(
        _("review status"),
        max_length=10,
        choices=ReviewStatus.choices,
        default=ReviewStatus.PENDING,
    )
    rejection_reason = models.TextField(_("rejection reason"), blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("reviewed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        abstract = True


class Signature(Reviewable):
    """``name`` is what callers pass as ``sign``; ``text`` is shown as 【text】."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="signatures"
    )
    name = models.CharField(_("name"), max_length=64)
    text = models.CharField(_("text"), max_length=32)
    is_default = models.BooleanField(_("default"), default=False)

    class Meta:
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")
        ordering = ["app", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["app", "name"], name="sms_signature_name_unique"),
            models.UniqueConstraint(
                fields=["app"],
                condition=models.Q(is_default=True),
                name="sms_signature_one_default",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} 【{self.text}】"


class Template(models.Model):
    """A named template; its text lives in immutable :class:`TemplateVersion` rows."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="templates"
    )
    name = models.CharField(_("name"), max_length=64)
    kind = models.CharField(
        _("type"), max_length=16, choices=MessageKind.choices
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        ordering = ["app", "name"]
        constraints = [
            models.UniqueConstraint(fields=["app", "name"], name="sms_template_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(Reviewable):
    template = models.ForeignKey(
        Template,
        verbose_name=_("template"),
        on_delete=models.CASCADE,
        related_name="versions",
    )
    number = models.PositiveIntegerField(_("version"))
    body = models.TextField(_("body (Handlebars)"))
    signature = models.ForeignKey(
        Signature,
        verbose_name=_("signature"),
        on_delete=models.PROTECT,
        related_name="template_versions",
    )

    class Meta:
        verbose_name = _("template version")
        verbose_name_plural = _("template versions")
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "number"], name="sms_template_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.number}"
