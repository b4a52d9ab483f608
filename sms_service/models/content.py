"""Signatures and templates with their review workflow.

Rows are created and reviewed through :mod:`sms_service.services.content`; the
models hold the data, the per-row validation shown in admin forms and the guard
that keeps a submitted template version immutable.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import validators
from .app import App
from .messages import MessageKind

#: Custom permission that lets a staff user approve and reject content.
REVIEW_PERMISSION = "sms_service.review_content"

#: Custom permission that lets a reviewer approve content the lint flags as
#: breaking the rules, with a written reason kept on the item.
OVERRIDE_PERMISSION = "sms_service.override_lint"


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
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("submitted by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("reviewed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    override_reason = models.TextField(
        _("override reason"),
        blank=True,
        help_text=_(
            "Why a reviewer approved it although the lint reported errors. Empty when "
            "it was approved without errors."
        ),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        abstract = True

    @property
    def is_approved(self) -> bool:
        return self.status == ReviewStatus.APPROVED

    @property
    def is_pending(self) -> bool:
        return self.status == ReviewStatus.PENDING


class SignatureQuerySet(models.QuerySet):
    def approved(self) -> SignatureQuerySet:
        return self.filter(status=ReviewStatus.APPROVED)

    def pending(self) -> SignatureQuerySet:
        return self.filter(status=ReviewStatus.PENDING)


class Signature(Reviewable):
    """``name`` is what callers pass as ``sign``; ``text`` is shown as 【text】."""

    #: The text as loaded from the database (see :meth:`from_db`).
    _loaded_text: str | None

    class Source(models.TextChoices):
        # Carriers want a signature to name the app, the company, a brand or a site.
        APP = "app", _("App name")
        COMPANY = "company", _("Company (short name)")
        BRAND = "brand", _("Brand")
        WEBSITE = "website", _("Website")

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="signatures"
    )
    name = models.CharField(
        _("name"),
        max_length=64,
        help_text=_('The identifier API callers pass as "sign", e.g. sign_BuyBuyBuy.'),
    )
    text = models.CharField(
        _("text"),
        max_length=32,
        help_text=_(
            "Shown as 【text】 at the start of every message: letters and digits "
            "only, without the 【】 brackets."
        ),
    )
    source = models.CharField(
        _("what it names"), max_length=10, choices=Source.choices, blank=True
    )
    proof = models.FileField(
        _("proof document"),
        upload_to="sms_service/signature-proofs/%Y/%m/",
        blank=True,
        help_text=_("Trademark, business licence or site registration, for reviewers."),
    )
    is_default = models.BooleanField(
        _("default"),
        default=False,
        help_text=_("Used when a request names no signature. Exactly one per app."),
    )

    objects = SignatureQuerySet.as_manager()

    class Meta:
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")
        ordering = ["app", "created_at", "pk"]
        permissions = [
            ("review_content", _("Can review signatures and templates")),
            ("override_lint", _("Can approve content despite lint errors")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["app", "name"], name="sms_signature_name_unique"),
            models.UniqueConstraint(
                fields=["app"],
                condition=models.Q(is_default=True),
                name="sms_signature_one_default",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="sms_sig_status")]

    def __str__(self) -> str:
        return f"{self.name} 【{self.text}】"

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Signature:
        instance = super().from_db(db, field_names, values, **kwargs)
        # Remember the reviewed text: changing it sends the signature back to review.
        instance._loaded_text = instance.__dict__.get("text")
        return instance

    @property
    def text_changed(self) -> bool:
        """True for a new row or when ``text`` differs from what was loaded."""
        return self._state.adding or getattr(self, "_loaded_text", None) != self.text

    def clean(self) -> None:
        from sms_service.conf import app_settings

        errors: dict[str, list[str]] = {}
        name_error = validators.signature_name_error(self.name or "")
        if name_error:
            errors["name"] = [name_error]
        if self.app_id is not None and self.text:
            app = self.app
            findings = validators.lint_signature_text(
                self.text, enforce_carrier_rules=app.enforce_carrier_signature_rules
            )
            text_errors = [f.message for f in findings if f.is_error]
            if text_errors:
                errors["text"] = text_errors
            limit = app_settings.MAX_SIGNATURES_PER_APP
            others = Signature.objects.filter(app_id=self.app_id).exclude(pk=self.pk)
            if self._state.adding and others.count() >= limit:
                errors.setdefault("__all__", []).append(
                    _(
                        "An app can have at most %(limit)d signatures, rejected ones "
                        "included. Delete one first."
                    )
                    % {"limit": limit}
                )
        if errors:
            raise ValidationError(errors)


class Template(models.Model):
    """A named template; its text lives in immutable :class:`TemplateVersion` rows.

    The newest approved version serves; a newer pending version waits for review
    without interrupting it.
    """

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="templates"
    )
    name = models.CharField(
        _("name"),
        max_length=64,
        help_text=_('The identifier API callers pass as "template", e.g. Order_Notice.'),
    )
    kind = models.CharField(_("type"), max_length=16, choices=MessageKind.choices)
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

    def clean(self) -> None:
        error = validators.template_name_error(self.name or "")
        if error:
            raise ValidationError({"name": [error]})

    @property
    def live_version(self) -> TemplateVersion | None:
        """The version that sends: the newest approved one."""
        return self.versions.approved().order_by("-number").first()

    @property
    def has_approved_version(self) -> bool:
        return self.pk is not None and self.versions.filter(
            status=ReviewStatus.APPROVED
        ).exists()


class TemplateVersionQuerySet(models.QuerySet):
    def pending(self) -> TemplateVersionQuerySet:
        return self.filter(status=ReviewStatus.PENDING)

    def approved(self) -> TemplateVersionQuerySet:
        return self.filter(status=ReviewStatus.APPROVED)


class TemplateVersion(Reviewable):
    """One submitted text of a template. Immutable once saved: edits are new rows."""

    #: Fields that may never change after submission (only the review fields do).
    FROZEN_FIELDS = ("template_id", "number", "body", "signature_id")

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

    objects = TemplateVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("template version")
        verbose_name_plural = _("template versions")
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "number"], name="sms_template_version_unique"
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="sms_tplv_status")]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        frozen = getattr(self, "_frozen", None)
        if not self._state.adding and frozen:
            changed = [f for f, v in frozen.items() if getattr(self, f) != v]
            if changed:
                raise ValueError(
                    f"Template versions are immutable once submitted (changed: "
                    f"{', '.join(changed)}); submit a new version instead."
                )
        super().save(*args, **kwargs)
        self._frozen = {f: getattr(self, f) for f in self.FROZEN_FIELDS}

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> TemplateVersion:
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._frozen = {
            f: instance.__dict__[f] for f in cls.FROZEN_FIELDS if f in instance.__dict__
        }
        return instance


class ProviderTemplate(models.Model):
    """What a template-based provider (Aliyun, Tencent Cloud) sends for one of
    our texts: its own template id and the parameters in its order.

    ``template_version`` null stands for the default verification text (per
    channel: a voice code needs a text-to-speech template); ``app`` null makes
    such a mapping serve every app that has none of its own. Parameter names
    are the version's variables and the system variables (``code``, ``name``,
    ``ttl``, ``sign``, ``template``; ``op`` for the default text).
    """

    backend = models.CharField(
        _("backend alias"), max_length=32,
        help_text=_('An alias of SMS_SERVICE["BACKENDS"] whose provider sends templates only.'),
    )
    template_version = models.ForeignKey(
        TemplateVersion, verbose_name=_("template version"), null=True, blank=True,
        on_delete=models.CASCADE, related_name="provider_templates",
        help_text=_("Empty: the default verification text."),
    )
    app = models.ForeignKey(
        App, verbose_name=_("app"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="provider_templates",
        help_text=_("Default text only: empty serves every app without its own."),
    )
    channel = models.CharField(
        _("channel"), max_length=8, default="sms",
        choices=[("sms", _("SMS")), ("voice", _("Voice call"))],
    )
    provider_template_id = models.CharField(
        _("provider template id"), max_length=64,
        help_text=_("Aliyun: the TemplateCode (SMS_…, TTS_… for voice); Tencent Cloud: the TemplateId."),
    )
    parameters = models.JSONField(
        _("parameters"), default=list, blank=True,
        help_text=_('Names in the provider template\'s order, e.g. ["code", "ttl"].'),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("provider template")
        verbose_name_plural = _("provider templates")
        ordering = ["backend", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["template_version", "backend"],
                condition=models.Q(template_version__isnull=False),
                name="sms_provider_tpl_version",
            ),
            models.UniqueConstraint(
                fields=["app", "backend", "channel"],
                condition=models.Q(template_version__isnull=True, app__isnull=False),
                name="sms_provider_tpl_app_default",
            ),
            models.UniqueConstraint(
                fields=["backend", "channel"],
                condition=models.Q(template_version__isnull=True, app__isnull=True),
                name="sms_provider_tpl_default",
            ),
        ]

    def __str__(self) -> str:
        what = str(self.template_version) if self.template_version_id else _("default text")
        return f"{what} → {self.backend}:{self.provider_template_id}"
