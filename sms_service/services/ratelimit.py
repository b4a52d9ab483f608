"""Sending limits (R-RATE) over the shared cache, failing closed.

Two primitives, both atomic on Redis (and on the locmem cache within a process):

* :func:`take_interval` – at most one event per ``seconds`` for a key
  (``cache.add``, i.e. SET NX with expiry);
* :func:`take_window` – at most ``limit`` events per fixed window
  (``cache.add`` + ``cache.incr``).

Rolling 24-hour counts per signature and per voice number are read from the
message table instead (exact, and serialised by the interval limits in front of
them). Every refusal carries ``retry_after`` in seconds.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.core.cache import caches
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import (
    RateLimiterUnavailableError,
    SendTooFastError,
    SendTooFrequentError,
    SmsServiceError,
    TooManyRequestsError,
)
from ..models import App, Message, MessageKind
from ..phone import PhoneNumber

_PREFIX = "sms_service:rl:"


def _cache():
    return caches[app_settings.RATE_LIMIT_CACHE]


def take_interval(key: str, seconds: int, error: type[SmsServiceError]) -> None:
    """Allow one event per ``seconds`` for ``key``; raise ``error`` otherwise."""
    now = time.time()
    try:
        cache = _cache()
        if cache.add(_PREFIX + key, now + seconds, timeout=seconds):
            return
        until = cache.get(_PREFIX + key) or (now + seconds)
    except SmsServiceError:
        raise
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    raise error(retry_after=max(1, math.ceil(until - now)))


def take_window(key: str, seconds: int, limit: int, error: type[SmsServiceError]) -> None:
    """Allow ``limit`` events per fixed window of ``seconds`` for ``key``."""
    now = time.time()
    window = int(now // seconds)
    full_key = f"{_PREFIX}{key}:{seconds}:{window}"
    try:
        cache = _cache()
        cache.add(full_key, 0, timeout=seconds + 1)
        count = cache.incr(full_key)
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    if count > limit:
        raise error(retry_after=max(1, math.ceil((window + 1) * seconds - now)))


def check_rolling(
    *, count: int, limit: int, oldest_at, seconds: int, error: type[SmsServiceError]
) -> None:
    if count >= limit:
        retry = (oldest_at + timedelta(seconds=seconds) - timezone.now()).total_seconds()
        raise error(retry_after=max(1, math.ceil(retry)))


def check_send(
    *,
    app: App,
    phone: PhoneNumber,
    channel: str,
    kind: str,
    signature_id: int | None,
    client_ip: str | None,
) -> None:
    """Apply every sending limit for one message, consuming the interval slots."""
    limits = app_settings.RATE_LIMITS
    if client_ip:
        for seconds, limit in limits.get("ip", []):
            take_window(f"ip:{client_ip}", seconds, limit, SendTooFrequentError)
    for seconds, limit in limits.get("prefix", []):
        take_window(f"prefix:{app.pk}:{phone.prefix}", seconds, limit, SendTooFrequentError)
    if channel == "voice":
        _check_voice(app=app, phone=phone, limits=limits)
        return
    take_interval(f"app:{app.pk}:{phone.e164}", limits["app_number_interval"], SendTooFastError)
    take_interval(
        f"sig:{app.pk}:{signature_id}:{phone.e164}",
        limits["signature_number_interval"],
        SendTooFrequentError,
    )
    daily = limits["signature_number_daily"].get(kind)
    if daily:
        kinds = _daily_group(kind)
        _check_recent(
            Message.objects.filter(
                app=app, phone=phone.e164, signature_id=signature_id, kind__in=kinds,
                channel="sms",
            ),
            seconds=86400,
            limit=daily,
        )


def _daily_group(kind: str) -> list[str]:
    if kind == MessageKind.VERIFICATION:
        return [MessageKind.VERIFICATION]
    return [MessageKind.NOTIFICATION, MessageKind.MARKETING]


def _check_voice(*, app: App, phone: PhoneNumber, limits: dict) -> None:
    windows = sorted(limits["voice"])
    first_seconds, _ = windows[0]
    take_interval(f"voice:{app.pk}:{phone.e164}", first_seconds, SendTooFrequentError)
    voice = Message.objects.filter(app=app, phone=phone.e164, channel="voice")
    for seconds, limit in windows[1:]:
        _check_recent(voice, seconds=seconds, limit=limit)


def _check_recent(queryset, *, seconds: int, limit: int) -> None:
    since = timezone.now() - timedelta(seconds=seconds)
    recent = list(
        queryset.filter(created_at__gt=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) >= limit:
        check_rolling(
            count=len(recent), limit=limit, oldest_at=recent[-1], seconds=seconds,
            error=SendTooFrequentError,
        )


def take_code_lookup(*, app: App, purpose: str) -> None:
    """Code-only lookups guess against every active code: keep them scarce (R-CODE-9)."""
    take_window(
        f"lookup:{app.pk}:{purpose}", 60, app_settings.CODE_ONLY_LOOKUPS_PER_MINUTE,
        TooManyRequestsError,
    )
