"""Backend loading by alias: ``SMS_SERVICE["BACKENDS"][alias]``.

One instance per alias per process: :func:`get_backend` builds it on first use
and hands the same object out afterwards, so its connections (the Twilio
backend's HTTP session) are reused across messages. The instances are closed and
forgotten when ``SMS_SERVICE`` changes (``setting_changed``, as
``override_settings`` sends) and forgotten in a forked child process, which must
not share its parent's sockets.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ..conf import app_settings
from ..exceptions import SmsServiceConfigurationError
from .base import BaseSmsBackend

logger = logging.getLogger(__name__)

_instances: dict[str, BaseSmsBackend] = {}
_lock = threading.Lock()


def get_backend(alias: str = "default", **kwargs: Any) -> BaseSmsBackend:
    """The backend configured under ``alias``, shared within this process.

    With keyword arguments (which override ``OPTIONS``) a new instance is built
    and not shared; the caller closes it.
    """
    if kwargs:
        return build_backend(alias, **kwargs)
    backend = _instances.get(alias)
    if backend is None:
        with _lock:
            backend = _instances.get(alias)
            if backend is None:
                backend = _instances[alias] = build_backend(alias)
    return backend


def build_backend(alias: str, **kwargs: Any) -> BaseSmsBackend:
    """A new instance of the backend configured under ``alias``."""
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


def close_backends() -> None:
    """Close and forget every shared instance (the next use builds new ones)."""
    with _lock:
        backends = list(_instances.values())
        _instances.clear()
    for backend in backends:
        try:
            backend.close()
        except Exception:
            logger.exception("closing backend %r failed", backend.alias)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SMS_SERVICE":
        close_backends()


setting_changed.connect(_on_setting_changed)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_instances.clear)
