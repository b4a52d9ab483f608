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

Phone numbers reach the adapter as E.164 strings (``"+8618612345678"``).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from django.core.mail import send_mail

from .conf import app_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .models import App, AppUser

logger = logging.getLogger(__name__)

#: The default verification text per language: ``{name}`` is the app (or the
#: caller's ``name``), ``{op}`` the operation, ``{code}`` the code and ``{ttl}``
#: its validity in minutes. The signature is added in front by the service.
DEFAULT_TEXTS: dict[str, str] = {
    "zh": "您正在使用{name}服务进行{op}操作，您的验证码是：{code}，请在{ttl}分钟内完成验证。",
    "en": "You are using {name} to {op}. Your verification code is {code}, "
    "valid for {ttl} minutes.",
}
#: The operation named when the caller gives no ``op``.
DEFAULT_OPS: dict[str, str] = {"zh": "短信验证", "en": "verify your phone number"}
#: The language used when the app's language has no text above.
FALLBACK_LANGUAGE = "zh"


class DefaultSmsAdapter:
    """Default behaviour. Subclass it and name the subclass in ``ADAPTER``."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        #: The current request when the caller has one, else None.
        self.request = request

    # --- Sending --------------------------------------------------------------

    def generate_code(self, *, app: App, phone: str, purpose: str, length: int) -> str:
        """A fresh verification code of ``length`` digits (``CODE_LENGTH``).

        The default draws it from the operating system's CSPRNG, uniformly
        among all codes of that length, in one draw. A replacement must return
        exactly ``length`` ASCII digits, and should stay unpredictable: the
        code is the only secret of a verification.
        """
        return f"{secrets.randbelow(10 ** length):0{length}d}"

    def default_text(
        self, *, app: App, name: str, op: str | None, code: str, ttl: int, language: str
    ) -> str:
        """The body of a verification SMS sent without a template (no 【signature】).

        ``name`` is the app's name (or the caller's ``name``), ``op`` the caller's
        operation or None, ``code`` the code, ``ttl`` its validity in minutes and
        ``language`` the app's ``default_language``. The text must contain ``code``
        exactly once.
        """
        if language not in DEFAULT_TEXTS:
            language = FALLBACK_LANGUAGE
        return DEFAULT_TEXTS[language].format(
            name=name, op=op or DEFAULT_OPS[language], code=code, ttl=ttl
        )

    def get_backend_aliases(
        self, *, app: App, phone: str, channel: str, kind: str
    ) -> list[str]:
        """The backend aliases (keys of ``BACKENDS``) for one message, best first.

        ``channel`` is ``"sms"`` or ``"voice"``, ``kind`` the message kind
        (``"verification"``, ``"notification"``, ``"marketing"``). The default
        takes the first entry of ``ROUTES`` matching the number's region, the
        channel and the kind (the outbox fails over along its list), else routes
        by channel through ``CHANNEL_BACKENDS``, else ``"default"``.
        """
        if app_settings.ROUTES:
            from .phone import parse_phone

            region = parse_phone(phone).region
            for route in app_settings.ROUTES:
                if (_route_matches(route.get("region"), region)
                        and _route_matches(route.get("channel"), channel)
                        and _route_matches(route.get("kind"), kind)):
                    return list(route["backends"])
        return [app_settings.CHANNEL_BACKENDS.get(channel, "default")]

    def get_client_ip(self, *, request: HttpRequest) -> str | None:
        """The caller's IP address for the per-IP sending limit and the message log.

        ``REMOTE_ADDR``, or the first address of ``X-Forwarded-For`` when
        ``TRUST_X_FORWARDED_FOR`` is on (only behind a proxy you control, which
        overwrites the header).
        """
        if app_settings.TRUST_X_FORWARDED_FOR:
            forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
            if forwarded:
                return forwarded.split(",")[0].strip() or None
        return request.META.get("REMOTE_ADDR") or None

    def notify_owner(
        self, *, app: App, subject: str, body: str, event: str, context: dict[str, Any]
    ) -> None:
        """Tell the app's owner about ``event``; runs after the change committed.

        Events: ``"content_approved"`` and ``"content_rejected"`` (context:
        ``item``, the Signature or TemplateVersion) and ``"balance_low"``
        (context: ``balance``, ``threshold``). The default emails ``subject`` and
        ``body`` to :meth:`owner_email`; nothing is sent when there is none.
        Exceptions are logged by the caller and never undo the change.
        """
        recipient = self.owner_email(app=app)
        if not recipient:
            logger.warning("%s for app %s: the owner has no email address", event, app.app_id)
            return
        send_mail(subject, body, None, [recipient])

    def owner_email(self, *, app: App) -> str:
        """Where owner notifications go: ``App.owner_email``, else the owner's email."""
        if app.owner_email:
            return app.owner_email
        return getattr(app.owner, "email", "") if app.owner_id else ""

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


def _route_matches(wanted: str | list[str] | None, value: str) -> bool:
    """A ROUTES condition: absent or "*" matches all, else a value or a list."""
    if wanted in (None, "*"):
        return True
    return value in wanted if isinstance(wanted, (list, tuple)) else value == wanted


def get_adapter(request: HttpRequest | None = None) -> DefaultSmsAdapter:
    """An instance of the configured adapter class (``SMS_SERVICE["ADAPTER"]``)."""
    return app_settings.ADAPTER(request=request)


def client_ip(request: HttpRequest) -> str | None:
    """The caller's IP address, as the adapter's ``get_client_ip`` tells it."""
    return get_adapter(request).get_client_ip(request=request)
