"""LeanCloud-compatible routes. Exact paths, no trailing slash; an optional extra
leading slash is tolerated (a server URL configured with a trailing slash)."""

from __future__ import annotations

from django.urls import re_path

from . import sms, status, views


def lc(route: str, view, name: str):
    return re_path(rf"^(?:/)?1\.1/{route}$", view, name=name)


urlpatterns = [
    lc("requestSmsCode", sms.RequestSmsCodeView.as_view(), "request-sms-code"),
    lc(r"verifySmsCode/(?P<code>[^/]*)", sms.VerifySmsCodeView.as_view(), "verify-sms-code"),
    # Message status query (issue 5; not in LeanCloud's API).
    lc("sms/messages", status.MessageListView.as_view(), "sms-messages"),
]

#: Appended last by sms_service.urls: JSON 404 for anything else under /1.1/.
catch_all = [re_path(r"^(?:/)?1\.1(?:/.*)?$", views.not_found, name="not-found")]
