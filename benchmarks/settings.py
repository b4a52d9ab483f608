"""Settings of the benchmark server (benchmarks/sending_throughput.py starts it).

The production shape on one machine: PostgreSQL (BENCH_DATABASE_URL), the Redis
cache for rate limits when BENCH_CACHE_URL is set, DEBUG off, the usual
middleware. Two differences from a deployment, both stated in the script's
output:

* BENCH_DELIVERY=inline: delivery runs at commit (``ASYNC`` off) through a
  backend that hands each message to the load generator as a UDP datagram
  (benchmarks/backend.py), so it can read each code back; a deployment hands
  that work to a Celery worker, so the request does more;
  BENCH_DELIVERY=queued: the request publishes the task to Redis as deployed
  and the code reaches the client through the same datagram (benchmarks/urls.py);
* the per-IP and per-prefix sending limits are raised (one client address and
  one number prefix send everything); every other limit keeps its default and
  still runs on every request.
"""

import copy
import os

import dj_database_url

from sms_service.conf import DEFAULTS

SECRET_KEY = "benchmark-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
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
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
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
_rate_limits["ip"] = [(60, 10**9)]
_rate_limits["prefix"] = [(3600, 10**9)]

#: "inline": delivery runs at commit inside the request, through the backend.
#: "queued": the request enqueues the Celery task on Redis as in a deployment (no
#: worker consumes it during the run) and a message_queued receiver sends the
#: code to the load generator (see benchmarks/urls.py).
BENCH_DELIVERY = os.environ.get("BENCH_DELIVERY", "inline")

SMS_SERVICE = {
    "ASYNC": BENCH_DELIVERY == "queued",
    "BACKENDS": {
        "default": {
            "BACKEND": "benchmarks.backend.LoadGeneratorBackend",
            "OPTIONS": {"ADDRESS": os.environ.get("BENCH_CODE_ADDRESS", "127.0.0.1:9")},
        }
    },
    "RATE_LIMITS": _rate_limits,
}

CELERY_TASK_ALWAYS_EAGER = BENCH_DELIVERY != "queued"
CELERY_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "memory://")
CELERY_TASK_DEFAULT_QUEUE = "sms-bench"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
