from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path("", TemplateView.as_view(template_name="example_project/home.html"), name="home"),
    path("admin/", admin.site.urls),
    path("captcha/", include("captcha.urls")),
    path("accounts/phone/", include("sms_service.accounts.urls")),
    path("", include("sms_service.urls")),
]

handler400 = "sms_service.api.views.bad_request"
handler500 = "sms_service.api.views.server_error"
