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

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
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
#: too, see :func:`sent_counting`): add one to each counter (a new counter
#: gets the timeout), then sum the sent and verified counters of each group of
#: buckets. Arguments: timeout, n, the n counter keys, then per group the sent
#: prefix, the verified prefix, the first and the last bucket and a bucket's
#: seconds (a counter's key is its prefix followed by its bucket).
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
  local timeout, n = tonumber(ARGV[o]), tonumber(ARGV[o + 1])
  for i = o + 2, o + 1 + n do
    if redis.call('INCR', ARGV[i]) == 1 then
      redis.call('EXPIRE', ARGV[i], timeout)
    end
  end
  local out = {}
  for i = o + 2 + n, #ARGV, 5 do
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


def _bump(app: App, keys: list[str], timeout: int,
          groups: Sequence[tuple[str, str, int, int]] = (),
          now: float = 0.0) -> dict[tuple[str, str], Share]:
    """Add one to each of ``keys`` (created with ``timeout``), then the Share of
    each group ``(scope, value, seconds, slice seconds)`` up to ``now``:
    ``{(scope, value): Share}``.

    On django-redis (one server, Django's default key function) it is one
    script run, one round trip; any other cache gets the same through its
    generic calls.
    """
    cache = _cache()
    client = _script_client(cache)
    if client is None:
        for key in keys:
            cache.add(key, 0, timeout=timeout)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=timeout)
        return {(scope, value): share(app=app, scope=scope, value=value, seconds=seconds,
                                      slice_seconds=step, now=now)
                for scope, value, seconds, step in groups}
    global _count_script
    if _count_script is None:
        _count_script = client.register_script(_COUNT_LUA)
    sums = _count_script(keys=[], args=_count_args(cache, app, keys, timeout, groups, now),
                         client=client)
    return _shares(groups, sums)


def _count_args(cache, app: App, keys: list[str], timeout: int,
                groups: Sequence[tuple[str, str, int, int]], now: float) -> list[Any]:
    make_key = cache.make_key  # the keys are this module's own: nothing to validate
    args: list[Any] = [timeout, len(keys), *(make_key(key) for key in keys)]
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
    from django.core.cache.backends.base import default_key_func

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
    lua = COUNT_FUNCTION  # not a field: every counting runs the same function

    def judge(self, sums: list[Any]) -> PumpingBlock | None:
        """The counted send has committed: evaluate its windows (may write a block)."""
        try:
            return _evaluate(app=self.app, phone=self.phone, region=self.region,
                             config=self.config, now=self.now, shares=_shares(self.groups, sums))
        except Exception:  # noqa: BLE001 - counting must never fail a send
            logger.exception("pumping evaluation failed for app %s", self.app.pk)
            return None

    def undo(self) -> None:
        """The counted send did not happen: one less on each of its counters."""
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
    if not enabled(app) or app_settings.PUMPING_CACHE != cache_alias:
        return None
    cache = _cache()
    if _script_client(cache) is None:
        return None
    config, now, keys, groups = _sent_plan(app, phone, region)
    return SentCounting(app=app, phone=phone, region=region, config=config, now=now,
                        keys=keys, groups=groups,
                        args=_count_args(cache, app, keys, _counter_timeout(config), groups,
                                         now))


def record_sent(*, app: App, phone: str, region: str) -> PumpingBlock | None:
    """Count a verification code sent; may write a block (returned)."""
    if not enabled(app):
        return None
    try:
        config, now, keys, groups = _sent_plan(app, phone, region)
        shares = _bump(app, keys, timeout=_counter_timeout(config), groups=groups, now=now)
        return _evaluate(app=app, phone=phone, region=region, config=config, now=now,
                         shares=shares)
    except Exception:  # noqa: BLE001 - counting must never fail a send
        logger.exception("pumping counters unavailable for app %s", app.pk)
        return None


def record_verified(*, app: App, phone: str) -> None:
    """Count a verification code used."""
    if not enabled(app):
        return
    config = settings_for(app)
    from ..phone import parse_phone

    try:
        region = parse_phone(phone).region
        _bump(app, _counter_keys(app, "verified", phone, region, config, time.time()),
              timeout=_counter_timeout(config))
    except Exception:  # noqa: BLE001
        logger.exception("pumping counters unavailable for app %s", app.pk)


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
