"""The delivery benchmark's Celery app: the package's tasks plus a no-op task
with the same options as ``deliver_message`` (the baseline)."""

from celery import Celery

app = Celery("sms-delivery-bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["sms_service"])
app.set_default()


@app.task(name="benchmarks.noop", acks_late=True, reject_on_worker_lost=True,
          ignore_result=True)
def noop(message_id: int) -> None:
    """Does nothing: what the worker costs per task before any delivery work."""
