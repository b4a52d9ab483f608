"""Sending limits over the shared cache, failing closed.

Three kinds of limit, each a key in the rate-limit cache
(``SMS_SERVICE["RATE_LIMIT_CACHE"]``):

* interval – at most one event per ``seconds`` for a key (:func:`take_interval`);
* window – at most ``limit`` events per fixed window of ``seconds``, windows
  aligned to the epoch (:func:`take_window`);
* rolling – at most ``limit`` events per rolling ``seconds``, for one or more
  windows on the same key (:func:`take_rolling`).

:func:`check_send` applies every limit of one message, in a fixed order: per-IP
windows, per-prefix windows, then the per-number limits (app interval, signature
interval, per-signature rolling day). SMS and voice share the per-number limits
(LeanCloud's per-signature minute covers every type, voice included; a voice
code counts against the signature it is sent for, by default the app's); voice
adds its own interval (checked first) and rolling windows.
The first limit that refuses decides the error (``SendTooFastError``, code 1, for
the 10-second app/number interval; ``SendTooFrequentError``, 601, otherwise) and
its ``retry_after`` in seconds. A cache that cannot be reached refuses the send
(``RateLimiterUnavailableError``): no SMS goes out without a working limiter.

Two engines share this interface.

**django-redis** (``django_redis.cache.RedisCache``, except the sharded client):
all the limits of one call run in one Lua script, so one round trip per
:func:`check_send`, and the script is atomic on the server. It is all-or-nothing:
every limit is checked first and only when all pass are they consumed, so **a
refused request consumes nothing** (no window counter is bumped, no interval is
started). Time is Redis's own (``TIME``), the same for every host. Intervals are
keys set with an expiry (retry after = remaining TTL); windows are counters,
``INCR`` with an expiry when created (retry after = time to the window's end);
rolling windows are **exact sorted sets** of send times (entries older than the
longest window dropped, retry after = the oldest counted entry + window − now).
Keys go through ``cache.make_key`` so ``KEY_PREFIX`` and ``VERSION`` apply; the
rolling sets use their own key suffix (``:zset``), so a switch from the generic
engine never meets an old log of the wrong type.

**Any other cache** (locmem, Django's own ``RedisCache``, memcached…) uses the
generic engine, one cache call after the other:

* interval – ``cache.add`` (SET NX with expiry), atomic;
* window – ``cache.add`` + ``cache.incr``, atomic; a refused event still counts;
* rolling – a list of timestamps under one key, a read-modify-write. It is only
  used behind an interval limit on the same key (one request per interval can
  reach it): the per-signature daily limits sit behind the one-per-minute limit,
  the voice hour and day limits behind the one-per-30-seconds limit.

The limits of one :func:`check_send` are taken one by one and a refusal stops
there, so limits taken before it stay consumed. Time is this process's clock
(tests move it with time_machine over a locmem cache).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.cache import BaseCache, caches

from .. import caching
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

INTERVAL = "interval"
WINDOW = "window"
ROLLING = "rolling"


@dataclass(frozen=True)
class Limit:
    """One limit to take: ``kind`` is :data:`INTERVAL`, :data:`WINDOW` or :data:`ROLLING`.

    ``seconds`` is the interval or window length; ``limit`` the events per window;
    ``windows`` the ``(seconds, limit)`` pairs of a rolling limit.
    """

    kind: str
    key: str
    error: type[SmsServiceError]
    seconds: int = 0
    limit: int = 0
    windows: tuple[tuple[int, int], ...] = ()


def _cache() -> BaseCache:
    return caches[app_settings.RATE_LIMIT_CACHE]


# --- key names (shared by both engines, except the rolling log) ---------------------


def interval_key(key: str) -> str:
    """Cache key (before ``make_key``) of an interval limit."""
    return _PREFIX + key


def window_key(key: str, seconds: int) -> str:
    """Cache key (before ``make_key``) of a window limit, without the window number.

    The generic engine appends ``:<window>`` before ``make_key``; the Redis engine
    appends it to the made key (the same name with Django's default key function).
    """
    return f"{_PREFIX}{key}:{seconds}"


def rolling_key(key: str) -> str:
    """Cache key (before ``make_key``) of a rolling limit's sorted set (Redis engine)."""
    return f"{_PREFIX}{key}:zset"


def _generic_log_key(key: str) -> str:
    return f"{_PREFIX}{key}:log"


# --- public primitives ---------------------------------------------------------------


def take_interval(key: str, seconds: int, error: type[SmsServiceError]) -> None:
    """Allow one event per ``seconds`` for ``key``; raise ``error`` otherwise."""
    take([Limit(INTERVAL, key, error, seconds=seconds)])


def take_window(key: str, seconds: int, limit: int, error: type[SmsServiceError]) -> None:
    """Allow ``limit`` events per fixed window of ``seconds`` for ``key``."""
    take([Limit(WINDOW, key, error, seconds=seconds, limit=limit)])


def take_rolling(
    key: str, windows: list[tuple[int, int]], error: type[SmsServiceError]
) -> None:
    """Allow at most ``limit`` events per rolling ``seconds`` for every window.

    On the generic engine, call only behind an interval limit on the same key (see
    the module notes); on django-redis it is atomic by itself.
    """
    take([Limit(ROLLING, key, error, windows=tuple(windows))])


class Counting(Protocol):
    """More counting for :func:`take` to do in the same round trip once every
    limit is taken: ``lua`` defines the Lua function ``count(o)``, which reads
    its arguments (``args``) from ``ARGV[o]`` on."""

    lua: str
    args: list[Any]


def take(limits: Sequence[Limit], then: Counting | None = None) -> Any:
    """Take ``limits`` in order; raise the first refusal's error with ``retry_after``.

    One atomic, all-or-nothing round trip on django-redis; one limit after the
    other elsewhere (see the module notes). ``then``: counting to run in that
    round trip once every limit is taken (on django-redis only): returns its
    result, or None when it did not run or failed.
    """
    if not limits and then is None:
        return None
    try:
        cache = _cache()
        client = caching.redis_client(cache)
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    if client is None:
        for limit in limits:
            _GENERIC[limit.kind](cache, limit)
        return None
    return _take_redis(cache, client, limits, then)


def check_send(
    *,
    app: App,
    phone: PhoneNumber,
    channel: str,
    kind: str,
    signature_id: int | None,
    client_ip: str | None,
    then: Counting | None = None,
) -> Any:
    """Apply every sending limit for one message, consuming the interval slots;
    ``then`` as for :func:`take` (its result is returned)."""
    return take(send_limits(app=app, phone=phone, channel=channel, kind=kind,
                            signature_id=signature_id, client_ip=client_ip), then)


def send_limits(
    *,
    app: App,
    phone: PhoneNumber,
    channel: str,
    kind: str,
    signature_id: int | None,
    client_ip: str | None,
) -> list[Limit]:
    """The limits :func:`check_send` takes for one message, in the order they apply."""
    settings = app_settings.RATE_LIMITS
    limits: list[Limit] = []
    if client_ip:
        for seconds, limit in settings.get("ip", []):
            limits.append(Limit(WINDOW, f"ip:{client_ip}", SendTooFrequentError,
                                seconds=seconds, limit=limit))
    for seconds, limit in settings.get("prefix", []):
        limits.append(Limit(WINDOW, f"prefix:{app.pk}:{phone.prefix}", SendTooFrequentError,
                            seconds=seconds, limit=limit))
    # One budget per number for SMS and voice alike: the 10-second app interval,
    # the per-signature minute and the per-signature day (a voice code counts
    # against the signature the caller chose for it, by default the app's).
    number = Limit(INTERVAL, f"app:{app.pk}:{phone.e164}", SendTooFastError,
                   seconds=settings["app_number_interval"])
    signature_number = f"sig:{app.pk}:{signature_id}:{phone.e164}"
    per_signature = Limit(INTERVAL, signature_number, SendTooFrequentError,
                          seconds=settings["signature_number_interval"])
    if channel == "voice":
        windows = sorted(settings["voice"])
        first_seconds, _ = windows[0]
        voice = f"voice:{app.pk}:{phone.e164}"
        # The voice interval first, so a repeated call is told 601 (voice's own
        # limit) rather than "SMS request too fast".
        limits += [Limit(INTERVAL, voice, SendTooFrequentError, seconds=first_seconds),
                   per_signature, number]
        if windows[1:]:
            limits.append(Limit(ROLLING, voice, SendTooFrequentError,
                                windows=tuple(windows[1:])))
        kind = MessageKind.VERIFICATION
    else:
        limits += [number, per_signature]
    daily = settings["signature_number_daily"].get(kind)
    if daily:
        # Notification and marketing share LeanCloud's "notification" quota.
        group = "verification" if kind == MessageKind.VERIFICATION else "notification"
        limits.append(Limit(ROLLING, f"{signature_number}:{group}", SendTooFrequentError,
                            windows=((86400, daily),)))
    return limits


def take_code_lookup(*, app: App, purpose: str) -> None:
    """Code-only lookups guess against every active code: keep them scarce."""
    take_window(
        f"lookup:{app.pk}:{purpose}", 60, app_settings.CODE_ONLY_LOOKUPS_PER_MINUTE,
        TooManyRequestsError,
    )


# --- generic engine: any Django cache --------------------------------------------------


def _generic_interval(cache: BaseCache, limit: Limit) -> None:
    now = time.time()
    full_key = interval_key(limit.key)
    try:
        if cache.add(full_key, now + limit.seconds, timeout=limit.seconds):
            return
        until = cache.get(full_key) or (now + limit.seconds)
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    raise limit.error(retry_after=max(1, math.ceil(until - now)))


def _generic_window(cache: BaseCache, limit: Limit) -> None:
    now = time.time()
    window = int(now // limit.seconds)
    full_key = f"{window_key(limit.key, limit.seconds)}:{window}"
    try:
        try:
            count = cache.incr(full_key)  # one round trip once the window exists
        except ValueError:
            cache.add(full_key, 0, timeout=limit.seconds + 1)
            count = cache.incr(full_key)
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    if count > limit.limit:
        raise limit.error(retry_after=max(1, math.ceil((window + 1) * limit.seconds - now)))


def _generic_rolling(cache: BaseCache, limit: Limit) -> None:
    now = time.time()
    longest = max(seconds for seconds, _ in limit.windows)
    full_key = _generic_log_key(limit.key)
    try:
        log = [t for t in (cache.get(full_key) or []) if t > now - longest]
        for seconds, count in limit.windows:
            recent = [t for t in log if t > now - seconds]
            if len(recent) >= count:
                oldest = recent[-count]
                raise limit.error(retry_after=max(1, math.ceil(oldest + seconds - now)))
        log.append(now)
        cache.set(full_key, log, timeout=longest)
    except SmsServiceError:
        raise
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc


_GENERIC = {INTERVAL: _generic_interval, WINDOW: _generic_window, ROLLING: _generic_rolling}


# --- Redis engine: django-redis, one Lua script per call ----------------------------

# KEYS[i] is the key of limit i (for a window, the made key of window_key(); the
# script appends ":<window number>"). ARGV[1] is a JSON list, one entry per key:
# ["interval", seconds] | ["window", seconds, limit] | ["rolling", [[seconds, limit], ...]].
# ARGV[2] makes sorted-set members unique. Returns 0 when everything was taken, or
# {i, retry_after_seconds} for the first limit that refused (nothing taken).
#
# Times are integer microseconds; they reach Redis as numbers (exact: Redis formats
# them with 17 significant digits), never through Lua's tostring (14 digits).
_LIMITS_LUA = """
local limits = cjson.decode(ARGV[1])
local token = ARGV[2]
local t = redis.call('TIME')
local US = 1000000
local now = tonumber(t[1]) * US + tonumber(t[2])

local function wait(us)
  return math.max(1, math.ceil(us / US))
end

-- Check every limit; remember what taking it needs.
local plan = {}
for i, limit in ipairs(limits) do
  local kind, key = limit[1], KEYS[i]
  if kind == 'interval' then
    local pttl = redis.call('PTTL', key)
    if pttl >= 0 then
      return {i, wait(pttl * 1000)}
    elseif pttl == -1 then
      return {i, limit[2]}  -- no expiry: only set by hand; refuse a full interval
    end
  elseif kind == 'window' then
    local size = limit[2] * US
    local window = math.floor(now / size)
    local left = (window + 1) * size - now
    key = key .. ':' .. string.format('%d', window)
    if tonumber(redis.call('GET', key) or '0') >= limit[3] then
      return {i, wait(left)}
    end
    plan[i] = {key, left}
  else
    local longest = 0
    for _, w in ipairs(limit[2]) do
      longest = math.max(longest, w[1])
    end
    -- Entries strictly inside a window have score > now - seconds, i.e. >= now - seconds + 1.
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - longest * US)
    for _, w in ipairs(limit[2]) do
      local since = now - w[1] * US + 1
      if redis.call('ZCOUNT', key, since, '+inf') >= w[2] then
        -- Free again when the w[2]-th newest entry leaves the window.
        local entry = redis.call('ZREVRANGEBYSCORE', key, '+inf', since,
                                 'WITHSCORES', 'LIMIT', w[2] - 1, 1)
        return {i, wait(tonumber(entry[2]) + w[1] * US - now)}
      end
    end
    plan[i] = longest
  end
end

-- Everything passed: take it all.
for i, limit in ipairs(limits) do
  local kind, key = limit[1], KEYS[i]
  if kind == 'interval' then
    -- The value (end of the interval, epoch seconds) is what the generic engine reads.
    redis.call('SET', key, math.ceil(now / US) + limit[2], 'PX', limit[2] * 1000)
  elseif kind == 'window' then
    local window_key, left = plan[i][1], plan[i][2]
    if redis.call('INCR', window_key) == 1 then
      redis.call('PEXPIRE', window_key, math.ceil(left / 1000) + 1000)
    end
  else
    redis.call('ZADD', key, now, string.format('%d', now) .. ':' .. token .. ':' .. i)
    redis.call('PEXPIRE', key, plan[i] * 1000)
  end
end
"""
_LUA = _LIMITS_LUA + "return 0\n"

#: After the limits, more counting given to take() (its Lua defines count(o),
#: which reads its arguments from ARGV[o] on): {0, its result}, or {0, nil}
#: when it failed (the limits stay taken; the caller counts another way).
_THEN_COUNT = """
local ok, counted = pcall(count, 3)
if ok then return {0, counted} end
return {0, false}
"""

_scripts: dict[str, Any] = {}  # redis.commands.core.Script by the counting it ends with
_script_lock = threading.Lock()


def _get_script(client: Any, then_lua: str = "") -> Any:
    script = _scripts.get(then_lua)
    if script is None:
        with _script_lock:
            script = _scripts.get(then_lua)
            if script is None:
                # register_script only hashes the source; the script is loaded on a
                # server the first time EVALSHA there answers NOSCRIPT.
                source = then_lua + _LIMITS_LUA + _THEN_COUNT if then_lua else _LUA
                script = _scripts[then_lua] = client.register_script(source)
    return script


def _redis_keys(cache: BaseCache, limit: Limit) -> str:
    if limit.kind == INTERVAL:
        return str(cache.make_key(interval_key(limit.key)))
    if limit.kind == WINDOW:
        return str(cache.make_key(window_key(limit.key, limit.seconds)))
    return str(cache.make_key(rolling_key(limit.key)))


def _redis_spec(limit: Limit) -> list[Any]:
    if limit.kind == INTERVAL:
        return [INTERVAL, limit.seconds]
    if limit.kind == WINDOW:
        return [WINDOW, limit.seconds, limit.limit]
    return [ROLLING, [list(window) for window in limit.windows]]


def _take_redis(cache: BaseCache, client: Any, limits: Sequence[Limit],
                then: Counting | None = None) -> Any:
    # An interval of 0 s limits nothing (as on the generic engine), and Redis
    # refuses a zero expiry.
    limits = [limit for limit in limits if limit.kind != INTERVAL or limit.seconds > 0]
    if not limits and then is None:
        return None
    keys = [_redis_keys(cache, limit) for limit in limits]
    spec = json.dumps([_redis_spec(limit) for limit in limits], separators=(",", ":"))
    args = [spec, uuid.uuid4().hex, *(then.args if then is not None else ())]
    try:
        result = _get_script(client, then.lua if then is not None else "")(
            keys=keys, args=args, client=client)
    except Exception as exc:
        raise RateLimiterUnavailableError() from exc
    if result == 0:
        return None
    index = int(result[0])
    if index == 0:
        return result[1]  # every limit taken; what the counting returned (None: failed)
    raise limits[index - 1].error(retry_after=int(result[1]))
