"""Settings of the delivery benchmark (benchmarks/delivery_throughput.py): the
worker as deployed by the example project (acks late, prefetch 1, database
connections kept across tasks) with the no-network dummy backend, on
PostgreSQL (BENCH_DATABASE_URL) and the broker of BENCH_BROKER_URL."""

import os

import dj_database_url

from benchmarks.settings import *  # noqa: F403
from benchmarks.support import NO_SENDING_LIMITS

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sms_delivery_bench"),
        conn_max_age=600,
    )
}

SMS_SERVICE = {
    "ASYNC": True,
    "BACKENDS": {"default": {"BACKEND": "sms_service.backends.dummy.DummyBackend"}},
    # Thousands of unverified codes to one range: the defence would hold them back.
    "PUMPING_DEFENCE": {"ENABLED": False},
    "RATE_LIMITS": NO_SENDING_LIMITS,
}

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/15")
CELERY_TASK_DEFAULT_QUEUE = "sms-delivery-bench"
# As the example project deploys the worker.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_PREFETCH", "1"))
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_DB_REUSE_MAX = int(os.environ.get("BENCH_DB_REUSE_MAX", "1000"))
