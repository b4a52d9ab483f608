"""The benchmark server's URLs: the app's API, plus the baseline endpoint.

The baseline is a bare DRF view doing one INSERT and one SELECT on the same
database: the cost of "a Django REST endpoint that touches the database once
each way", against which a requestSmsCode -> verifySmsCode cycle is compared.
"""

from django.conf import settings
from django.db import connection
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

BASELINE_TABLE = "bench_baseline"


class BaselineView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        phone = str(request.data.get("mobilePhoneNumber", ""))[:20]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {BASELINE_TABLE} (phone, created_at) VALUES (%s, now()) "
                "RETURNING id",
                [phone],
            )
            (row_id,) = cursor.fetchone()
            cursor.execute(
                f"SELECT id, phone, created_at FROM {BASELINE_TABLE} WHERE id = %s", [row_id]
            )
            cursor.fetchone()
        return Response({})


if settings.BENCH_DELIVERY == "queued":
    # Delivery is left queued on the broker: the code reaches the load generator
    # through this receiver instead (the same document the file backend writes).
    import json
    import os

    from benchmarks import celery_app  # noqa: F401  (the app the task is sent with)
    from benchmarks.backend import document_path
    from sms_service.services.secrets import decrypt
    from sms_service.signals import message_queued

    def _write_code(sender, message, **kwargs):
        directory = settings.SMS_SERVICE["BACKENDS"]["default"]["OPTIONS"]["PATH"]
        final = document_path(directory, message.phone)
        tmp = f"{final}.{message.pk}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"to": message.phone, "body": decrypt(message.payload)}, fh,
                      ensure_ascii=False)
        os.replace(tmp, final)

    message_queued.connect(_write_code, dispatch_uid="bench-write-code")


urlpatterns = [
    path("bench/baseline", BaselineView.as_view()),
    path("", include("sms_service.urls")),
]
