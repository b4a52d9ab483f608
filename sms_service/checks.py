"""System checks for bad configuration (ids sms_service.E001…, W001…)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections
from django.utils.module_loading import import_string

from . import segments
from .backends.base import CHANNELS
from .conf import DEFAULTS, IMPORT_STRINGS, app_settings
from .models.app import MAX_CODE_LENGTH
from .services.billing import OVERDUE_POLICIES

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
    errors: list[CheckMessage] = []
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

logger = logging.getLogger(__name__)


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    errors: list[CheckMessage] = []
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
    if not (isinstance(ttl, int) and isinstance(max_ttl, int) and 1 <= ttl <= max_ttl):
        errors.append(Error(
            'SMS_SERVICE["CODE_TTL_MINUTES"] must be between 1 and CODE_MAX_TTL_MINUTES.',
            id="sms_service.E005",
        ))
    length = app_settings.CODE_LENGTH
    if not (isinstance(length, int) and 6 <= length <= MAX_CODE_LENGTH):
        errors.append(Error(
            f'SMS_SERVICE["CODE_LENGTH"] must be between 6 and {MAX_CODE_LENGTH}.',
            id="sms_service.E006",
        ))
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


@register(Tags.compatibility)
def check_broker(app_configs=None, **kwargs):
    """The Celery broker's transport must import (its client library and what that
    imports): otherwise every send answers 200 and stays ``queued``."""
    if not app_settings.ASYNC:
        return []
    errors: list[CheckMessage] = []
    for url in _broker_urls():
        scheme = url.split("://", 1)[0]
        try:
            from kombu import Connection

            # Building the transport imports its module and client library;
            # nothing connects.
            Connection(url).transport  # noqa: B018
        except Exception as exc:
            errors.append(Error(
                f"The Celery broker transport {scheme!r} cannot be loaded: "
                f"{type(exc).__name__}: {exc}",
                hint="Install the package's extra for your broker, e.g. "
                     "pip install 'django-sms-service[redis]' for redis:// brokers.",
                id="sms_service.E018",
            ))
    return errors


def _broker_urls() -> list[str]:
    """The broker addresses of the settings and of the current Celery app."""
    from celery import current_app

    urls = [getattr(settings, "CELERY_BROKER_URL", "") or ""]
    try:
        urls.append(current_app.conf.broker_write_url or current_app.conf.broker_url or "")
    except Exception:  # an unconfigured Celery app: the settings tell enough
        logger.debug("no broker URL from the current Celery app", exc_info=True)
    found: list[str] = []
    for entry in urls:
        for url in str(entry).split(";"):  # kombu's fail-over list
            url = url.strip()
            if "://" in url and url not in found:
                found.append(url)
    return found


def _check_twilio(backends: dict) -> list:
    """Twilio aliases: calls need a caller number; receipts need a public URL."""
    found: list[CheckMessage] = []
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


@register(Tags.compatibility)
def check_setting_values(app_configs=None, **kwargs):
    """Unknown keys, wrong types and out-of-range values of SMS_SERVICE."""
    errors = _unknown_and_mistyped()
    if errors:
        return errors  # the value checks below assume the types are right
    errors += _check_choices()
    errors += _check_prices()
    errors += _check_windows()
    errors += _check_secret_keys()
    return errors


def _unknown_and_mistyped() -> list:
    found: list[CheckMessage] = []
    for name, value in app_settings.user_settings.items():
        if name not in DEFAULTS:
            found.append(Error(f'SMS_SERVICE["{name}"] is not a setting of sms_service.',
                               hint="See the settings table of the README.",
                               id="sms_service.E011"))
            continue
        default = DEFAULTS[name]
        expected = _TYPES.get(type(default))
        if name in IMPORT_STRINGS or expected is None or value is None and name in _NULLABLE:
            continue
        if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
            found.append(Error(
                f'SMS_SERVICE["{name}"] must be {_TYPE_NAMES[expected]}, not {value!r}.',
                id="sms_service.E012",
            ))
        elif expected is int and value < 0:
            found.append(Error(f'SMS_SERVICE["{name}"] must not be negative.',
                               id="sms_service.E012"))
    return found


#: Settings whose None means "off".
_NULLABLE = frozenset({"SIGN_TIMESTAMP_WINDOW_SECONDS"})

#: The type a setting's value must have, by the type of its default.
_TYPES: dict[type, Any] = {bool: bool, int: int, str: str, dict: dict, list: (list, tuple)}
_TYPE_NAMES: dict[Any, str] = {bool: "True or False", int: "a whole number", str: "a string",
                               dict: "a dict", (list, tuple): "a list"}


def _check_choices() -> list:
    found: list[CheckMessage] = []
    if app_settings.OVERDUE_POLICY not in OVERDUE_POLICIES:
        found.append(Error(
            f'SMS_SERVICE["OVERDUE_POLICY"] must be one of {", ".join(OVERDUE_POLICIES)}, '
            f"not {app_settings.OVERDUE_POLICY!r}.",
            id="sms_service.E013",
        ))
    for name in ("SEGMENT_MODE_DOMESTIC", "SEGMENT_MODE_INTERNATIONAL"):
        if getattr(app_settings, name) not in segments.MODES:
            found.append(Error(
                f'SMS_SERVICE["{name}"] must be one of {", ".join(segments.MODES)}, '
                f"not {getattr(app_settings, name)!r}.",
                id="sms_service.E013",
            ))
    return found


def _check_prices() -> list:
    found: list[CheckMessage] = []
    for channel, price in app_settings.DEFAULT_UNIT_PRICES.items():
        try:
            valid = channel in CHANNELS and Decimal(str(price)) >= 0 and not isinstance(
                price, float
            )
        except (InvalidOperation, ValueError):
            valid = False
        if not valid:
            found.append(Error(
                f'SMS_SERVICE["DEFAULT_UNIT_PRICES"][{channel!r}] = {price!r}: the keys are '
                f'{" and ".join(CHANNELS)}, the values decimal strings ≥ 0 such as "0.05".',
                id="sms_service.E014",
            ))
    return found


def _check_windows() -> list:
    """RATE_LIMITS and USER_IP_LIMITS: the shape the limiter reads."""
    limits = app_settings.RATE_LIMITS
    found: list[str] = []
    for key in ("app_number_interval", "signature_number_interval"):
        if not _whole(limits.get(key), minimum=0):
            found.append(f'["{key}"] must be a number of seconds')
    daily = limits.get("signature_number_daily")
    if not (isinstance(daily, dict) and all(_whole(v, minimum=1) for v in daily.values())):
        found.append('["signature_number_daily"] must map message kinds to counts ≥ 1')
    for key in ("voice", "ip", "prefix"):
        if not _windows(limits.get(key)):
            found.append(f'["{key}"] must be a list of (seconds, count) pairs ≥ 1')
    unknown = set(limits) - set(DEFAULTS["RATE_LIMITS"])
    if unknown:
        found.append(f" has unknown keys {sorted(unknown)}")
    errors = [Error(f'SMS_SERVICE["RATE_LIMITS"]{problem}.', id="sms_service.E015")
              for problem in found]
    if not _windows(app_settings.USER_IP_LIMITS):
        errors.append(Error('SMS_SERVICE["USER_IP_LIMITS"] must be a list of (seconds, count) '
                            "pairs ≥ 1.", id="sms_service.E015"))
    return errors


def _whole(value: Any, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _windows(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2
        and all(_whole(n, minimum=1) for n in pair)
        for pair in value
    )


def _check_secret_keys() -> list:
    keys = app_settings.SECRET_KEYS
    if all(isinstance(key, str) and len(key) >= 32 for key in keys):
        return []
    return [Error('SMS_SERVICE["SECRET_KEYS"] must be a list of strings of at least 32 '
                  "characters, the signing key first.",
                  hint="Generate one with django.core.management.utils.get_random_secret_key().",
                  id="sms_service.E016")]


@register(Tags.compatibility)
def check_database(app_configs=None, **kwargs):
    """The written-out SQL (INSERT ... ON CONFLICT ... RETURNING) needs PostgreSQL or
    SQLite 3.35 or newer (known without connecting)."""
    found: list[CheckMessage] = []
    for alias in settings.DATABASES:
        connection = connections[alias]
        vendor = connection.vendor
        if vendor == "postgresql":
            continue
        if vendor == "sqlite":
            import sqlite3

            if sqlite3.sqlite_version_info >= (3, 35):
                continue
            problem = f"SQLite {sqlite3.sqlite_version} is older than 3.35"
        else:
            problem = f"{vendor} is not supported"
        found.append(Error(
            f"Database {alias!r}: {problem}; sms_service runs on PostgreSQL or SQLite ≥ 3.35.",
            id="sms_service.E017",
        ))
    return found


@register(Tags.security)
def check_password_hashers(app_configs=None, **kwargs):
    """LeanCloud's hasher only checks imported passwords: never the default one."""
    hashers = list(getattr(settings, "PASSWORD_HASHERS", []))
    if hashers and hashers[0] == "sms_service.hashers.LeanCloudPasswordHasher":
        return [Error(
            "LeanCloudPasswordHasher is first in PASSWORD_HASHERS: every new password "
            "would be stored with LeanCloud's fast SHA-512 scheme.",
            hint="List it after your default hasher; it only checks imported passwords.",
            id="sms_service.E019",
        )]
    return []
