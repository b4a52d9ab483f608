"""Times as people read them: in the active time zone, with the zone's name."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def local_time(value: datetime | None, *, seconds: bool = False) -> str:
    """``2026-11-30 13:05 CST``: ``value`` in the active time zone, named."""
    if value is None:
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    local = timezone.localtime(value)
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local.strftime(pattern)} {local.tzname()}"


def zone_name() -> str:
    """The active time zone's name, e.g. ``Asia/Shanghai``."""
    return timezone.get_current_timezone_name()
