"""SMS pumping defence: hold back sends where verification codes are not used.

Pumping bots request codes to numbers whose carrier shares the termination fee
with them; nobody ever types those codes in. So the defence watches the share
of codes that get verified, per app, per number range and per country, over a
rolling window (counters in ``PUMPING_CACHE``, sliced in buckets). When a range
or country has enough codes in the window and its share falls far below the
app's own baseline, a :class:`~sms_service.models.PumpingBlock` is written: new
sends there are refused with :class:`SendingHeldBackError` until an operator
lifts it (admin), the ``pumping_blocked`` signal fires and the owner is told.

Geo permissions (``App.allowed_countries``) narrow the global coverage list
per app. Every refusal is logged with its reason; blocks count their refusals.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import default_key_func
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .. import caching, signals
from ..conf import DEFAULTS, app_settings
from ..exceptions import CountryNotAllowedError, SendingHeldBackError
from ..models import App, PumpingBlock
from ..phone import PhoneNumber

logger = logging.getLogger(__name__)

Scope = PumpingBlock.Scope


def settings_for(app: App) -> dict[str, Any]:
    """The defaults, the project's PUMPING_DEFENCE and the app's overrides, merged
    key by key (a project may set only the keys it changes)."""
    return {**DEFAULTS["PUMPING_DEFENCE"], **app_settings.PUMPING_DEFENCE,
            **(app.pumping_settings or {})}


def enabled(app: App) -> bool:
    return bool(app.pumping_defence and settings_for(app).get("ENABLED", True))


def number_range(phone: str, config: dict[str, Any]) -> str:
    return phone[: -int(config["RANGE_DIGITS"])]


def _cache():
    return caches[app_settings.PUMPING_CACHE]


# --- the check on every send -------------------------------------------------------


def check(*, app: App, phone: PhoneNumber) -> None:
    """Refuse a send the app's geo permissions or an active block forbid."""
    allowed = app.allowed_countries or []
    if allowed and phone.region not in allowed:
        logger.warning("send refused for app %s: country %s not in its geo permissions",
                       app.app_id, phone.region)
        raise CountryNotAllowedError(
            f"This app does not send to {phone.region} (its allowed countries: "
            f"{', '.join(allowed)})."
        )
    blocks = active_blocks(app)
    if not blocks:
        return
    config = settings_for(app)
    wanted = {(Scope.RANGE, number_range(phone.e164, config)), (Scope.COUNTRY, phone.region)}
    hit = next((block for block in blocks if block in wanted), None)
    if hit is None:
        return
    scope, value = hit
    PumpingBlock.objects.active().filter(app=app, scope=scope, value=value).update(
        refused=F("refused") + 1
    )
    logger.warning("send to %s refused for app %s: pumping block on %s %s",
                   phone.prefix, app.app_id, scope, value)
    what = "number range" if scope == Scope.RANGE else "country"
    raise SendingHeldBackError(
        f"Sending to this {what} ({value}) is held back: its verification codes are "
        "rarely used (suspected SMS pumping). The app's owner has been told."
    )


def _blocks_key(app: App) -> str:
    return f"sms_service:pumping:blocks:{app.pk}"


def active_blocks(app: App) -> set[tuple[str, str]]:
    """(scope, value) of the app's active blocks; cached, dropped on change."""
    key = _blocks_key(app)
    # Kept in this process too for PROCESS_CACHE_SECONDS, like the app itself: a
    # block written elsewhere reaches this process within that bound.
    local = app_settings.PROCESS_CACHE_SECONDS
    cached = caching.process_cache.get(key) if local > 0 else None
    if cached is None:
        try:
            cached = _cache().get(key)
        except Exception:  # noqa: BLE001 - fall back to the database
            cached = None
        if cached is None:
            cached = list(PumpingBlock.objects.active().filter(app=app)
                          .values_list("scope", "value"))
            try:
                _cache().set(key, cached, timeout=300)
            except Exception:  # noqa: BLE001
                pass
        if local > 0:
            caching.process_cache.set(key, cached, local)
    return {tuple(item) for item in cached}


def _forget_blocks(app: App) -> None:
    caching.process_cache.delete(_blocks_key(app))
    try:
        _cache().delete(_blocks_key(app))
    except Exception:  # noqa: BLE001
        logger.exception("could not drop the cached pumping blocks of app %s", app.pk)


# --- counting ------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    sent: int
    verified: int

    @property
    def ratio(self) -> float:
        return self.verified / self.sent if self.sent else 1.0


#: Counts held in a process: the counter's key (before the cache's prefix) ->
#: (how many, the counter's timeout when it is created).
Held = dict[str, tuple[int, int]]


def _ones(keys: list[str], timeout: int) -> Held:
    """One more on each of ``keys`` (created with ``timeout``)."""
    return {key: (1, timeout) for key in keys}


def _key(app: App, what: str, scope: str, value: str, bucket: int | str) -> str:
    return f"sms_service:pumping:{app.pk}:{what}:{scope}:{value}:{bucket}"


def _past_key(app: App, scope: str, value: str, first: int) -> str:
    """Where the Redis count keeps the sums of a window's past buckets
    (:data:`COUNT_FUNCTION` writes it as "<sent prefix>past:<first bucket>")."""
    return _key(app, "sent", scope, value, f"past:{first}")


def _window(now: float, seconds: int, step: int) -> tuple[int, int]:
    """The first and the last bucket of the window of ``seconds`` ending ``now``."""
    last = int(now // step)
    return last - seconds // step + 1, last


def _counter_timeout(config: dict[str, Any]) -> int:
    """How long a counter lives: the longest window (the baseline's) and an hour."""
    return int(config["BASELINE_SECONDS"]) + 3600


#: A send's or a verify's counting on Redis, as a Lua function reading its
#: arguments from ARGV[o] on (so that the sending limits' script can run it
#: too, see :func:`sent_counting`): add to each counter (a counter the
#: addition creates gets its timeout), then sum the sent and verified counters
#: of each group of buckets. Arguments: m, then m times a counter's key, how
#: much to add and its timeout; then per group the sent prefix, the verified
#: prefix, the first and the last bucket and a bucket's seconds (a counter's
#: key is its prefix followed by its bucket).
#:
#: Counts go to the bucket of the moment they happen, so a window's buckets
#: before the last one no longer change: their sums are read once per bucket
#: and kept for a bucket's time under "<sent prefix>past:<first bucket>",
#: and a count reads three keys per group, not two per bucket. (Only a send
#: taken back after its bucket ended, or a process whose clock lags the
#: others', can change a past bucket: the kept sum is then off by that much
#: until the next bucket.)
COUNT_FUNCTION = """
local function sum(sent_prefix, verified_prefix, first, last)
  local sent, verified = 0, 0
  -- At most 500 buckets (1,000 keys) per MGET: unpack() has a stack limit.
  for from = first, last, 500 do
    local keys = {}
    for b = from, math.min(last, from + 499) do
      keys[#keys + 1] = sent_prefix .. b
      keys[#keys + 1] = verified_prefix .. b
    end
    local values = redis.call('MGET', unpack(keys))
    for j = 1, #values, 2 do
      sent = sent + (tonumber(values[j]) or 0)
      verified = verified + (tonumber(values[j + 1]) or 0)
    end
  end
  return sent, verified
end

local function count(o)
  local m = tonumber(ARGV[o])
  local last = o + 3 * m
  for i = o + 1, last, 3 do
    local amount = tonumber(ARGV[i + 1])
    if redis.call('INCRBY', ARGV[i], amount) == amount then
      redis.call('EXPIRE', ARGV[i], ARGV[i + 2])
    end
  end
  local out = {}
  for i = last + 1, #ARGV, 5 do
    local sent_prefix, verified_prefix = ARGV[i], ARGV[i + 1]
    local first, last = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    local past_key = sent_prefix .. 'past:' .. first
    local sent, verified
    local past = redis.call('GET', past_key)
    if past then
      local colon = string.find(past, ':', 1, true)
      sent, verified = tonumber(string.sub(past, 1, colon - 1)), tonumber(string.sub(past, colon + 1))
    else
      sent, verified = sum(sent_prefix, verified_prefix, first, last - 1)
      redis.call('SET', past_key, sent .. ':' .. verified, 'EX', ARGV[i + 4])
    end
    local now = redis.call('MGET', sent_prefix .. last, verified_prefix .. last)
    out[#out + 1] = sent + (tonumber(now[1]) or 0)
    out[#out + 1] = verified + (tonumber(now[2]) or 0)
  end
  return out
end
"""
_COUNT_LUA = COUNT_FUNCTION + "return count(1)\n"
_count_script: Any = None


def _bump(counts: Held, app: App | None = None,
          groups: Sequence[tuple[str, str, int, int]] = (),
          now: float = 0.0) -> dict[tuple[str, str], Share]:
    """Add to each counter of ``counts``, then the Share of each of ``app``'s
    groups ``(scope, value, seconds, slice seconds)`` up to ``now``:
    ``{(scope, value): Share}``.

    On django-redis (one server, Django's default key function) it is one
    script run, one round trip; any other cache gets the same through its
    generic calls.
    """
    cache = _cache()
    client = _script_client(cache)
    if client is None:
        for key, (amount, timeout) in counts.items():
            cache.add(key, 0, timeout=timeout)
            try:
                cache.incr(key, amount)
            except ValueError:  # expired between add and incr
                cache.set(key, amount, timeout=timeout)
        if app is None:
            return {}
        return {(scope, value): share(app=app, scope=scope, value=value, seconds=seconds,
                                      slice_seconds=step, now=now)
                for scope, value, seconds, step in groups}
    global _count_script
    if _count_script is None:
        _count_script = client.register_script(_COUNT_LUA)
    sums = _count_script(keys=[], args=_count_args(cache, counts, app, groups, now),
                         client=client)
    return _shares(groups, sums)


def _count_args(cache, counts: Held, app: App | None = None,
                groups: Sequence[tuple[str, str, int, int]] = (),
                now: float = 0.0) -> list[Any]:
    make_key = cache.make_key  # the keys are this module's own: nothing to validate
    args: list[Any] = [len(counts)]
    for key, (amount, timeout) in counts.items():
        args += [make_key(key), amount, timeout]
    if app is not None:
        for scope, value, seconds, step in groups:
            args += [make_key(_key(app, "sent", scope, value, "")),
                     make_key(_key(app, "verified", scope, value, "")),
                     *_window(now, seconds, step), step]
    return args


def _shares(groups: Sequence[tuple[str, str, int, int]], sums: list[Any]
            ) -> dict[tuple[str, str], Share]:
    return {(scope, value): Share(sent=int(sums[2 * i]), verified=int(sums[2 * i + 1]))
            for i, (scope, value, _, _) in enumerate(groups)}


def _script_client(cache) -> Any:
    """The redis-py client of a django-redis cache whose keys end with the key
    given (so the script can add the bucket), or None."""
    if getattr(cache, "key_func", None) is not default_key_func:
        return None
    return caching.redis_client(cache)


def _scopes(app: App, phone: str, region: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(Scope.RANGE, number_range(phone, config)), (Scope.COUNTRY, region),
            ("app", "all")]


def _counter_keys(app, what, phone, region, config, now) -> list[str]:
    bucket = int(now // int(config["BUCKET_SECONDS"]))
    hour = int(now // 3600)
    keys = []
    for scope, value in _scopes(app, phone, region, config):
        # The app-wide baseline is counted by the hour, the rest by bucket.
        keys.append(_key(app, what, scope, value, hour if scope == "app" else bucket))
    return keys


@dataclass
class SentCounting:
    """A send's counting, planned before the send so that the sending limits'
    script can run it in the same round trip (:func:`sent_counting`).

    ``lua`` defines ``count(o)`` and ``args`` are its arguments. After the
    send commits, :meth:`judge` takes the sums the script returned; when the
    send fails, :meth:`undo` takes the counts back.
    """

    app: App
    phone: str
    region: str
    config: dict[str, Any]
    now: float
    keys: list[str]
    groups: list[tuple[str, str, int, int]]
    args: list[Any]
    #: The verified counts of this process that ride along (see PendingCounts).
    held: Held
    lua = COUNT_FUNCTION  # not a field: every counting runs the same function

    def judge(self, sums: list[Any]) -> PumpingBlock | None:
        """The counted send has committed: evaluate its windows (may write a block)."""
        try:
            return _evaluate(app=self.app, phone=self.phone, region=self.region,
                             config=self.config, now=self.now, shares=_shares(self.groups, sums))
        except Exception:  # noqa: BLE001 - counting must never fail a send
            logger.exception("pumping evaluation failed for app %s", self.app.pk)
            return None

    def not_counted(self, *, failed: bool) -> None:
        """The script did not count: it stopped before (a sending limit refused
        the send, or the script could not run), and the verified counts it
        carried wait for the next round trip; or the count itself ``failed``,
        and they are dropped, as a failed count is."""
        if not failed:
            pending.give_back(self.held)
        elif self.held:
            logger.warning("pumping: %d verified counts of app %s lost with a failed count",
                           sum(amount for amount, _ in self.held.values()), self.app.pk)

    def undo(self) -> None:
        """The counted send did not happen: one less on each of its counters
        (the verified counts it carried stay counted)."""
        cache = _cache()
        try:
            for key in self.keys:
                cache.decr(key)
        except Exception:  # noqa: BLE001 - expired, or the cache is down
            logger.warning("could not take back a pumping count of app %s", self.app.pk,
                           exc_info=True)


def _sent_plan(app: App, phone: str, region: str
               ) -> tuple[dict[str, Any], float, list[str], list[tuple[str, str, int, int]]]:
    config = settings_for(app)
    now = time.time()
    # The window counts of the range and the country and the app's baseline
    # come back from the count itself (they include this send).
    window, bucket = int(config["WINDOW_SECONDS"]), int(config["BUCKET_SECONDS"])
    groups = [(scope, value, window, bucket)
              for scope, value, _ in _evaluated_scopes(phone, region, config)]
    groups.append(("app", "all", int(config["BASELINE_SECONDS"]), 3600))
    return config, now, _counter_keys(app, "sent", phone, region, config, now), groups


def sent_counting(*, app: App, phone: str, region: str, cache_alias: str
                  ) -> SentCounting | None:
    """The counting of a verification code about to be sent, for a script on
    the cache ``cache_alias`` to run, or None: the defence is off for the app,
    or its counters are not on that cache's Redis (then :func:`record_sent`
    counts after the send)."""
    if not enabled(app) or not _scripts_reach_counters(cache_alias):
        return None
    cache = _cache()
    config, now, keys, groups = _sent_plan(app, phone, region)
    held = pending.take()
    counts = {**held, **_ones(keys, _counter_timeout(config))}
    return SentCounting(app=app, phone=phone, region=region, config=config, now=now,
                        keys=keys, groups=groups, held=held,
                        args=_count_args(cache, counts, app, groups, now))


def record_sent(*, app: App, phone: str, region: str) -> PumpingBlock | None:
    """Count a verification code sent; may write a block (returned)."""
    if not enabled(app):
        return None
    try:
        config, now, keys, groups = _sent_plan(app, phone, region)
        shares = _bump(_ones(keys, _counter_timeout(config)), app, groups, now)
        return _evaluate(app=app, phone=phone, region=region, config=config, now=now,
                         shares=shares)
    except Exception:  # noqa: BLE001 - counting must never fail a send
        logger.exception("pumping counters unavailable for app %s", app.pk)
        return None


def record_verified(*, app: App, phone: str, region: str | None = None) -> None:
    """Count a verification code used (``region``: the number's, when the
    caller has it parsed).

    Where the counters share their Redis with the sending limits, the count is
    held in this process and rides on its next send's script (see
    :class:`PendingCounts`): a verify then makes no round trip of its own.
    """
    if not enabled(app):
        return
    config = settings_for(app)
    try:
        if region is None:
            from ..phone import parse_phone

            region = parse_phone(phone).region
        keys = _counter_keys(app, "verified", phone, region, config, time.time())
        timeout = _counter_timeout(config)
        if _holds_counts():
            pending.add(keys, timeout)
        else:
            _bump(_ones(keys, timeout))
    except Exception:  # noqa: BLE001
        logger.exception("pumping counters unavailable for app %s", app.pk)


def _holds_counts() -> bool:
    """Whether verified counts wait for a send's script: they may be held a
    while, and the counters are on the Redis of the sending limits."""
    return (app_settings.VERIFIED_COUNT_DELAY_SECONDS > 0
            and _scripts_reach_counters(app_settings.RATE_LIMIT_CACHE))


def _scripts_reach_counters(cache_alias: str) -> bool:
    """Whether a script on the cache ``cache_alias`` can count: the counters
    live on that cache, and it is a Redis a script can run on."""
    return app_settings.PUMPING_CACHE == cache_alias and _script_client(_cache()) is not None


class PendingCounts:
    """Verified counts this process holds until its next Redis round trip.

    A verify adds one to three counters (the number's range, its country and
    the app). Sends are counted with the sending limits, in one script; a
    verify has no script of its own to join. So its counts wait here, and the
    next send of this process carries them into its script, which adds them
    before it sums the windows it judges. Whatever is still waiting after
    ``VERIFIED_COUNT_DELAY_SECONDS`` (a process that verifies and does not
    send) is written by a background thread, in one round trip, and at exit.

    The cost: a verification reaches the shared counts up to that delay late
    (on a busy process, a few milliseconds), and counts held by a process
    that is killed are lost. Both only make a range look slightly less
    verified than it is, for seconds, next to windows of an hour.
    """

    #: Counters held at most; a longer Redis outage drops the rest (logged).
    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._counts: Held = {}
        self._due = threading.Event()
        self._sooner = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, keys: list[str], timeout: int) -> None:
        with self._lock:
            for key in keys:
                amount, _ = self._counts.get(key, (0, timeout))
                if amount == 0 and len(self._counts) >= self.MAX_KEYS:
                    logger.warning("pumping: verified counts dropped, %d counters held",
                                   len(self._counts))
                    continue
                self._counts[key] = (amount + 1, timeout)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._write_when_due, daemon=True,
                                                name="sms-service-verified-counts")
                self._thread.start()
        self._due.set()

    def take(self) -> Held:
        """Everything held (now the caller's to write or give back)."""
        with self._lock:
            taken, self._counts = self._counts, {}
        return taken

    def give_back(self, held: Held) -> None:
        if not held:
            return
        with self._lock:
            for key, (amount, timeout) in held.items():
                self._counts[key] = (self._counts.get(key, (0, timeout))[0] + amount, timeout)
        self._due.set()

    def discard(self) -> None:
        """Forget what is held, and end the thread's current wait (tests,
        around clearing the counters' cache)."""
        self.take()
        self._sooner.set()

    def write(self) -> None:
        """Write what is held now, in one round trip; kept for the next try if
        the cache cannot be reached."""
        held = self.take()
        if not held:
            return
        try:
            _bump(held)
        except Exception:  # noqa: BLE001 - counting must never fail a request
            logger.warning("pumping: cache unreachable, %d verified counters held",
                           len(held), exc_info=True)
            self.give_back(held)

    def _write_when_due(self) -> None:
        atexit.register(self.write)
        while True:
            self._due.wait()
            self._sooner.clear()
            self._sooner.wait(app_settings.VERIFIED_COUNT_DELAY_SECONDS)
            self._due.clear()  # before the write: a count added during it sets it again
            self.write()


#: This process's held verified counts.
pending = PendingCounts()
# A forked child (a web or Celery worker) starts with nothing held and no
# thread: the parent writes what it holds.
os.register_at_fork(after_in_child=pending._reset)


def share(*, app: App, scope: str, value: str, seconds: int, slice_seconds: int,
          now: float | None = None) -> Share:
    """Codes sent and verified for (scope, value) over the last ``seconds``."""
    now = time.time() if now is None else now
    first, last = _window(now, seconds, slice_seconds)
    buckets = range(first, last + 1)
    sent_keys = [_key(app, "sent", scope, value, b) for b in buckets]
    verified_keys = [_key(app, "verified", scope, value, b) for b in buckets]
    found = _cache().get_many(sent_keys + verified_keys)
    return Share(sent=sum(int(found.get(k) or 0) for k in sent_keys),
                 verified=sum(int(found.get(k) or 0) for k in verified_keys))


def baseline(*, app: App, config: dict[str, Any], now: float, excluding: Share,
             overall: Share | None = None) -> float:
    """The app's own verified share (hourly counters) leaving out the traffic
    under suspicion, or the default before there is enough of it."""
    if overall is None:
        overall = share(app=app, scope="app", value="all",
                        seconds=int(config["BASELINE_SECONDS"]), slice_seconds=3600, now=now)
    rest = Share(sent=max(overall.sent - excluding.sent, 0),
                 verified=max(overall.verified - excluding.verified, 0))
    if rest.sent < int(config["BASELINE_MIN_VOLUME"]):
        return float(config["DEFAULT_BASELINE"])
    return rest.ratio


def _evaluated_scopes(phone: str, region: str, config: dict[str, Any]) -> list[tuple]:
    """(scope, value, minimum volume) of the windows a send is judged on."""
    return [(Scope.RANGE, number_range(phone, config), int(config["RANGE_MIN_VOLUME"])),
            (Scope.COUNTRY, region, int(config["COUNTRY_MIN_VOLUME"]))]


def _evaluate(*, app, phone, region, config, now, shares) -> PumpingBlock | None:
    for scope, value, minimum in _evaluated_scopes(phone, region, config):
        current = shares[(scope, value)]
        if current.sent < minimum:
            continue
        base = baseline(app=app, config=config, now=now, excluding=current,
                        overall=shares[("app", "all")])
        if current.ratio < base * float(config["MAX_RATIO"]):
            return _block(app=app, scope=scope, value=value, current=current, base=base,
                          config=config)
    return None


def _block(*, app, scope, value, current: Share, base: float, config) -> PumpingBlock | None:
    what = "number range" if scope == Scope.RANGE else "country"
    minutes = int(config["WINDOW_SECONDS"]) // 60
    reason = (f"{current.verified} of {current.sent} codes sent to {what} {value} in the "
              f"last {minutes} minutes were verified ({current.ratio:.0%}), against "
              f"{base:.0%} for the app as a whole.")
    try:
        with transaction.atomic():
            block = PumpingBlock.objects.create(
                app=app, scope=scope, value=value, reason=reason,
                stats={"sent": current.sent, "verified": current.verified,
                       "share": round(current.ratio, 4), "baseline": round(base, 4),
                       "window_seconds": int(config["WINDOW_SECONDS"])},
            )
    except IntegrityError:
        return None  # another process wrote it first
    _forget_blocks(app)
    logger.warning("pumping defence: app %s, %s", app.app_id, reason)
    signals.pumping_blocked.send_robust(sender=PumpingBlock, block=block, app=app)
    _notify_owner(app=app, block=block)
    return block


def _notify_owner(*, app: App, block: PumpingBlock) -> None:
    subject = f"[{app.name}] SMS to {block.value} held back (suspected SMS pumping)"
    body = (f"{block.reason}\n\nNew verification codes to this "
            f"{block.get_scope_display().lower()} are refused until an administrator "
            "lifts the block (admin: Pumping blocks).")
    from ..adapter import get_adapter

    adapter = get_adapter()
    notify = getattr(adapter, "notify_owner", None)
    try:
        if notify is not None:
            notify(app=app, subject=subject, body=body, event="pumping_blocked",
                   context={"block": block})
            return
        recipient = app.owner_email or getattr(app.owner, "email", "")
        if recipient:
            send_mail(subject, body, None, [recipient])
    except Exception:  # noqa: BLE001 - the block stands whatever the mail does
        logger.exception("could not tell the owner of app %s about a pumping block", app.pk)


# --- operators --------------------------------------------------------------------


def lift(*, block: PumpingBlock, by: Any = None) -> bool:
    """Lift a block and forget the counts that caused it (else the next send
    would block again); returns whether this call lifted it."""
    changed = PumpingBlock.objects.filter(pk=block.pk, lifted_at__isnull=True).update(
        lifted_at=timezone.now(), lifted_by=by
    )
    if not changed:
        return False
    block.refresh_from_db()
    config = settings_for(block.app)
    window, bucket = int(config["WINDOW_SECONDS"]), int(config["BUCKET_SECONDS"])
    first, last = _window(time.time(), window, bucket)
    keys = [_key(block.app, what, block.scope, block.value, b)
            for what in ("sent", "verified") for b in range(first - 1, last + 1)]
    keys.append(_past_key(block.app, block.scope, block.value, first))
    try:
        _cache().delete_many(keys)
    except Exception:  # noqa: BLE001
        logger.exception("could not reset the pumping counters of block %s", block.pk)
    _forget_blocks(block.app)
    logger.info("pumping block %s lifted by %s", block.pk, by)
    signals.pumping_block_lifted.send_robust(sender=PumpingBlock, block=block, app=block.app,
                                             by=by)
    return True
