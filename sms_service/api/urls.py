"""LeanCloud-compatible routes. Exact paths, no trailing slash; an optional extra
leading slash is tolerated (a server URL configured with a trailing slash)."""

from __future__ import annotations

from django.urls import re_path

from . import captcha, sms, status, users, views


def lc(route: str, view, name: str):
    return re_path(rf"^(?:/)?1\.1/{route}$", view, name=name)


urlpatterns = [
    lc("requestSmsCode", sms.RequestSmsCodeView.as_view(), "request-sms-code"),
    lc(r"verifySmsCode/(?P<code>[^/]*)", sms.VerifySmsCodeView.as_view(), "verify-sms-code"),
    # Phone users (LeanCloud's _User subset).
    lc("users", users.UsersView.as_view(), "users"),
    lc("login", users.LoginView.as_view(), "login"),
    lc("users/me", users.MeView.as_view(), "users-me"),
    lc(r"users/(?P<object_id>[A-Za-z0-9]+)", users.UserDetailView.as_view(), "user"),
    lc(r"users/(?P<object_id>[A-Za-z0-9]+)/updatePassword",
       users.UpdatePasswordView.as_view(), "update-password"),
    lc(r"users/(?P<object_id>[A-Za-z0-9]+)/refreshSessionToken",
       users.RefreshSessionTokenView.as_view(), "refresh-session-token"),
    # The SDKs' generic object routes for the _User class: the Python SDK signs up
    # with POST /classes/_User, both save a user with PUT /classes/_User/<objectId>.
    lc("classes/_User", users.UsersView.as_view(), "classes-user"),
    lc(r"classes/_User/(?P<object_id>[A-Za-z0-9]+)", users.UserDetailView.as_view(),
       "classes-user-detail"),
    lc("usersByMobilePhone", users.UsersByMobilePhoneView.as_view(), "users-by-mobile-phone"),
    lc("requestLoginSmsCode", users.RequestLoginSmsCodeView.as_view(),
       "request-login-sms-code"),
    lc("requestMobilePhoneVerify", users.RequestMobilePhoneVerifyView.as_view(),
       "request-mobile-phone-verify"),
    lc(r"verifyMobilePhone/(?P<code>[^/]*)", users.VerifyMobilePhoneView.as_view(),
       "verify-mobile-phone"),
    lc("requestPasswordResetBySmsCode", users.RequestPasswordResetView.as_view(),
       "request-password-reset-by-sms-code"),
    lc(r"resetPasswordBySmsCode/(?P<code>[^/]*)", users.ResetPasswordView.as_view(),
       "reset-password-by-sms-code"),
    lc("requestChangePhoneNumber", users.RequestChangePhoneNumberView.as_view(),
       "request-change-phone-number"),
    lc("changePhoneNumber", users.ChangePhoneNumberView.as_view(), "change-phone-number"),
    lc("requestCaptcha", captcha.RequestCaptchaView.as_view(), "request-captcha"),
    lc("captchaImage", captcha.captcha_image, "captcha-image"),
    lc("verifyCaptcha", captcha.VerifyCaptchaView.as_view(), "verify-captcha"),
    # Message status query (not in LeanCloud's API).
    lc("sms/messages", status.MessageListView.as_view(), "sms-messages"),
]

#: Appended last by sms_service.urls: JSON 404 for anything else under /1.1/.
catch_all = [re_path(r"^(?:/)?1\.1(?:/.*)?$", views.not_found, name="not-found")]
