"""Creating and configuring apps."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from .. import caching
from ..conf import app_settings
from ..exceptions import SmsServiceConfigurationError
from ..models import App, KeyRotation
from ..models.app import generate_key

logger = logging.getLogger(__name__)

#: Fields an operator may change with ``sms_service_app update --set``.
EDITABLE_FIELDS = (
    "name", "company_name", "owner_email", "sms_enabled", "captcha_enabled",
    "sms_api_enabled", "require_captcha", "allow_international", "allow_voice_to_landlines",
    "default_language",
    "enforce_carrier_signature_rules", "signup_sends_verification",
    "forbid_unverified_login", "allow_unverified_reset", "allow_sms_login",
)


def create_app(*, name: str, company_name: str = "", owner_email: str = "",
               app_id: str | None = None, app_key: str | None = None,
               master_key: str | None = None) -> App:
    """A new app; keys are generated with ``secrets`` unless given (scripted set-ups)."""
    fields: dict[str, Any] = {"name": name, "company_name": company_name,
                              "owner_email": owner_email}
    for field, value in (("app_id", app_id), ("app_key", app_key), ("master_key", master_key)):
        if value:
            fields[field] = value
    app = App(**fields)
    app.full_clean()
    app.save()
    return app


def update_app(*, app: App, changes: dict[str, str]) -> App:
    """Apply ``field=value`` strings; booleans accept true/false/1/0/on/off/yes/no."""
    for field, raw in changes.items():
        if field not in EDITABLE_FIELDS:
            raise ValidationError(
                f"Unknown or read-only setting {field!r}. Editable: {', '.join(EDITABLE_FIELDS)}"
            )
        model_field = App._meta.get_field(field)
        assert isinstance(model_field, models.Field)  # EDITABLE_FIELDS are plain columns
        setattr(app, field, _coerce(model_field, field, raw))
    app.full_clean()
    app.save()
    return app


def _coerce(model_field: models.Field, name: str, raw: str) -> Any:
    if isinstance(model_field, models.BooleanField):
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "on", "yes"):
            return True
        if lowered in ("false", "0", "off", "no"):
            return False
        raise ValidationError(f"{name} takes true or false, not {raw!r}")
    return raw


#: The keys :func:`rotate_key` can replace, by the name operators use.
ROTATABLE_KEYS = ("app_key", "master_key")

#: Longest grace period a rotated-out key may keep working.
MAX_GRACE = timedelta(days=30)


def rotate_key(
    *,
    app: App,
    which: str,
    grace: timedelta = timedelta(0),
    actor: Any = None,
    via: str = "",
    reason: str = "",
) -> str:
    """Replace the app key or master key with a fresh random one; returns it.

    With a ``grace`` period the replaced key keeps working until it ends (clients
    switch over meanwhile); without one it stops at once, as for a leaked key.
    Writes a :class:`~sms_service.models.KeyRotation` audit entry in the same
    transaction and drops the cached API view of the app.
    """
    if which not in ROTATABLE_KEYS:
        raise ValidationError(f"Unknown key {which!r}: choose app_key or master_key.")
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise ValidationError(
            f"The grace period must be between 0 and {MAX_GRACE.days} days."
        )
    now = timezone.now()
    new_key = generate_key()
    prefix = which.removesuffix("_key")
    with transaction.atomic():
        locked = App.objects.select_for_update().get(pk=app.pk)
        old_key = getattr(locked, which)
        setattr(locked, which, new_key)
        setattr(locked, f"previous_{which}", old_key if grace else "")
        setattr(locked, f"previous_{which}_until", now + grace if grace else None)
        locked.save(update_fields=[which, f"previous_{which}", f"previous_{which}_until",
                                   "updated_at"])
        KeyRotation.objects.create(
            app=locked, which=which, actor=actor, via=via, reason=reason,
            old_key_hint=old_key[-4:], grace_until=now + grace if grace else None,
            created_at=now,
        )
    for field in (which, f"previous_{which}", f"previous_{which}_until", "updated_at"):
        setattr(app, field, getattr(locked, field))
    logger.info("rotated the %s key of app %s (grace %s)", prefix, app.app_id, grace)
    transaction.on_commit(lambda: forget_app(app.app_id))
    forget_app(app.app_id)
    return new_key


def describe_app(app: App) -> dict[str, Any]:
    data: dict[str, Any] = {"app_id": app.app_id, "app_key": app.app_key,
                            "master_key": app.master_key, "balance": str(app.balance)}
    for field in EDITABLE_FIELDS:
        data[field] = getattr(app, field)
    return data


# --- the app as the API sees it -------------------------------------------------------

#: Seconds an app's row stays in the shared cache. Saving or deleting the app, a
#: signature or a test number drops the entry (see forget_app): at once in this
#: process and the shared cache, within PROCESS_CACHE_SECONDS in other processes.
#: The timeout only bounds the damage of a change made with QuerySet.update(),
#: which sends no signal.
API_APP_CACHE_SECONDS = 60


def _api_app_key(app_id: str) -> str:
    return f"sms_service:api-app:{app_id}"


def get_api_app(app_id: str) -> App | None:
    """The app with its default signature and fixed-code flag
    (``App.objects.for_api()``), from the process and shared caches when possible
    (:mod:`sms_service.caching`): every API request starts here."""
    return caching.read_through(
        _api_app_key(app_id),
        lambda: App.objects.for_api().filter(app_id=app_id).first(),
        API_APP_CACHE_SECONDS,
    )


def forget_app(app_id: str) -> None:
    """Drop the cached API view of an app (called on every relevant save/delete)."""
    caching.forget(_api_app_key(app_id))


def get_site_app() -> App:
    """The app the bundled account pages serve (``SITE_APP_ID``), as
    :func:`get_api_app` returns it. A missing setting or an unknown id is a
    configuration error naming the setting."""
    app_id = app_settings.SITE_APP_ID
    if not app_id:
        raise SmsServiceConfigurationError(
            'Set SMS_SERVICE["SITE_APP_ID"] to the app id whose SMS settings the '
            "account pages use (sms_service.accounts)."
        )
    app = get_api_app(app_id)
    if app is None:
        raise SmsServiceConfigurationError(
            f'SMS_SERVICE["SITE_APP_ID"] is {app_id!r}, but no app has that id.'
        )
    return app
