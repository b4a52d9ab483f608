"""The tenant: an App with its keys, balance and the per-app toggles."""

from __future__ import annotations

import secrets
import string
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..validators import validate_fixed_code

_ID_ALPHABET = string.ascii_letters + string.digits

#: Longest verification code the fixed-code column holds (CODE_LENGTH may not exceed it).
MAX_CODE_LENGTH = 12


def generate_app_id() -> str:
    # LeanCloud app ids: 24 random characters, a dash and a region suffix. Only
    # the random part matters to the SDKs; "-gzGzoHsz" keeps the JS SDK in CN
    # mode, which needs an explicit serverURL and never calls the app router.
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24)) + "-gzGzoHsz"


def generate_key() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


class AppQuerySet(models.QuerySet):
    def for_api(self) -> AppQuerySet:
        """Apps with what every send needs, in the authentication query itself:
        the approved default signature (``default_signature_pk`` / ``_text`` /
        ``_name``) and whether any fixed-code numbers exist (``has_fixed_code_numbers``)."""
        from .content import ReviewStatus, Signature

        default = Signature.objects.filter(
            app=models.OuterRef("pk"), is_default=True, status=ReviewStatus.APPROVED
        )
        return self.annotate(
            default_signature_pk=models.Subquery(default.values("pk")[:1]),
            default_signature_text=models.Subquery(default.values("text")[:1]),
            default_signature_name=models.Subquery(default.values("name")[:1]),
            has_fixed_code_numbers=models.Exists(FixedCodeNumber.objects.filter(app=models.OuterRef("pk"))),
        )


class App(models.Model):
    """A tenant. Everything else belongs to exactly one App; nothing crosses apps."""

    class Language(models.TextChoices):
        CHINESE = "zh", _("Chinese")
        ENGLISH = "en", _("English")

    name = models.CharField(_("name"), max_length=64)
    company_name = models.CharField(
        _("company name"),
        max_length=128,
        blank=True,
        help_text=_("The legal name of the company; marketing messages cannot be sent without it."),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sms_apps",
    )
    owner_email = models.EmailField(
        _("owner email"),
        blank=True,
        help_text=_("Review decisions and balance alerts are sent here."),
    )
    app_id = models.CharField(
        _("app id"), max_length=64, unique=True, default=generate_app_id
    )
    app_key = models.CharField(_("app key"), max_length=64, default=generate_key)
    master_key = models.CharField(_("master key"), max_length=64, default=generate_key)
    # Key rotation: the replaced key keeps working until its grace period ends.
    previous_app_key = models.CharField(
        _("previous app key"), max_length=64, blank=True, editable=False
    )
    previous_app_key_until = models.DateTimeField(
        _("previous app key works until"), null=True, blank=True, editable=False
    )
    previous_master_key = models.CharField(
        _("previous master key"), max_length=64, blank=True, editable=False
    )
    previous_master_key_until = models.DateTimeField(
        _("previous master key works until"), null=True, blank=True, editable=False
    )

    balance = models.DecimalField(
        _("balance"),
        max_digits=16,
        decimal_places=4,
        default=0,
        editable=False,
        help_text=_("Changes only through the ledger (top-ups, holds, charges)."),
    )

    # Billing: spend cap and balance alert (the ledger is in models/billing.py).
    daily_spend_cap = models.DecimalField(
        _("daily spend cap"),
        max_digits=16,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("Most the app may spend per day; sends beyond it fail (154)."),
    )
    spent_today = models.DecimalField(
        _("spent on spend day"), max_digits=16, decimal_places=4, default=0, editable=False
    )
    spend_day = models.DateField(_("spend day"), null=True, blank=True, editable=False)
    balance_alert_threshold = models.DecimalField(
        _("balance alert threshold"),
        max_digits=16,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("Email the owner once when the balance falls below this."),
    )
    balance_alert_sent_at = models.DateTimeField(
        _("balance alert sent"),
        null=True,
        blank=True,
        help_text=_("Cleared by a top-up that lifts the balance above the threshold."),
    )

    # Security: service switches.
    sms_enabled = models.BooleanField(
        _("SMS service"), default=True, help_text=_("Off: every SMS request fails (119).")
    )
    captcha_enabled = models.BooleanField(
        _("CAPTCHA service"),
        default=True,
        help_text=_("Off: requestCaptcha and verifyCaptcha fail (119) and no image is served."),
    )

    # SMS settings.
    sms_api_enabled = models.BooleanField(
        _("generic verification-code API"),
        default=True,
        help_text=_(
            "Open requestSmsCode and verifySmsCode to client keys. The master key "
            "always works."
        ),
    )
    require_captcha = models.BooleanField(
        _("require CAPTCHA before every SMS"),
        default=False,
        help_text=_(
            "Every sending call (requestSmsCode and the user endpoints that send) "
            "needs a validate_token from verifyCaptcha (608 without one). The "
            "master key is exempt. Needs the CAPTCHA service on."
        ),
    )
    allow_international = models.BooleanField(
        _("allow international numbers"), default=False
    )
    allow_voice_to_landlines = models.BooleanField(
        _("allow voice codes to landlines"),
        default=False,
        help_text=_(
            "Voice verification codes may call fixed-line numbers (SMS never goes "
            "to a landline). Premium-rate, toll-free and other non-mobile numbers "
            "are always refused."
        ),
    )
    allowed_countries = models.JSONField(
        _("allowed countries"), default=list, blank=True,
        help_text=_('Geo permissions: ISO codes this app may send to, e.g. ["CN", "HK"]; '
                    "empty: every country of the global coverage list."),
    )
    pumping_defence = models.BooleanField(
        _("SMS pumping defence"), default=True,
        help_text=_("Hold back sends to number ranges and countries whose codes are "
                    "rarely verified."),
    )
    pumping_settings = models.JSONField(
        _("pumping defence settings"), default=dict, blank=True,
        help_text=_('Overrides of SMS_SERVICE["PUMPING_DEFENCE"] for this app, e.g. '
                    '{"RANGE_MIN_VOLUME": 50}.'),
    )
    default_language = models.CharField(
        _("default message language"),
        max_length=2,
        choices=Language.choices,
        default=Language.CHINESE,
        help_text=_("Language of the default verification text when no template is given."),
    )
    enforce_carrier_signature_rules = models.BooleanField(
        _("enforce mainland-China signature rules"),
        default=False,
        help_text=_(
            "Signatures must have 3 to 8 characters and cannot be only ASCII letters or "
            "only digits. When "
            "off, breaking them is only a warning to reviewers."
        ),
    )

    # Account settings of phone users, worded as LeanCloud's console.
    signup_sends_verification = models.BooleanField(
        _("send verification SMS when users register or change phone numbers from clients"),
        default=True,
        help_text=_(
            "On: a number passed when a user signs up (or set later by the client) gets a "
            "verification code; the number is verified once the code comes back. Off: no "
            "message is sent."
        ),
    )
    forbid_unverified_login = models.BooleanField(
        _("do not allow users with unverified phone numbers to log in"),
        default=False,
        help_text=_(
            "On: a user whose number is unverified cannot log in with number and password "
            "or number and SMS code (215); username and password still work. Off: "
            "verification does not affect how users log in."
        ),
    )
    allow_unverified_reset = models.BooleanField(
        _("allow users with unverified phone numbers to reset passwords with SMS"),
        default=False,
        help_text=_(
            "On: users with an unverified number may reset their password with an SMS "
            "code. Off: the number must be verified first (215)."
        ),
    )
    allow_sms_login = models.BooleanField(
        _("allow users with verified phone numbers to login with SMS"),
        default=False,
        help_text=_(
            "On: users may log in with number and SMS code. Off: they cannot (119)."
        ),
    )

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = AppQuerySet.as_manager()

    # Annotated by App.objects.for_api() (the API's auth query); absent otherwise.
    default_signature_pk: int | None
    default_signature_name: str
    default_signature_text: str

    class Meta:
        verbose_name = _("app")
        verbose_name_plural = _("apps")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0), name="sms_app_balance_not_negative"
            )
        ]

    def __str__(self) -> str:
        # The name: lists and choices stay narrow; the app id is on the app's page.
        return self.name

    def accepted_keys(self, *, master: bool, now: datetime | None = None) -> list[str]:
        """The keys a request may use: the current one, and the replaced one while
        its grace period lasts."""
        current = self.master_key if master else self.app_key
        previous = self.previous_master_key if master else self.previous_app_key
        until = self.previous_master_key_until if master else self.previous_app_key_until
        if previous and until is not None and (now or timezone.now()) < until:
            return [current, previous]
        return [current]


class KeyRotation(models.Model):
    """Audit entry of one key rotation (who, which key, when, how long the old one
    kept working). The keys themselves are never stored here."""

    class Which(models.TextChoices):
        APP_KEY = "app_key", _("App key")
        MASTER_KEY = "master_key", _("Master key")

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="key_rotations"
    )
    which = models.CharField(_("key"), max_length=16, choices=Which.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("rotated by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    via = models.CharField(_("rotated from"), max_length=64, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    old_key_hint = models.CharField(
        _("old key ends with"), max_length=8, blank=True,
        help_text=_("The last characters of the replaced key, to tell keys apart."),
    )
    grace_until = models.DateTimeField(_("old key works until"), null=True, blank=True)
    created_at = models.DateTimeField(_("rotated at"), default=timezone.now)

    class Meta:
        verbose_name = _("key rotation")
        verbose_name_plural = _("key rotations")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        from ..localtime import local_time

        return f"{self.get_which_display()} of {self.app.name} at {local_time(self.created_at)}"


class FixedCodeNumber(models.Model):
    """A test number: a number with a fixed code, never sent to a provider and never
    billed, but counted by the sending limits like any other."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE,
        related_name="fixed_code_numbers",
    )
    phone = models.CharField(_("phone number (E.164)"), max_length=20)
    #: The column holds up to :data:`MAX_CODE_LENGTH` digits; ``CODE_LENGTH`` says
    #: how many a code has (a system check keeps it within the column).
    code = models.CharField(_("fixed code"), max_length=MAX_CODE_LENGTH,
                            validators=[validate_fixed_code])
    note = models.CharField(_("note"), max_length=128, blank=True)

    class Meta:
        verbose_name = _("test number")
        verbose_name_plural = _("test numbers")
        constraints = [
            models.UniqueConstraint(fields=["app", "phone"], name="sms_testnumber_unique")
        ]

    def __str__(self) -> str:
        return self.phone

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from sms_service.phone import parse_phone

        try:
            self.phone = parse_phone(self.phone).e164
        except Exception as exc:
            raise ValidationError({"phone": str(exc)}) from exc
