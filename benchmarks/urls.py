"""The benchmark server's URLs: the app's API, plus the two baseline endpoints.

The baselines are bare DRF views through the ORM, the cost of "a Django REST
endpoint that touches the database once":

* ``POST /bench/insert`` one INSERT of a small row (``BaselineRow``);
* ``GET /bench/select/<pk>`` one SELECT by primary key among 1,000 rows
  (``ReadRow``).

benchmarks/sending_throughput.py measures each alone and compares a
requestSmsCode -> verifySmsCode cycle with the pair ``1 / (1/insert + 1/select)``:
the rate of a cycle that did one of each.
"""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.models import BaselineRow, ReadRow


class InsertView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        row = BaselineRow.objects.create(phone=str(request.data.get("mobilePhoneNumber", ""))[:20])
        return Response({"id": row.pk})


class SelectView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request, pk: int):
        row = ReadRow.objects.get(pk=pk)
        return Response({"id": row.pk, "phone": row.phone})


urlpatterns = [
    path("bench/insert", InsertView.as_view()),
    path("bench/select/<int:pk>", SelectView.as_view()),
    path("", include("sms_service.urls")),
]
