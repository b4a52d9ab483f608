"""The account pages. Include them where you like, e.g.::

    path("accounts/phone/", include("sms_service.accounts.urls")),

Names live in the ``sms_service_accounts`` namespace.
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "sms_service_accounts"

urlpatterns = [
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("login/", views.CodeLoginView.as_view(), name="login"),
    path("login/password/", views.PasswordLoginView.as_view(), name="login-password"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/reset/", views.ResetPasswordView.as_view(), name="reset-password"),
    path("verify/", views.VerifyPhoneView.as_view(), name="verify"),
    path("change/", views.ChangePhoneView.as_view(), name="change-phone"),
]
