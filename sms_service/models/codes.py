"""Verification codes, stored only as keyed hashes."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .app import App


class CodePurpose(models.TextChoices):
    """What a code may be used for : a code only passes its own purpose."""

    GENERIC = "generic", _("requestSmsCode / verifySmsCode")
    SIGNUP = "signup", _("sign up or log in")
    LOGIN = "login", _("log in")
    VERIFY_PHONE = "verify_phone", _("verify phone number")
    RESET_PASSWORD = "reset_password", _("reset password")
    CHANGE_PHONE = "change_phone", _("change phone number")


class CodeStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    USED = "used", _("Used")
    DEAD = "dead", _("Too many wrong attempts")
    EXPIRED = "expired", _("Expired")


class VerificationCodeQuerySet(models.QuerySet):
    def active(self, now: datetime | None = None) -> VerificationCodeQuerySet:
        return self.filter(status=CodeStatus.ACTIVE, expires_at__gt=now or timezone.now())


class VerificationCode(models.Model):
    """The current code of one (app, phone, purpose): a new send overwrites the
    row, so the table holds one row per number and purpose however
    many codes are sent.

    ``digest`` is HMAC(secret, app | phone | purpose | code): it binds the code to
    the number and the purpose. ``lookup`` is HMAC(secret, app | purpose | code),
    unique among active codes of an (app, purpose), so calls that carry only the
    code (the JS SDK's verifyMobilePhone) find exactly one row.
    """

    app = models.ForeignKey(
        App,
        verbose_name=_("app"),
        on_delete=models.CASCADE,
        related_name="codes",
        db_index=False,  # sms_code_one_per_number leads with it
    )
    phone = models.CharField(_("phone number (E.164)"), max_length=20)
    purpose = models.CharField(
        _("purpose"), max_length=16, choices=CodePurpose.choices
    )
    digest = models.CharField(_("keyed hash"), max_length=64, editable=False)
    lookup = models.CharField(_("lookup hash"), max_length=64, editable=False)
    status = models.CharField(
        _("status"), max_length=12, choices=CodeStatus.choices, default=CodeStatus.ACTIVE
    )
    attempts = models.PositiveSmallIntegerField(_("wrong attempts"), default=0)
    expires_at = models.DateTimeField(_("expires"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    objects = VerificationCodeQuerySet.as_manager()

    class Meta:
        verbose_name = _("verification code")
        verbose_name_plural = _("verification codes")
        indexes = [
            # The periodic expiry looks at active rows only.
            models.Index(
                fields=["expires_at"],
                condition=models.Q(status="active"),
                name="sms_code_active_expiry",
            ),
        ]
        constraints = [
            # A send is one INSERT ... ON CONFLICT on this; verify reads by it.
            models.UniqueConstraint(
                fields=["app", "phone", "purpose"], name="sms_code_one_per_number"
            ),
            models.UniqueConstraint(
                fields=["app", "purpose", "lookup"],
                condition=models.Q(status="active"),
                name="sms_code_active_lookup_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} code ({self.status})"
