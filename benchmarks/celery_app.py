"""The benchmark server's Celery app (used when BENCH_DELIVERY=queued)."""

from celery import Celery

app = Celery("sms-bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["sms_service"])
app.set_default()
