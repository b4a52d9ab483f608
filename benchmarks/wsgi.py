"""WSGI entry point of the benchmark server (gunicorn benchmarks.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

application = get_wsgi_application()

from benchmarks import celery_app  # noqa: E402,F401  (the app tasks are published with)
