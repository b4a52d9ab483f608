from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("sms_service.urls")),
]

handler500 = "sms_service.api.views.server_error"
