"""Celery app of the example project. Run a worker with:

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A example_project worker -l info
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
