"""Phone users: members of an app, their sessions and login lockouts.

A user is the host project's ``AUTH_USER_MODEL`` (password hashing, ``is_active``
and the admin come from Django). An :class:`AppUser` makes one host user a
member of one app and holds what LeanCloud's ``_User`` class holds per app:
the objectId, the username, email and phone number (each unique within the
app), the verified flags and the other fields as JSON. Nothing crosses apps: a
session or a password of one app never opens a member of another.
"""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .app import App

_OBJECT_ID_ALPHABET = string.ascii_lowercase + string.digits


def generate_object_id() -> str:
    """24 random characters, the length of LeanCloud's objectIds."""
    return "".join(secrets.choice(_OBJECT_ID_ALPHABET) for _ in range(24))


class AppUser(models.Model):
    """One member of one app (LeanCloud's ``_User`` row of that app)."""

    app = models.ForeignKey(
        App,
        verbose_name=_("app"),
        on_delete=models.CASCADE,
        related_name="members",
        db_index=False,  # every unique constraint below leads with it
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="sms_memberships",
    )
    object_id = models.CharField(
        _("objectId"), max_length=32, default=generate_object_id, editable=False
    )
    username = models.CharField(_("username"), max_length=128)
    # NULL, not "", means "not set": the per-app unique constraints skip NULLs.
    email = models.EmailField(  # noqa: DJ001
        _("email"), max_length=254, null=True, blank=True
    )
    phone = models.CharField(  # noqa: DJ001
        _("phone number (E.164)"), max_length=20, null=True, blank=True
    )
    phone_verified = models.BooleanField(_("phone verified"), default=False)
    email_verified = models.BooleanField(_("email verified"), default=False)
    extra = models.JSONField(
        _("other fields"), default=dict, blank=True,
        help_text=_("Every other _User field the client set, as JSON."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("phone user")
        verbose_name_plural = _("phone users")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["app", "object_id"], name="sms_member_object_id"),
            models.UniqueConstraint(fields=["app", "username"], name="sms_member_username"),
            models.UniqueConstraint(
                fields=["app", "email"], condition=models.Q(email__isnull=False),
                name="sms_member_email",
            ),
            models.UniqueConstraint(
                fields=["app", "phone"], condition=models.Q(phone__isnull=False),
                name="sms_member_phone",
            ),
            # One membership per host user and app.
            models.UniqueConstraint(fields=["app", "user"], name="sms_member_user"),
        ]

    def __str__(self) -> str:
        return self.username


class UserSession(models.Model):
    """A session token of one member: only its keyed hash is stored."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="user_sessions",
    )
    member = models.ForeignKey(
        AppUser, verbose_name=_("member"), on_delete=models.CASCADE, related_name="sessions",
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        state = _("revoked") if self.revoked_at else _("active")
        return f"{self.member} ({state})"


class LoginLockout(models.Model):
    """Failed logins of one account of one app, and the lock they caused."""

    app = models.ForeignKey(
        App, verbose_name=_("app"), on_delete=models.CASCADE, related_name="login_lockouts",
        db_index=False,  # the unique constraint leads with it
    )
    account = models.CharField(_("account"), max_length=200)
    member = models.ForeignKey(
        AppUser, verbose_name=_("member"), on_delete=models.CASCADE, null=True, blank=True,
        related_name="lockouts",
    )
    failures = models.PositiveIntegerField(_("failures in the window"), default=0)
    window_started_at = models.DateTimeField(_("first failure of the window"))
    last_failure_at = models.DateTimeField(_("last failure"))
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)

    class Meta:
        verbose_name = _("login lockout")
        verbose_name_plural = _("login lockouts")
        ordering = ["-last_failure_at"]
        constraints = [
            models.UniqueConstraint(fields=["app", "account"], name="sms_lockout_account"),
        ]

    def __str__(self) -> str:
        return self.account
