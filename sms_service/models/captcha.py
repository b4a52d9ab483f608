"""CAPTCHA challenges (bound to an app) and the validate tokens they yield."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .app import App


class CaptchaChallenge(models.Model):
    """One ``requestCaptcha``: a django-simple-captcha ``CaptchaStore`` row (the
    text drawn in the image, the lower-cased answer and the expiry) bound to the
    app that asked for it, with the image size it asked for.

    ``token`` is the ``captcha_token`` handed to the client; the store's own
    ``hashkey`` never leaves the server. Verifying deletes the row whatever the
    answer, so a challenge answers once.
    """

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="+"
    )
    token = models.CharField(_("captcha token"), max_length=64, unique=True)
    store = models.OneToOneField(
        "captcha.CaptchaStore", verbose_name=_("challenge"), on_delete=models.CASCADE,
        related_name="+",
    )
    width = models.PositiveSmallIntegerField(_("width"))
    height = models.PositiveSmallIntegerField(_("height"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("CAPTCHA challenge")
        verbose_name_plural = _("CAPTCHA challenges")

    def __str__(self) -> str:
        return f"captcha {self.pk} of app {self.app_id}"


class CaptchaValidateToken(models.Model):
    """A ``validate_token`` from ``verifyCaptcha``: stored only as a keyed hash,
    bound to the app, spent by the first send that presents it."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="+"
    )
    digest = models.CharField(_("digest"), max_length=64, unique=True)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("CAPTCHA validate token")
        verbose_name_plural = _("CAPTCHA validate tokens")

    def __str__(self) -> str:
        return f"validate token {self.pk} of app {self.app_id}"
