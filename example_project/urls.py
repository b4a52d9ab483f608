from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("captcha/", include("captcha.urls")),
    path("", include("sms_service.urls")),
]

handler500 = "sms_service.api.views.server_error"
