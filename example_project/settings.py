"""Settings of the example project.

Production mode is the default: with ``DJANGO_DEBUG`` unset or ``0`` the
settings refuse to load (ImproperlyConfigured, naming what is missing) unless
the environment gives a secret key of its own, the allowed hosts and every
service, so a missing variable never silently means SQLite, a process-local
cache, eager Celery or the public example key:

DJANGO_SECRET_KEY     a long random string (never the example key)
DJANGO_ALLOWED_HOSTS  comma-separated host names, e.g. sms.example.com
DATABASE_URL          e.g. postgres://postgres@127.0.0.1:5432/sms
CACHE_URL             e.g. redis://127.0.0.1:6379/1 (REDIS_URL is read too)
CELERY_BROKER_URL     e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//

``DJANGO_DEBUG=1`` (what ``make demo`` sets) is the development mode: it runs
with zero configuration (SQLite, locmem cache, eager Celery, console SMS backend)
and each variable above switches one piece to a real service.

Optional in both modes:

SMS_BACKEND           dotted path of the SMS backend class (console by default)
SMS_FILE_PATH         directory for sms_service.backends.file.FileBackend
SMS_PUBLIC_URL        public base URL (delivery-receipt callbacks)
SMS_SITE_APP_ID       app id the account pages at /accounts/phone/ use
DJANGO_HSTS_SECONDS   Strict-Transport-Security max-age in production (3600)
DJANGO_SSL_REDIRECT   redirect plain HTTP to HTTPS in production (1)
DJANGO_HSTS_INCLUDE_SUBDOMAINS, DJANGO_HSTS_PRELOAD   1 to extend HSTS (0)
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers
from django.conf import global_settings
from django.core.exceptions import ImproperlyConfigured

from sms_service.cors import LEANCLOUD_HEADERS

BASE_DIR = Path(__file__).resolve().parent.parent
# Demo database, uploads and static files live in var/ (git-ignored).
(BASE_DIR / "var").mkdir(exist_ok=True)
env = os.environ.get

#: The key of the development mode; production refuses it.
EXAMPLE_SECRET_KEY = "example-project-insecure-key-change-me"
DEBUG = env("DJANGO_DEBUG", "0") == "1"
SECRET_KEY = env("DJANGO_SECRET_KEY") or (EXAMPLE_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = [
    host.strip()
    for host in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "").split(",")
    if host.strip()
]
if not DEBUG:
    _missing = [
        name
        for name, value in (
            ("DJANGO_SECRET_KEY", SECRET_KEY != EXAMPLE_SECRET_KEY and SECRET_KEY),
            ("DJANGO_ALLOWED_HOSTS", ALLOWED_HOSTS),
            ("DATABASE_URL", env("DATABASE_URL")),
            ("CACHE_URL", env("CACHE_URL") or env("REDIS_URL")),
            ("CELERY_BROKER_URL", env("CELERY_BROKER_URL")),
        )
        if not value
    ]
    if _missing:
        raise ImproperlyConfigured(
            "Production mode (DJANGO_DEBUG is not 1) needs these environment variables: "
            + ", ".join(_missing)
            + ". DJANGO_SECRET_KEY must be your own (not the example key): it keys the "
            "code digests and the message encryption. For a local try-out set "
            "DJANGO_DEBUG=1 (make demo does)."
        )
ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "example_project" / "locale"]  # the demo's front page
LOGIN_URL = "/accounts/phone/login/"
LOGIN_REDIRECT_URL = "/"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "var" / "media"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "captcha",
    "sms_service",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The page language follows the browser's Accept-Language (English or Chinese).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "example_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# Users imported from LeanCloud keep their passwords until their first login.
PASSWORD_HASHERS = [
    *global_settings.PASSWORD_HASHERS,
    "sms_service.hashers.LeanCloudPasswordHasher",
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'var' / 'demo.sqlite3'}", conn_max_age=60
    )
}

_cache_url = env("CACHE_URL") or env("REDIS_URL")
if _cache_url:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",  # keeps its client: fewer round trips
            "LOCATION": _cache_url,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep each worker process's database connection across tasks (Celery closes
# it after every task otherwise: a new PostgreSQL connection per delivery).
# The package's tasks still drop a connection that failed or is older than
# CONN_MAX_AGE.
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    # Every 10 s: a code whose worker died before calling the provider goes out
    # again within STUCK_CLAIMED_AFTER_SECONDS plus this (a user waits for it).
    "sms-redispatch-stuck": {
        "task": "sms_service.tasks.redispatch_stuck_messages",
        "schedule": timedelta(seconds=10),
    },
    "sms-poll-delivery-statuses": {
        "task": "sms_service.tasks.poll_delivery_statuses",
        "schedule": timedelta(minutes=5),
    },
    "sms-pull-delivery-receipts": {
        "task": "sms_service.tasks.pull_delivery_receipts",
        "schedule": timedelta(minutes=1),
    },
    "sms-reconcile-unmatched-receipts": {
        "task": "sms_service.tasks.reconcile_unmatched_receipts",
        "schedule": timedelta(minutes=5),
    },
    "sms-expire-codes": {
        "task": "sms_service.tasks.expire_verification_codes",
        "schedule": timedelta(minutes=10),
    },
    "sms-redispatch-webhooks": {
        "task": "sms_service.tasks.redispatch_webhooks",
        "schedule": timedelta(minutes=5),
    },
    "sms-settle-overdue": {
        "task": "sms_service.tasks.settle_overdue_messages",
        "schedule": timedelta(hours=1),
    },
    "sms-prune-phone-users": {
        "task": "sms_service.tasks.prune_phone_users",
        "schedule": timedelta(hours=1),
    },
    "sms-remove-stale-captchas": {
        "task": "sms_service.tasks.remove_stale_captchas",
        "schedule": timedelta(minutes=5),
    },
}

_backend = env("SMS_BACKEND", "sms_service.backends.console.ConsoleBackend")
_options = {"PATH": env("SMS_FILE_PATH")} if env("SMS_FILE_PATH") else {}
SMS_SERVICE = {
    "BACKENDS": {"default": {"BACKEND": _backend, "OPTIONS": _options}},
    "PUBLIC_BASE_URL": env("SMS_PUBLIC_URL", ""),
    # The demo app (created by `manage.py sms_service_demo`) serves the account pages.
    "SITE_APP_ID": env("SMS_SITE_APP_ID", "DemoSiteApp0000000000000-gzGzoHsz"),
}

CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_HEADERS = (*default_headers, *LEANCLOUD_HEADERS)

SPECTACULAR_SETTINGS = {
    "TITLE": "django-sms-service",
    "DESCRIPTION": "LeanCloud-compatible SMS REST API.",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

if not DEBUG:
    # Behind the TLS-terminating proxy of the README (it sets X-Forwarded-Proto and
    # strips any copy sent by the client): `manage.py check --deploy` passes.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env("DJANGO_SSL_REDIRECT", "1") == "1"
    SECURE_HSTS_SECONDS = int(env("DJANGO_HSTS_SECONDS", "3600"))
    # Domain-wide promises, so off unless you say so (check --deploy warns
    # security.W005 / W021 until then).
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "0") == "1"
    SECURE_HSTS_PRELOAD = env("DJANGO_HSTS_PRELOAD", "0") == "1"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Codes travel in URL paths (/1.1/verifySmsCode/<code>): mask them in every log.
    "filters": {"redact_codes": {"()": "sms_service.logging.RedactCodesFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_codes"]},
    },
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}

try:  # real provider keys stay out of the repository
    from .settings_local import *  # noqa: F401,F403
except ImportError:
    pass
