from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/phone/", include("sms_service.accounts.urls")),
    # The account pages' base template on its own (layout and language tests, and
    # where the pages send a logged-in user).
    path("tests/base/", TemplateView.as_view(template_name="sms_service/accounts/base.html")),
    path("", include("sms_service.urls")),
]

handler400 = "sms_service.api.views.bad_request"
handler500 = "sms_service.api.views.server_error"
