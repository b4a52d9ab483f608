"""The Celery tasks the services hand work to, looked up by name.

Services sit below :mod:`sms_service.tasks` and never import it: each task the
services enqueue registers itself here when ``tasks.py`` is imported (the app's
``ready()`` imports it), and the services look it up when they enqueue.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..exceptions import SmsServiceConfigurationError

T = TypeVar("T")

_TASKS: dict[str, Any] = {}


def register(task: T) -> T:
    """Register a Celery task under its function name (use as a decorator)."""
    name: str = task.name  # type: ignore[attr-defined]
    _TASKS[name.rpartition(".")[2]] = task
    return task


def get(name: str) -> Any:
    """The task registered as ``name`` (e.g. ``"deliver_message"``)."""
    try:
        return _TASKS[name]
    except KeyError:
        raise SmsServiceConfigurationError(
            f"no Celery task {name!r} is registered: is sms_service in INSTALLED_APPS?"
        ) from None
