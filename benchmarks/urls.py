"""The benchmark server's URLs: the app's API, plus the two baseline endpoints.

Both baselines are bare DRF views doing one INSERT and one SELECT on the same
database, the cost of "a Django REST endpoint that touches the database once
each way", against which a requestSmsCode -> verifySmsCode cycle is compared:

* ``/bench/baseline`` the way a DRF endpoint does it, through the ORM;
* ``/bench/baseline-sql`` the same two statements as raw SQL on the cursor, the
  cheapest endpoint Django and DRF can serve (a floor, printed for reference).
"""

from django.conf import settings
from django.db import connection
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.models import BaselineRow


class BaselineView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        row = BaselineRow.objects.create(phone=str(request.data.get("mobilePhoneNumber", ""))[:20])
        BaselineRow.objects.get(pk=row.pk)
        return Response({})


class RawSqlBaselineView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        phone = str(request.data.get("mobilePhoneNumber", ""))[:20]
        table = BaselineRow._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (phone, created_at) VALUES (%s, now()) RETURNING id",
                [phone],
            )
            (row_id,) = cursor.fetchone()
            cursor.execute(f"SELECT id, phone, created_at FROM {table} WHERE id = %s", [row_id])
            cursor.fetchone()
        return Response({})


if settings.BENCH_DELIVERY == "queued":
    # Delivery is left queued on the broker: the code reaches the load generator
    # through this receiver instead (the datagram the backend would send).
    import socket

    from benchmarks import celery_app  # noqa: F401  (the app the task is sent with)
    from benchmarks.backend import datagram, parse_address
    from sms_service.crypto import decrypt
    from sms_service.signals import message_queued

    _socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _address = parse_address(settings.SMS_SERVICE["BACKENDS"]["default"]["OPTIONS"]["ADDRESS"])

    def _send_code(sender, message, **kwargs):
        _socket.sendto(datagram(message.phone, decrypt(message.payload)), _address)

    message_queued.connect(_send_code, dispatch_uid="bench-send-code")


urlpatterns = [
    path("bench/baseline", BaselineView.as_view()),
    path("bench/baseline-sql", RawSqlBaselineView.as_view()),
    path("", include("sms_service.urls")),
]
