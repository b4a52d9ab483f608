"""Settings for sms_service, read from ``settings.SMS_SERVICE``.

Code reads configuration only through :data:`app_settings`::

    from sms_service.conf import app_settings
    app_settings.CODE_TTL_MINUTES

Values are resolved lazily on first access and cached; the cache is cleared when
``SMS_SERVICE`` changes (``override_settings`` in tests), so nothing is read at
import time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

#: Every setting with its default. Documented in the README's settings table.
DEFAULTS: dict[str, Any] = {
    # The class a project subclasses to change behaviour (sms_service.adapter).
    "ADAPTER": "sms_service.adapter.DefaultSmsAdapter",
    # Provider backends by alias, like Django's CACHES. "default" is used unless a
    # channel is routed elsewhere in CHANNEL_BACKENDS.
    "BACKENDS": {
        "default": {"BACKEND": "sms_service.backends.console.ConsoleBackend"},
    },
    # Channel ("sms" / "voice") -> backend alias.
    "CHANNEL_BACKENDS": {},
    # Secrets for the keyed hashes of codes and tokens and the encryption of
    # message payloads, newest first: the first signs and encrypts, every one
    # verifies and decrypts (key rotation). Empty: SECRET_KEY, then
    # SECRET_KEY_FALLBACKS.
    "SECRET_KEYS": [],
    # Verification codes.
    "CODE_LENGTH": 6,
    "CODE_TTL_MINUTES": 10,
    "CODE_MAX_TTL_MINUTES": 30,
    "CODE_MAX_ATTEMPTS": 5,
    # Code-only lookups: guesses per app and purpose per minute.
    "CODE_ONLY_LOOKUPS_PER_MINUTE": 30,
    # Phone numbers: the region of numbers without "+", and the coverage list.
    "DEFAULT_REGION": "CN",
    "ALLOWED_REGIONS": [
        "CN", "TW", "HK", "MO", "US", "CA", "BR", "GB", "FR", "DE", "IT", "UA",
        "RU", "ES", "KR", "JP", "IN", "MY", "SG", "TH", "VN", "ID", "AU", "NZ",
    ],
    # Sending limits. Seconds and counts.
    "RATE_LIMITS": {
        "app_number_interval": 10,
        "signature_number_interval": 60,
        "signature_number_daily": {"verification": 10, "notification": 15, "marketing": 15},
        "voice": [(30, 1), (3600, 3), (86400, 5)],
        "ip": [(60, 50), (3600, 500)],
        "prefix": [(3600, 20)],
    },
    # PostgreSQL: let the server prepare the few statements every send and
    # verify runs (parsed and planned once per connection). Turn off behind
    # a pooler that cannot keep prepared statements (PgBouncer before 1.21
    # in transaction mode).
    "PREPARED_STATEMENTS": True,
    # Cache alias that holds rate-limit counters; must be shared across processes
    # in production (Redis).
    "RATE_LIMIT_CACHE": "default",
    # Delivery pipeline.
    "ASYNC": True,
    "MAX_RETRIES": 5,
    "RETRY_BACKOFF_MAX": 600,
    "STUCK_QUEUED_AFTER_SECONDS": 300,
    # A claimed message whose provider call has not started after this long was
    # abandoned (its worker died): it is sent again.
    "STUCK_CLAIMED_AFTER_SECONDS": 10,
    # A message whose provider call started this long ago without an outcome
    # (its worker died mid-call) becomes "unknown". Keep it above every
    # backend's request timeout (Twilio: 3.05 + 10 s).
    "STUCK_SENDING_AFTER_SECONDS": 60,
    # An "unknown" verification code is looked up at the provider (backends that
    # can) this long after its call started; sent again if the provider has none.
    "RESOLVE_UNKNOWN_AFTER_SECONDS": 10,
    # Maximum length of a final message in characters (signature and suffix included).
    "MAX_MESSAGE_LENGTH": 400,
    # Longest accepted template variable value, in characters.
    "MAX_VARIABLE_LENGTH": 200,
    # Public base URL of this server (e.g. "https://sms.example.com"), used to give
    # providers an absolute delivery-receipt URL. Empty: no status callbacks.
    "PUBLIC_BASE_URL": "",
    # Trust X-Forwarded-For for the client IP (only behind a proxy you control).
    "TRUST_X_FORWARDED_FOR": False,
    # An X-LC-Sign header is accepted only while its timestamp is within this many
    # seconds of the server's clock (either way), so a captured header cannot be
    # replayed later. None: no limit (old devices with wrong clocks).
    "SIGN_TIMESTAMP_WINDOW_SECONDS": 15 * 60,
    # --- Billing and delivery receipts -------------------------------------------
    # Off: every quote is free, so nothing is held, charged or capped (load tests,
    # projects that bill elsewhere). Segments are still counted and stored.
    "BILLING_ENABLED": True,
    # Segment rules per destination: "leancloud" (≤ 70 chars = 1, then per 67) or
    # "carrier" (GSM-7 160/153, UCS-2 70/67). Domestic = DEFAULT_REGION.
    "SEGMENT_MODE_DOMESTIC": "leancloud",
    "SEGMENT_MODE_INTERNATIONAL": "carrier",
    # Unit price per channel for regions without a Price row in the admin, as a
    # decimal string (e.g. {"sms": "0.07", "voice": "0.12"}). A channel missing
    # here makes a send to an unpriced region fail with a clear error while
    # billing is on: nothing is ever sent for free by omission.
    "DEFAULT_UNIT_PRICES": {},
    # Add an SMS section (dashboard, review queue, balances, export, API docs) to
    # the default admin site's index page, unless it has its own index_template.
    "ADMIN_INDEX_SECTION": True,
    # Currency of every amount (balances, prices, bills, exports), shown with each.
    "CURRENCY": "CNY",
    # --- Outbound webhooks ---------------------------------------------------------
    # Seconds to wait for a webhook receiver, tries per delivery, and the backoff
    # between tries (doubling from WEBHOOK_RETRY_BACKOFF, capped at ..._MAX).
    "WEBHOOK_TIMEOUT_SECONDS": 5,
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_RETRY_BACKOFF": 30,
    "WEBHOOK_RETRY_BACKOFF_MAX": 3600,
    # Price rows are cached this long in the default cache (every send looks one
    # up); saving a price in the admin drops its cache entry. 0: no caching.
    "PRICE_CACHE_SECONDS": 60,
    # Apps (keys, switches, default signature) and prices are also kept this many
    # seconds in each process, in front of the shared cache: one round trip less
    # per request. A change reaches the process that made it at once and every
    # other process within this bound. 0: always ask the shared cache.
    "PROCESS_CACHE_SECONDS": 2,
    # A message still awaiting its receipt (accepted / unknown) this many seconds
    # after its last status change is settled by OVERDUE_POLICY: "charge" (LeanCloud
    # bills messages awaiting a receipt) or "release".
    "SETTLE_AFTER_SECONDS": 72 * 3600,
    "OVERDUE_POLICY": "charge",
    # Status polling for providers without webhooks: accepted messages older than
    # this are asked about, at most POLL_BATCH_SIZE per run.
    "POLL_AFTER_SECONDS": 300,
    "POLL_BATCH_SIZE": 500,
    # Unmatched receipts (e.g. arriving before the provider id is stored) are
    # retried by the reconcile task for this long, then left for the admin.
    "UNMATCHED_RECEIPT_RETRY_SECONDS": 24 * 3600,
    # --- Signatures and templates ------------------------------------------------
    # Signature text length bounds and the per-app count (rejected signatures
    # included). The word lists feed the pre-review lint; they are matched as
    # case-insensitive substrings, so list simplified and traditional forms.
    # MARKETING_WORDS flag notification and verification templates; BANNED_WORDS
    # flag every template.
    "SIGNATURE_MIN_LENGTH": 2,
    "SIGNATURE_MAX_LENGTH": 12,
    "MAX_SIGNATURES_PER_APP": 3,
    "MARKETING_WORDS": [
        "打折", "降价", "降價", "仅售", "僅售", "低至", "特价", "特價",
        "促销", "促銷", "秒杀", "秒殺", "清仓", "清倉", "抽奖", "抽獎",
        "折扣", "限时抢购", "限時搶購",
    ],
    "BANNED_WORDS": [
        "房源", "借贷", "借貸", "贷款", "貸款", "网贷", "網貸", "套现", "套現",
        "博彩",
    ],
    # Compiled Handlebars templates kept in memory per process (LRU entries).
    "TEMPLATE_CACHE_SIZE": 512,
    # --- Phone users -------------------------------------------------------------
    # A login that fails this many times within LOGIN_LOCKOUT_SECONDS locks the
    # account (per app) until LOGIN_LOCKOUT_SECONDS after the last failure (219).
    "LOGIN_MAX_FAILURES": 6,
    "LOGIN_LOCKOUT_SECONDS": 900,
    # Per client IP: (seconds, requests) windows shared by every login and code
    # endpoint of the user API (the sending ones also count under RATE_LIMITS["ip"]).
    "USER_IP_LIMITS": [(60, 30), (3600, 300)],
    # True: answers that would tell whether a number or username has an account
    # (213, 211, 215 on the "request a code" calls; 211 on login) become the
    # success answer ({} with nothing sent) or the wrong-password answer (210).
    "CONCEAL_ACCOUNTS": False,
    # Default ttl (minutes) of requestChangePhoneNumber's code, as LeanCloud.
    "CHANGE_PHONE_TTL_MINUTES": 6,
    # Largest JSON size (bytes) of a member's other fields.
    "MAX_USER_FIELDS_BYTES": 16384,
    # Revoked sessions stay listed in the admin this many days, then the periodic
    # prune_phone_users task deletes them.
    "REVOKED_SESSIONS_KEEP_DAYS": 30,
    # --- Bundled account pages (sms_service.accounts) -----------------------------
    # App id of the app whose signatures, templates, limits, account options and
    # balance the site's own sign-up and log-in pages use. Empty: the pages answer
    # with a configuration error naming this setting.
    "SITE_APP_ID": "",
    # API error texts ("error" of {"code", "error"}) are LeanCloud's English, as the
    # SDKs expect. True: translated into the request's language (Accept-Language
    # through LocaleMiddleware), e.g. for browser clients showing them to people.
    "TRANSLATE_API_ERRORS": False,
    # --- CAPTCHA ------------------------------------------------------------------
    # Lifetime of a validate_token from verifyCaptcha, in seconds (single use).
    "CAPTCHA_VALIDATE_TOKEN_TTL_SECONDS": 300,
    # requestCaptcha calls per client IP: (seconds, count) windows. Every wrong
    # answer spends its challenge, so this also bounds guessing.
    "CAPTCHA_REQUESTS_PER_IP": [(60, 30), (3600, 300)],
    # --- Routing, failover and pumping defence ------------------------------------
    # Routes: the first entry whose "region" (ISO code), "channel" and "kind"
    # match ("*" or absent matches all) gives the ordered backend aliases of a
    # message; the next alias is tried when one fails the call. No match: the
    # channel's alias from CHANNEL_BACKENDS.
    "ROUTES": [],
    # Per backend: this many temporary failures within WINDOW_SECONDS open its
    # circuit (skipped) for COOL_DOWN_SECONDS, then one probe decides. Kept in
    # CIRCUIT_CACHE, shared by every process (Redis in production).
    "CIRCUIT_BREAKER": {"FAILURES": 5, "WINDOW_SECONDS": 60, "COOL_DOWN_SECONDS": 60},
    "CIRCUIT_CACHE": "default",
    # SMS pumping defence (apps may override keys in App.pumping_settings). The
    # share of verification codes that get verified is counted per number range
    # (the number without its last RANGE_DIGITS digits) and per country over
    # WINDOW_SECONDS (in BUCKET_SECONDS slices). When a range or country with at
    # least *_MIN_VOLUME codes in the window falls below MAX_RATIO times the
    # app's baseline (its share over BASELINE_SECONDS, or DEFAULT_BASELINE
    # before BASELINE_MIN_VOLUME codes), new sends there are held back until an
    # operator lifts the block. Counters live in PUMPING_CACHE.
    "PUMPING_DEFENCE": {
        "ENABLED": True,
        "RANGE_DIGITS": 6,
        "WINDOW_SECONDS": 3600,
        "BUCKET_SECONDS": 300,
        "RANGE_MIN_VOLUME": 20,
        "COUNTRY_MIN_VOLUME": 200,
        "MAX_RATIO": 0.25,
        "BASELINE_SECONDS": 86400,
        "BASELINE_MIN_VOLUME": 100,
        "DEFAULT_BASELINE": 0.6,
    },
    "PUMPING_CACHE": "default",
    # Where the pumping counters share their Redis with the sending limits, a
    # verify's counts wait in its process for that process's next send, whose
    # script adds them (no round trip of their own); a background thread
    # writes what still waits after this many seconds. 0: a verify counts at once.
    "VERIFIED_COUNT_DELAY_SECONDS": 1.0,
}

#: Settings holding dotted paths, imported on access.
IMPORT_STRINGS: tuple[str, ...] = ("ADAPTER",)


class AppSettings:
    """Attribute access over ``settings.SMS_SERVICE`` merged with :data:`DEFAULTS`."""

    def __init__(self, defaults: dict[str, Any], import_strings: tuple[str, ...]):
        self._defaults = defaults
        self._import_strings = import_strings
        self._cached: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "SMS_SERVICE", None) or {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._defaults:
            raise AttributeError(f"Invalid sms_service setting: {name!r}")
        if name not in self._cached:
            value = self.user_settings.get(name, self._defaults[name])
            if name in self._import_strings and isinstance(value, str):
                value = import_string(value)
            self._cached[name] = value
        return self._cached[name]

    def reload(self) -> None:
        self._cached.clear()


app_settings = AppSettings(DEFAULTS, IMPORT_STRINGS)


def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == "SMS_SERVICE":
        app_settings.reload()


setting_changed.connect(_reload_settings)
