"""A circuit breaker per backend alias, shared by every process through the cache.

Closed: calls go through; temporary failures are counted in a window. After
``CIRCUIT_BREAKER["FAILURES"]`` of them within ``WINDOW_SECONDS`` the circuit
*opens*: the backend is skipped (the outbox fails over to the next alias on the
route) for ``COOL_DOWN_SECONDS``. Then it is *half-open*: one caller, in any
process, gets to probe; a success closes the circuit, a failure opens it again.

The state lives in ``CIRCUIT_CACHE`` (Redis in production) so that every worker
sees the same circuit. A cache that fails is treated as a closed circuit: the
breaker never stops sending on its own account.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import caches

from .. import caching, signals
from ..conf import app_settings

logger = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


def _cache():
    return caches[app_settings.CIRCUIT_CACHE]


def _config() -> tuple[int, int, int]:
    config = app_settings.CIRCUIT_BREAKER
    return (int(config.get("FAILURES", 5)), int(config.get("WINDOW_SECONDS", 60)),
            int(config.get("COOL_DOWN_SECONDS", 60)))


def _keys(alias: str) -> tuple[str, str, str]:
    base = f"sms_service:circuit:{alias}"
    return f"{base}:failures", f"{base}:open_until", f"{base}:probe"


def state(alias: str) -> str:
    """closed, open or half-open (cool-down over, a probe may go)."""
    try:
        open_until = _open_until(alias)
    except Exception:  # noqa: BLE001 - see the module docstring
        logger.exception("circuit cache unavailable; treating %r as closed", alias)
        return CLOSED
    if open_until is None:
        return CLOSED
    return OPEN if time.time() < open_until else HALF_OPEN


def _open_until(alias: str) -> float | None:
    """When the open circuit's cool-down ends, or None when it is closed. Kept
    in this process for ``PROCESS_CACHE_SECONDS``, like the apps: a circuit
    opened or closed by another process is seen here within those seconds,
    by this process at once."""
    _, open_key, _ = _keys(alias)
    if app_settings.PROCESS_CACHE_SECONDS > 0:
        known = caching.process_cache.get(open_key)
        if known is not None:
            return known or None  # 0: closed
    open_until = _cache().get(open_key)
    _remember(alias, open_until)
    return open_until


def _remember(alias: str, open_until: float | None) -> None:
    seconds = app_settings.PROCESS_CACHE_SECONDS
    if seconds > 0:
        caching.process_cache.set(_keys(alias)[1], open_until or 0, seconds)


def allow(alias: str) -> bool:
    """Whether a call to ``alias`` may go now. In half-open state exactly one
    caller across processes gets True (the probe) until it reports back."""
    current = state(alias)
    if current == CLOSED:
        return True
    if current == OPEN:
        return False
    _, _, probe_key = _keys(alias)
    _, _, cool_down = _config()
    try:
        return bool(_cache().add(probe_key, 1, timeout=cool_down))
    except Exception:  # noqa: BLE001
        return True


def record_success(alias: str) -> None:
    """The provider took a call: close the circuit (one round trip on Redis)."""
    failures_key, open_key, probe_key = _keys(alias)
    cache = _cache()
    try:
        client = caching.redis_client(cache)
        if client is None:
            was_open = cache.get(open_key) is not None
            cache.delete_many([failures_key, open_key, probe_key])
        else:
            pipe = client.pipeline(transaction=False)
            pipe.delete(cache.make_key(open_key))
            pipe.delete(cache.make_key(failures_key), cache.make_key(probe_key))
            was_open = bool(pipe.execute()[0])
    except Exception:  # noqa: BLE001
        return
    _remember(alias, None)
    if was_open:
        logger.info("circuit of backend %r closed", alias)
        signals.circuit_changed.send_robust(sender=None, alias=alias, state=CLOSED)


def record_failure(alias: str) -> str:
    """A temporary failure of ``alias`` (refused, 5xx before processing, connect
    failure); returns the circuit's state afterwards."""
    threshold, window, cool_down = _config()
    failures_key, open_key, probe_key = _keys(alias)
    cache = _cache()
    try:
        probing = cache.get(open_key) is not None
        if not probing:
            cache.add(failures_key, 0, timeout=window)
            count = cache.incr(failures_key)
            if count < threshold:
                return CLOSED
        # Threshold reached, or the half-open probe failed: open (again).
        open_until = time.time() + cool_down
        cache.set(open_key, open_until, timeout=None)
        cache.delete_many([failures_key, probe_key])
        _remember(alias, open_until)
    except ValueError:
        return CLOSED  # the counter expired between add and incr
    except Exception:  # noqa: BLE001
        logger.exception("circuit cache unavailable; %r stays closed", alias)
        return CLOSED
    logger.warning("circuit of backend %r opened for %s s", alias, cool_down)
    signals.circuit_changed.send_robust(sender=None, alias=alias, state=OPEN)
    return OPEN


def reset(alias: str) -> None:
    """Close the circuit by hand (an operator knows the provider is back)."""
    record_success(alias)
