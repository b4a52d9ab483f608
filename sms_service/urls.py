"""Include with ``path("", include("sms_service.urls"))``: the API must sit at the
root, since the LeanCloud SDKs call ``<server>/1.1/...``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from .api import receipts as receipt_views
from .api import urls as api_urls
from .api.schema import schema_settings

app_name = "sms_service"

urlpatterns = [
    *api_urls.urlpatterns,
    # The schema covers this app's API only, not the host's other URLs.
    # schema=None: the schema and docs pages describe the API, they are not part of
    # it (with DRF's default schema class they would break drf-spectacular's
    # deploy check, drf_spectacular.E001).
    path("sms_service/schema",
         SpectacularAPIView.as_view(urlconf=api_urls.urlpatterns, schema=None,
                                    custom_settings=schema_settings()),
         name="schema"),
    path(
        "sms_service/docs",
        SpectacularRedocView.as_view(url_name="sms_service:schema", schema=None,
                                     template_name="sms_service/redoc.html"),
        name="docs",
    ),
    # Delivery receipts: one generic webhook per backend alias.
    path(
        "sms_service/receipts/<str:alias>",
        receipt_views.delivery_receipt,
        name="delivery-receipt",
    ),
    *api_urls.catch_all,
]
