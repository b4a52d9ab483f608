"""LeanCloud request authentication: X-LC-Id with X-LC-Key or X-LC-Sign.

``X-LC-Key: <key>`` or ``<masterKey>,master``; ``X-LC-Sign: <md5(ts + key)>,<ts>``
with an optional ``,master``. The digest must be lower-case hex, as LeanCloud
requires. The timestamp (milliseconds since the epoch) must lie within
``SIGN_TIMESTAMP_WINDOW_SECONDS`` of the server's clock, so a captured header
stops working; ``None`` turns that check off. The legacy ``X-AVOSCloud-*`` names
are accepted too.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.crypto import constant_time_compare
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from ..conf import app_settings
from ..exceptions import UnauthorizedError
from ..models import App
from ..services.tenants import get_api_app

_HEADERS = {
    "id": ("HTTP_X_LC_ID", "HTTP_X_AVOSCLOUD_APPLICATION_ID"),
    "key": ("HTTP_X_LC_KEY", "HTTP_X_AVOSCLOUD_APPLICATION_KEY"),
    "sign": ("HTTP_X_LC_SIGN", "HTTP_X_AVOSCLOUD_REQUEST_SIGN"),
    "session": ("HTTP_X_LC_SESSION", "HTTP_X_AVOSCLOUD_SESSION_TOKEN"),
}


#: What an app id can look like (anything else is refused before any lookup).
_APP_ID = re.compile(r"[!-~]{1,64}")


@dataclass(frozen=True)
class AppCredentials:
    """``request.auth`` for LeanCloud requests."""

    app: App
    is_master: bool
    session_token: str | None = None


def _header(request: Request, name: str) -> str:
    for meta_key in _HEADERS[name]:
        value = request.META.get(meta_key)
        if value:
            return value.strip()
    return ""


def sign(timestamp: str, key: str) -> str:
    """The X-LC-Sign digest: lower-case hex MD5 of timestamp + key."""
    return hashlib.md5((timestamp + key).encode(), usedforsecurity=False).hexdigest()


def _matches_a_key(app: App, *, master: bool, test: Callable[[str], bool]) -> bool:
    """Whether ``test(key)`` holds for a key the app accepts (the current one, or
    a rotated-out one during its grace period). Every key is tried."""
    results = [test(key) for key in app.accepted_keys(master=master)]
    return any(results)


def check_key_header(app: App, value: str) -> bool | None:
    """Master flag for a valid X-LC-Key value, None when it is wrong."""
    key, _, flag = value.partition(",")
    if flag not in ("", "master"):
        return None
    master = flag == "master"
    if _matches_a_key(app, master=master, test=lambda k: constant_time_compare(key, k)):
        return master
    return None


def check_sign_header(app: App, value: str) -> bool | None:
    """Master flag for a valid X-LC-Sign value, None when it is wrong."""
    parts = value.split(",")
    if len(parts) not in (2, 3) or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    digest, timestamp = parts[0], parts[1]
    is_master = len(parts) == 3
    if is_master and parts[2] != "master":
        return None
    if not _matches_a_key(
        app, master=is_master,
        test=lambda key: constant_time_compare(digest, sign(timestamp, key)),
    ):
        return None
    return is_master if timestamp_is_fresh(timestamp) else None


def timestamp_is_fresh(timestamp: str) -> bool:
    """Whether a signed timestamp (milliseconds) is within the configured window
    of now, in either direction (a clock ahead of ours is as suspect as a replay)."""
    window = app_settings.SIGN_TIMESTAMP_WINDOW_SECONDS
    if window is None:
        return True
    return abs(time.time() * 1000 - int(timestamp[:20])) <= window * 1000


class LeanCloudAuthentication(BaseAuthentication):
    """Resolves the App; every /1.1/ request needs valid app credentials."""

    def authenticate(self, request: Request):
        app_id = _header(request, "id")
        key = _header(request, "key")
        signature = _header(request, "sign")
        if not app_id or not (key or signature) or not _APP_ID.fullmatch(app_id):
            raise UnauthorizedError()
        app = get_api_app(app_id)
        if app is None:
            raise UnauthorizedError()
        is_master = check_sign_header(app, signature) if signature else check_key_header(app, key)
        if is_master is None:
            raise UnauthorizedError()
        session = _header(request, "session") or None
        return (None, AppCredentials(app=app, is_master=is_master, session_token=session))

    def authenticate_header(self, request: Request) -> str:
        return "X-LC-Sign"
