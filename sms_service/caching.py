"""Reads of rarely changing rows through two caches: this process, then shared.

Apps and prices are read on every request and change rarely. The shared cache
(Redis in production) is the source every process agrees on: saving a row drops
its entry there. In front of it, each process keeps what it read for
``PROCESS_CACHE_SECONDS`` (:class:`ProcessCache`: thread-safe, and every read
returns a fresh copy), so a busy process asks the shared cache about once per
entry and interval instead of once per request.
"""

from __future__ import annotations

import copy
import logging
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import models

from .conf import app_settings

logger = logging.getLogger(__name__)


class ProcessCache:
    """Entries kept in this process for a few seconds, each read a fresh copy.

    Django's locmem cache does the same through pickling: every read
    unpickles the value and checks the key character by character. The rows
    this cache mostly holds (the app behind every API request) are model
    instances, copied here attribute by attribute instead (their JSON fields'
    lists and dicts copied deeply), several times faster; any other value is
    kept pickled, as locmem keeps it. The oldest entries go beyond
    ``max_entries``.
    """

    def __init__(self, max_entries: int = 5000) -> None:
        self._entries: OrderedDict[str, tuple[float, bool, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            if entry[0] <= time.time():
                del self._entries[key]
                return default
        _, is_model, value = entry
        return _copy_model(value) if is_model else pickle.loads(value)

    def set(self, key: str, value: Any, timeout: float) -> None:  # noqa: A003
        is_model = isinstance(value, models.Model)
        kept = _copy_model(value) if is_model else pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._entries[key] = (time.time() + timeout, is_model, kept)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _copy_model(obj: models.Model) -> models.Model:
    """A copy of a model instance as unpickling would make it: its own state
    and attributes; lists and dicts (JSON fields) copied deeply; related
    objects it had loaded shared, not copied."""
    new = obj.__class__.__new__(obj.__class__)
    attributes = obj.__dict__.copy()
    for name, value in attributes.items():
        if type(value) in (list, dict) and not name.startswith("_"):
            attributes[name] = copy.deepcopy(value)
    state = attributes["_state"] = copy.copy(obj._state)
    state.fields_cache = dict(obj._state.fields_cache)
    new.__dict__.update(attributes)
    return new


_process = ProcessCache()
#: This process's cache, for callers that keep entries of another shared cache
#: in front of it (same bound, cleared by :func:`clear_process`).
process_cache = _process


def get(key: str) -> Any:
    """The value from this process, else from the shared cache (kept here); None
    when neither has it. Errors of the shared cache propagate."""
    seconds = app_settings.PROCESS_CACHE_SECONDS
    if seconds > 0:
        value = _process.get(key)
        if value is not None:
            return value
    value = cache.get(key)
    if value is not None and seconds > 0:
        _process.set(key, value, seconds)
    return value


def set(key: str, value: Any, timeout: int) -> None:  # noqa: A001 (cache vocabulary)
    """Store in the shared cache (and this process)."""
    cache.set(key, value, timeout)
    seconds = app_settings.PROCESS_CACHE_SECONDS
    if seconds > 0:
        _process.set(key, value, min(seconds, timeout))


def delete(key: str) -> None:
    """Drop everywhere: here at once, in other processes within PROCESS_CACHE_SECONDS."""
    _process.delete(key)
    cache.delete(key)


def redis_client(shared: Any) -> Any | None:
    """The raw redis-py client behind a django-redis cache, for a Lua script
    over its keys; ``None`` for any other cache (callers then use the cache's
    generic calls) and for a sharded one (one script cannot see every server)."""
    if _RedisCache is None or not isinstance(shared, _RedisCache):
        return None
    client = shared.client
    if isinstance(client, _ShardClient):
        return None
    return client.get_client(write=True)


try:  # django-redis is an optional dependency
    from django_redis.cache import RedisCache as _RedisCache
    from django_redis.client import ShardClient as _ShardClient
except ImportError:
    _RedisCache = _ShardClient = None


def clear_process() -> None:
    """Forget this process's copies (tests; after a bulk change made elsewhere)."""
    _process.clear()


def read_through(key: str, load: Callable[[], Any], timeout: int) -> Any:
    """The cached value of ``key``, else ``load()`` (stored for ``timeout`` seconds
    unless it is None). The caches are an optimisation, never a requirement: when
    the shared cache is unreachable the value is loaded from the database."""
    if timeout <= 0:
        return load()
    try:
        value = get(key)
    except Exception:
        logger.warning("cache unreachable; reading %s from the database", key, exc_info=True)
        return load()
    if value is None:
        value = load()
        if value is not None:
            try:
                set(key, value, timeout)
            except Exception:
                logger.warning("cache unreachable; %s not cached", key, exc_info=True)
    return value


def forget(*keys: str) -> None:
    """Drop ``keys`` after a change (see :mod:`sms_service.receivers`); a cache that
    cannot be reached is logged, and the entries expire on their own."""
    for key in keys:
        try:
            delete(key)
        except Exception:
            logger.warning("cache unreachable; %s may be served stale until it expires", key,
                           exc_info=True)
