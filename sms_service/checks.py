"""System checks for bad configuration (ids sms_service.E001…, W001…)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import app_settings

#: The adapter methods each feature calls, and whether the feature is on. A
#: feature that is on needs every one of its hooks on the configured adapter.
ADAPTER_HOOKS: list[tuple[str, Callable[[], bool], tuple[str, ...]]] = [
    ("sending", lambda: True,
     ("generate_code", "default_text", "get_backend_aliases", "get_client_ip")),
    ("owner notifications (review decisions)", lambda: True, ("notify_owner",)),
    ("owner notifications (balance alerts)", lambda: bool(app_settings.BILLING_ENABLED),
     ("notify_owner",)),
    ("phone users", lambda: True,
     ("get_member_by_phone", "host_username", "create_user", "set_phone_verified")),
]


@register(Tags.compatibility)
def check_adapter(app_configs=None, **kwargs):
    """The ADAPTER setting names a class with every hook an enabled feature needs."""
    path = app_settings.user_settings.get("ADAPTER", "sms_service.adapter.DefaultSmsAdapter")
    try:
        adapter = app_settings.ADAPTER
    except ImportError as exc:
        return [Error(
            f'SMS_SERVICE["ADAPTER"] cannot be imported: {exc}',
            hint="Use a dotted path to a subclass of sms_service.adapter.DefaultSmsAdapter.",
            id="sms_service.E009",
        )]
    if not isinstance(adapter, type):
        return [Error(f'SMS_SERVICE["ADAPTER"] must name a class, not {path!r}.',
                      id="sms_service.E009")]
    errors = []
    for feature, enabled, hooks in ADAPTER_HOOKS:
        missing = [hook for hook in hooks if not callable(getattr(adapter, hook, None))]
        if missing and enabled():
            errors.append(Error(
                f'SMS_SERVICE["ADAPTER"] {adapter.__module__}.{adapter.__qualname__} lacks '
                f"{', '.join(missing)}, which {feature} needs.",
                hint="Subclass sms_service.adapter.DefaultSmsAdapter, which has every hook.",
                id="sms_service.E010",
            ))
    return errors


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    errors = []
    backends = app_settings.BACKENDS
    if not isinstance(backends, dict) or "default" not in backends:
        return [Error('SMS_SERVICE["BACKENDS"] needs a "default" alias.', id="sms_service.E001")]
    for alias, config in backends.items():
        path = config.get("BACKEND") if isinstance(config, dict) else None
        try:
            backend_class = import_string(path or "")
        except ImportError as exc:
            errors.append(Error(
                f'SMS_SERVICE["BACKENDS"]["{alias}"]["BACKEND"] cannot be imported: {exc}',
                hint="Use a dotted path such as sms_service.backends.console.ConsoleBackend.",
                id="sms_service.E002",
            ))
            continue
        try:
            backend_class(alias=alias, **config.get("OPTIONS", {}))
        except Exception as exc:  # the message names the missing option
            errors.append(Error(
                f'SMS_SERVICE["BACKENDS"]["{alias}"] cannot be built: {exc}',
                id="sms_service.E003",
            ))
    errors += _check_twilio(backends)
    for channel, alias in app_settings.CHANNEL_BACKENDS.items():
        if alias not in backends:
            errors.append(Error(
                f'SMS_SERVICE["CHANNEL_BACKENDS"]["{channel}"] names unknown alias {alias!r}.',
                id="sms_service.E004",
            ))
    ttl, max_ttl = app_settings.CODE_TTL_MINUTES, app_settings.CODE_MAX_TTL_MINUTES
    if not (isinstance(ttl, int) and isinstance(max_ttl, int) and 1 <= ttl <= max_ttl <= 30):
        errors.append(Error(
            'SMS_SERVICE["CODE_TTL_MINUTES"] must be between 1 and CODE_MAX_TTL_MINUTES (≤ 30).',
            id="sms_service.E005",
        ))
    if app_settings.CODE_LENGTH < 6:
        errors.append(Error('SMS_SERVICE["CODE_LENGTH"] must be at least 6.', id="sms_service.E006"))
    if app_settings.RATE_LIMIT_CACHE not in settings.CACHES:
        errors.append(Error(
            f'SMS_SERVICE["RATE_LIMIT_CACHE"] names unknown cache {app_settings.RATE_LIMIT_CACHE!r}.',
            id="sms_service.E007",
        ))
    elif "LocMemCache" in settings.CACHES[app_settings.RATE_LIMIT_CACHE]["BACKEND"] and not settings.DEBUG:
        errors.append(Warning(
            "Sending limits use a process-local cache: they do not hold across processes.",
            hint="Point the cache at Redis in production (CACHE_URL / REDIS_URL).",
            id="sms_service.W001",
        ))
    return errors


def _check_twilio(backends: dict) -> list:
    """Twilio aliases: calls need a caller number; receipts need a public URL."""
    found = []
    voice_alias = app_settings.CHANNEL_BACKENDS.get("voice", "default")
    for alias, config in backends.items():
        if not str(config.get("BACKEND", "")).endswith("twilio.TwilioBackend"):
            continue
        options = config.get("OPTIONS", {})
        if alias == voice_alias and not options.get("FROM_NUMBER"):
            found.append(Error(
                f'SMS_SERVICE["BACKENDS"]["{alias}"] sends voice codes through Twilio, '
                "which places calls from a number.",
                hint=f'Set SMS_SERVICE["BACKENDS"]["{alias}"]["OPTIONS"]["FROM_NUMBER"].',
                id="sms_service.E008",
            ))
        if not app_settings.PUBLIC_BASE_URL:
            found.append(Warning(
                f'SMS_SERVICE["BACKENDS"]["{alias}"] is Twilio but SMS_SERVICE["PUBLIC_BASE_URL"] '
                "is empty: no status callbacks, messages stay 'accepted' until polled.",
                id="sms_service.W002",
            ))
    return found
