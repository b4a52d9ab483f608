"""The suite's Celery app: eager unless CELERY_TASK_ALWAYS_EAGER is off (the
real-worker tests start their own worker process on the broker)."""

from celery import Celery

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["sms_service"])
app.set_default()
