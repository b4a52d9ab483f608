"""The adapter: the one class a project subclasses to change how the service behaves.

Point ``SMS_SERVICE["ADAPTER"]`` at a subclass of :class:`DefaultSmsAdapter` and
override the methods you need; every method takes keyword arguments only, so new
arguments can be added without breaking subclasses that accept ``**kwargs``.
Services call :func:`get_adapter` each time they need it (never at import time),
so ``override_settings`` and ``setting_changed`` take effect at once.

The methods fall in two groups:

* **Sending**: code generation, the default verification text, backend routing,
  the client IP, owner notifications.
* **Phone users**: finding, creating and updating the host project's users by
  phone number (used by the user endpoints and the bundled pages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conf import app_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .models import App, AppUser


class DefaultSmsAdapter:
    """Default behaviour. Subclass it and name the subclass in ``ADAPTER``."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        #: The current request when the caller has one, else None.
        self.request = request

    # --- Sending --------------------------------------------------------------

    # --- Phone users -----------------------------------------------------------

    def get_member_by_phone(self, *, app: App, phone: str) -> AppUser | None:
        """The member of ``app`` whose number is ``phone`` (E.164), or None."""
        from .models import AppUser

        return AppUser.objects.select_related("user").filter(app=app, phone=phone).first()

    def host_username(self, *, app: App, username: str) -> str:
        """The host user's ``USERNAME_FIELD`` value for a member's username.

        LeanCloud usernames are unique per app, the host's user table is one
        namespace: ``app<pk>.<username>`` keeps the apps apart (the LeanCloud
        username itself is ``AppUser.username``).
        """
        return f"app{app.pk}.{username}"

    def create_user(self, *, app: App, username: str, password: str | None,
                    email: str | None, phone: str | None, extra: dict[str, Any]) -> Any:
        """Create (and save) the host project's user for a new member.

        ``password`` None gives an unusable password (sign-up by SMS code). The
        default fills ``USERNAME_FIELD`` with :meth:`host_username` and ``email``
        when the model has one; override for a custom user model that needs more.
        """
        from django.contrib.auth import get_user_model

        model = get_user_model()
        user = model(**{model.USERNAME_FIELD: self.host_username(app=app, username=username)})
        if email and model.USERNAME_FIELD != "email" and _has_field(model, "email"):
            user.email = email
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save()
        return user

    def set_phone_verified(self, *, member: AppUser, verified: bool = True) -> None:
        """Record that the member's number is (or is no longer) verified."""
        from django.utils import timezone

        member.phone_verified = verified
        member.updated_at = timezone.now()
        member.save(update_fields=["phone_verified", "updated_at"])


def _has_field(model: Any, name: str) -> bool:
    from django.core.exceptions import FieldDoesNotExist

    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def get_adapter(request: HttpRequest | None = None) -> DefaultSmsAdapter:
    """An instance of the configured adapter class (``SMS_SERVICE["ADAPTER"]``)."""
    return app_settings.ADAPTER(request=request)
