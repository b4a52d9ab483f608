"""Sending limits (R-RATE) over the shared cache, failing closed.

Two primitives, both atomic on Redis (and on the locmem cache within a process):

* :func:`take_interval` – at most one event per ``seconds`` for a key
  (``cache.add``, i.e. SET NX with expiry);
* :func:`take_window` – at most ``limit`` events per fixed window
  (``cache.add`` + ``cache.incr``).

* :func:`take_rolling` – at most ``limit`` events per rolling window, from a log
  of timestamps kept under one key. A read-modify-write, so it is only used
  behind an interval limit on the same key (one request per interval can reach
  it): the per-signature daily limits sit behind the one-per-minute limit, the
  voice hour and day limits behind the one-per-30-seconds limit.

Every refusal carries ``retry_after`` in seconds.
"""

from __future__ import annotations

import math
import time

from django.core.cache import caches

from ..conf import app_settings
from ..exceptions import (
    RateLimiterUnavailableError,
    SendTooFastError,
    SendTooFrequentError,
    SmsServiceError,
    TooManyRequestsError,
)
from ..models import App, MessageKind
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
        try:
            count = cache.incr(full_key)  # one round trip once the window exists
        except ValueError:
            cache.add(full_key, 0, timeout=seconds + 1)
            count = cache.incr(full_key)
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    if count > limit:
        raise error(retry_after=max(1, math.ceil((window + 1) * seconds - now)))


def take_rolling(
    key: str, windows: list[tuple[int, int]], error: type[SmsServiceError]
) -> None:
    """Allow at most ``limit`` events per rolling ``seconds`` for every window.

    Call only behind an interval limit on the same key (see the module notes).
    """
    now = time.time()
    longest = max(seconds for seconds, _ in windows)
    full_key = f"{_PREFIX}{key}:log"
    try:
        cache = _cache()
        log = [t for t in (cache.get(full_key) or []) if t > now - longest]
        for seconds, limit in windows:
            recent = [t for t in log if t > now - seconds]
            if len(recent) >= limit:
                oldest = recent[-limit]
                raise error(retry_after=max(1, math.ceil(oldest + seconds - now)))
        log.append(now)
        cache.set(full_key, log, timeout=longest)
    except SmsServiceError:
        raise
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc


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
        # Notification and marketing share LeanCloud's "notification" quota.
        group = "verification" if kind == MessageKind.VERIFICATION else "notification"
        take_rolling(f"sig:{app.pk}:{signature_id}:{phone.e164}:{group}", [(86400, daily)],
                     SendTooFrequentError)


def _check_voice(*, app: App, phone: PhoneNumber, limits: dict) -> None:
    windows = sorted(limits["voice"])
    first_seconds, _ = windows[0]
    take_interval(f"voice:{app.pk}:{phone.e164}", first_seconds, SendTooFrequentError)
    if windows[1:]:
        take_rolling(f"voice:{app.pk}:{phone.e164}", windows[1:], SendTooFrequentError)


def take_code_lookup(*, app: App, purpose: str) -> None:
    """Code-only lookups guess against every active code: keep them scarce (R-CODE-9)."""
    take_window(
        f"lookup:{app.pk}:{purpose}", 60, app_settings.CODE_ONLY_LOOKUPS_PER_MINUTE,
        TooManyRequestsError,
    )
