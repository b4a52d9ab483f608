"""Backend loading by alias: ``SMS_SERVICE["BACKENDS"][alias]``."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from ..conf import app_settings
from ..exceptions import SmsServiceConfigurationError
from .base import BaseSmsBackend


def backend_alias_for(channel: str) -> str:
    return app_settings.CHANNEL_BACKENDS.get(channel, "default")


def get_backend(alias: str = "default", **kwargs: Any) -> BaseSmsBackend:
    """Instantiate the backend configured under ``alias``; kwargs override OPTIONS."""
    try:
        config = app_settings.BACKENDS[alias]
    except KeyError:
        raise SmsServiceConfigurationError(
            f'SMS_SERVICE["BACKENDS"] has no alias {alias!r}'
        ) from None
    try:
        backend_class = import_string(config["BACKEND"])
    except (ImportError, KeyError) as exc:
        raise SmsServiceConfigurationError(
            f'SMS_SERVICE["BACKENDS"]["{alias}"]["BACKEND"] cannot be imported: {exc}'
        ) from exc
    options = {**config.get("OPTIONS", {}), **kwargs}
    return backend_class(alias=alias, **options)
