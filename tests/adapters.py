"""Adapters a project might write, used by the tests through SMS_SERVICE["ADAPTER"]."""

from __future__ import annotations

from typing import Any, ClassVar

from sms_service.adapter import DefaultSmsAdapter


class ScriptedCodesAdapter(DefaultSmsAdapter):
    """Hands out the codes in :attr:`draws`, in order (tests of clashes and replacement)."""

    draws: ClassVar[list[str]] = []

    def generate_code(self, *, app: Any, phone: str, purpose: str, length: int) -> str:
        return self.draws.pop(0)


class ProjectAdapter(DefaultSmsAdapter):
    """A project's adapter overriding every sending hook."""

    #: (event, subject, context) of every owner notification, oldest first.
    notified: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def generate_code(self, *, app: Any, phone: str, purpose: str, length: int) -> str:
        # The last digits of the number, repeated: predictable, so only for tests.
        return (phone[-4:] * length)[:length]

    def default_text(self, *, app: Any, name: str, op: str | None, code: str, ttl: int,
                     language: str) -> str:
        return f"[{language}] {name}: {code} ({ttl} min)"

    def get_backend_aliases(self, *, app: Any, phone: str, channel: str,
                            kind: str) -> list[str]:
        if phone.startswith("+1"):
            return ["north-america", "default"]
        return super().get_backend_aliases(app=app, phone=phone, channel=channel, kind=kind)

    def get_client_ip(self, *, request: Any) -> str | None:
        return request.META.get("HTTP_X_REAL_IP") or None

    def notify_owner(self, *, app: Any, subject: str, body: str, event: str,
                     context: dict[str, Any]) -> None:
        self.notified.append((event, subject, context))


class NoHooksAdapter:
    """Not a DefaultSmsAdapter subclass, and without the hooks."""

    def __init__(self, request: Any = None) -> None:
        self.request = request


class ShortCodeAdapter(DefaultSmsAdapter):
    def generate_code(self, *, app: Any, phone: str, purpose: str, length: int) -> str:
        return "123"
