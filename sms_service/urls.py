"""Include with ``path("", include("sms_service.urls"))``: the API must sit at the
root, since the LeanCloud SDKs call ``<server>/1.1/...``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from .api import urls as api_urls

app_name = "sms_service"

urlpatterns = [
    *api_urls.urlpatterns,
    path("sms_service/schema", SpectacularAPIView.as_view(), name="schema"),
    path(
        "sms_service/docs",
        SpectacularRedocView.as_view(url_name="sms_service:schema"),
        name="docs",
    ),
    *api_urls.catch_all,
]
