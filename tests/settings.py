"""Test settings: SQLite + locmem by default; DATABASE_URL / CACHE_URL switch the
suite to the real PostgreSQL and Redis services (CI sets both)."""

import os

import dj_database_url
from corsheaders.defaults import default_headers

from sms_service.cors import LEANCLOUD_HEADERS

SECRET_KEY = "tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

DATABASES = {
    "default": dj_database_url.config(default="sqlite://:memory:", conn_max_age=0)
}

if os.environ.get("CACHE_URL", "").startswith("redis"):
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",  # keeps its client: fewer round trips
            "LOCATION": os.environ["CACHE_URL"],
            # Server processes started by a test share the test's prefix (and so
            # its rate-limit counters) through SMS_TEST_CACHE_PREFIX.
            "KEY_PREFIX": os.environ.get("SMS_TEST_CACHE_PREFIX", f"sms-tests-{os.getpid()}"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests that move the clock with time_machine keep their rate-limit counters here:
# Redis expires keys on its own clock, which a test cannot move.
CACHES["clock"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                   "LOCATION": "clock"}

STATIC_URL = "/static/"
MEDIA_ROOT = os.path.join(os.path.dirname(__file__), "..", "var", "test-media")
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "sms_service.hashers.LeanCloudPasswordHasher",  # users imported from LeanCloud
]

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")

CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_HEADERS = (*default_headers, *LEANCLOUD_HEADERS)

SMS_SERVICE = {
    "BACKENDS": {"default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"}},
    # The test project prices every region explicitly at 0 unless a test adds
    # Price rows; without a default an unpriced region is refused.
    "DEFAULT_UNIT_PRICES": {"sms": "0", "voice": "0"},
}

SPECTACULAR_SETTINGS = {"TITLE": "django-sms-service", "REDOC_DIST": "SIDECAR"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"]},
}

# --- Real-worker tests (tests/test_worker.py) -----------------------------------
# The `celery worker` subprocess those tests start reads this same module; these
# switches give it the file backend (so the test can see what was sent) and turn
# eager mode off. Unset, nothing changes.
if os.environ.get("SMS_TEST_BACKEND") == "file":
    SMS_SERVICE["BACKENDS"] = {
        "default": {
            "BACKEND": "sms_service.backends.file.FileBackend",
            "OPTIONS": {"PATH": os.environ["SMS_FILE_PATH"]},
        }
    }
if os.environ.get("SMS_TEST_BACKEND") == "slowfile":
    SMS_SERVICE["BACKENDS"] = {
        "default": {
            "BACKEND": "tests.provider_delay.SlowFileBackend",
            "OPTIONS": {"PATH": os.environ["SMS_FILE_PATH"],
                        # Sends in batches when the reliability suite asks.
                        "BATCH_SIZE": int(os.environ.get("SMS_TEST_BATCH_SIZE", "1"))},
        }
    }
if os.environ.get("SMS_TEST_LOAD") == "1":
    # A load generator on one address sending to many numbers: only the
    # per-number limits stay.
    SMS_SERVICE["RATE_LIMITS"] = {
        "app_number_interval": 10,
        "signature_number_interval": 60,
        "signature_number_daily": {"verification": 10, "notification": 15, "marketing": 15},
        "voice": [(30, 1), (3600, 3), (86400, 5)],
        "ip": [(60, 10**6)],
        "prefix": [(3600, 10**6)],
    }
    # Unverified codes to one number range are what the pumping defence stops.
    SMS_SERVICE["PUMPING_DEFENCE"] = {"ENABLED": False}
if os.environ.get("CELERY_TASK_ALWAYS_EAGER") == "0":
    CELERY_TASK_ALWAYS_EAGER = False
