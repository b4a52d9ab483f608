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

from typing import TYPE_CHECKING

from .conf import app_settings

if TYPE_CHECKING:
    from django.http import HttpRequest


class DefaultSmsAdapter:
    """Default behaviour. Subclass it and name the subclass in ``ADAPTER``."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        #: The current request when the caller has one, else None.
        self.request = request

    # --- Sending --------------------------------------------------------------

    # --- Phone users -----------------------------------------------------------


def get_adapter(request: HttpRequest | None = None) -> DefaultSmsAdapter:
    """An instance of the configured adapter class (``SMS_SERVICE["ADAPTER"]``)."""
    return app_settings.ADAPTER(request=request)
