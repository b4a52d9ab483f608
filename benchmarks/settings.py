"""Settings of the benchmark server (benchmarks/sending_throughput.py starts it).

The production shape on one machine: PostgreSQL (BENCH_DATABASE_URL) with
persistent connections, the Redis cache for rate limits and the pumping
defence (BENCH_CACHE_URL), DEBUG off, Django's default middleware plus CORS,
billing on (the script prices CN and tops the apps up). Differences from a
deployment, all benchmark-only:

* the per-IP sending windows are raised (one client address sends everything);
  every other limit keeps its default and runs on every request;
* the adapter (benchmarks/adapter.py) copies each drawn code into the
  ``X-Bench-Code`` response header, so the load generator can verify it;
* BENCH_DELIVERY=queued (as deployed with a network provider, one message at
  a time) and BENCH_DELIVERY=woken (as deployed with a backend that sends in
  batches of 100): the request wakes the delivery runs, publishing a task to
  Redis only when none is pending (a queue nothing consumes during a run,
  emptied after each);
  BENCH_DELIVERY=inline: delivery runs inside the request, at commit, through
  a provider that accepts at once (benchmarks/backend.py).
"""

import copy
import os

import dj_database_url

from sms_service.conf import DEFAULTS

SECRET_KEY = "benchmark-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "drf_spectacular",
    "corsheaders",
    "captcha",
    "sms_service",
    "benchmarks",  # the baseline endpoint's table
]

MIDDLEWARE = [
    "benchmarks.adapter.CodeHeaderMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sms_bench"),
        conn_max_age=600,
    )
}

if os.environ.get("BENCH_CACHE_URL", "").startswith("redis"):
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",  # keeps its client: fewer round trips
            "LOCATION": os.environ["BENCH_CACHE_URL"],
            "KEY_PREFIX": os.environ.get("BENCH_CACHE_PREFIX", "sms-bench"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CORS_ALLOW_ALL_ORIGINS = True

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

_rate_limits = copy.deepcopy(DEFAULTS["RATE_LIMITS"])
_rate_limits["ip"] = [(60, 10**9), (3600, 10**9)]

BENCH_DELIVERY = os.environ.get("BENCH_DELIVERY", "queued")


def sms_service_for(delivery: str) -> dict:
    """SMS_SERVICE for a delivery mode: "queued" (the backend sends one message
    at a time, as a network provider does), "woken" (it sends in batches of
    100) or "inline"; commits wake the delivery runs in both queued modes."""
    return {
        "ADAPTER": "benchmarks.adapter.BenchAdapter",
        "ASYNC": delivery != "inline",
        "BACKENDS": {"default": {"BACKEND": "benchmarks.backend.InstantBackend",
                                 "OPTIONS": {"BATCH_SIZE": 100 if delivery == "woken" else 1}}},
        "RATE_LIMITS": _rate_limits,
    }


SMS_SERVICE = sms_service_for(BENCH_DELIVERY)

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "memory://")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BENCH_QUEUE", "sms-bench")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
