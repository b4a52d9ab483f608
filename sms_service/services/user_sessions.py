"""Sessions and login lockouts of phone users, and the per-IP limit of the user API.

A session token is random; only its keyed hash is stored. ``LOGIN_MAX_FAILURES``
failed logins within ``LOGIN_LOCKOUT_SECONDS`` lock the account (per app) until
``LOGIN_LOCKOUT_SECONDS`` after the last failure (219); a successful login
clears the count.
"""

from __future__ import annotations

import math
import secrets
import string
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..conf import app_settings
from ..crypto import token_digest, token_digests
from ..exceptions import (
    LoginLockedError,
    SessionRequiredError,
    TooManyRequestsError,
    UserNotFoundError,
)
from ..models import App, AppUser, LoginLockout, UserSession
from . import ratelimit

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN_LENGTH = 32
_SESSION_LABEL = "session-token"


# --- sessions --------------------------------------------------------------------------


def start_session(*, member: AppUser, client_ip: str | None = None) -> str:
    """A new session token for the member (only its keyed hash is stored)."""
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(_TOKEN_LENGTH))
    UserSession.objects.create(app_id=member.app_id, member=member, client_ip=client_ip,
                               token_hash=token_digest(label=_SESSION_LABEL, token=token))
    return token


def member_for_session(*, app: App, token: object) -> AppUser:
    """The member of a live session of ``app``: 206 without a token, 211 for an
    unknown, revoked or other app's token, or an inactive user."""
    if not token:
        raise SessionRequiredError()
    if not isinstance(token, str) or len(token) > 128:
        raise UserNotFoundError()
    session = (
        UserSession.objects.select_related("member__user")
        .filter(app=app, token_hash__in=token_digests(label=_SESSION_LABEL, token=token),
                revoked_at__isnull=True)
        .first()
    )
    if session is None or not session.member.user.is_active:
        raise UserNotFoundError()
    member = session.member
    member.app = app
    return member


def end_sessions(*, member: AppUser) -> None:
    """Revoke every live session of the member."""
    count = UserSession.objects.filter(member=member, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if count:
        signals.member_sessions_ended.send_robust(sender=AppUser, app=member.app,
                                                  member=member, count=count)


def revoke_sessions(*, sessions) -> int:
    """Revoke the given live sessions (the admin's action). Returns how many."""
    return sessions.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def refresh_session(*, member: AppUser, client_ip: str | None = None) -> str:
    """``refreshSessionToken``: every session ended, a new token returned."""
    with transaction.atomic():
        end_sessions(member=member)
        return start_session(member=member, client_ip=client_ip)


# --- lockout -----------------------------------------------------------------------------


def account_key(kind: str, value: object, member: AppUser | None) -> str:
    """The lockout key: the member when one matched, else what was typed."""
    if member is not None:
        return f"member:{member.object_id}"
    return f"{kind}:{value}"[:200]


def check_lock(*, app: App, account: str) -> bool:
    """Raise 219 while the account is locked; True when it has failures on record
    (which a successful login then clears)."""
    now = timezone.now()
    row = LoginLockout.objects.filter(app=app, account=account).values_list(
        "locked_until", flat=True
    )[:1]
    if not row:
        return False
    until = row[0]
    if until is not None and until > now:
        raise LoginLockedError(retry_after=max(1, math.ceil((until - now).total_seconds())))
    return True


def login_failed(*, app: App, account: str, member: AppUser | None) -> None:
    now = timezone.now()
    window = timedelta(seconds=app_settings.LOGIN_LOCKOUT_SECONDS)
    with transaction.atomic():
        row, _ = LoginLockout.objects.select_for_update().get_or_create(
            app=app, account=account,
            defaults={"failures": 0, "window_started_at": now, "last_failure_at": now,
                      "member": member},
        )
        if row.window_started_at <= now - window:
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        row.last_failure_at = now
        row.member = member
        locked = row.failures >= app_settings.LOGIN_MAX_FAILURES
        if locked:
            row.locked_until = now + window
        row.save()
    signals.member_login_failed.send_robust(sender=AppUser, app=app, account=account,
                                            member=member, failures=row.failures)
    if locked:
        signals.member_locked_out.send_robust(sender=AppUser, app=app, account=account,
                                              member=member, locked_until=row.locked_until)


def unlock(*, lockouts) -> int:
    """Clear the given lockouts (the admin's action). Returns how many."""
    count, _ = lockouts.delete()
    return count


def prune(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic hygiene: failure counts whose window and lock are over, and
    sessions revoked more than ``REVOKED_SESSIONS_KEEP_DAYS`` ago."""
    now = now or timezone.now()
    window = timedelta(seconds=app_settings.LOGIN_LOCKOUT_SECONDS)
    lockouts, _ = LoginLockout.objects.filter(
        window_started_at__lte=now - window, last_failure_at__lte=now - window,
    ).exclude(locked_until__gt=now).delete()
    keep = timedelta(days=app_settings.REVOKED_SESSIONS_KEEP_DAYS)
    sessions, _ = UserSession.objects.filter(revoked_at__lte=now - keep).delete()
    return {"lockouts": lockouts, "sessions": sessions}


def logged_in(*, app: App, account: str, member: AppUser, method: str,
               had_failures: bool) -> None:
    if had_failures:
        LoginLockout.objects.filter(app=app, account=account).delete()
    signals.member_logged_in.send_robust(sender=AppUser, app=app, member=member,
                                         method=method)


def take_ip(client_ip: str | None) -> None:
    if not client_ip:
        return
    ratelimit.take([
        ratelimit.Limit(ratelimit.WINDOW, f"user-ip:{client_ip}", TooManyRequestsError,
                        seconds=seconds, limit=limit)
        for seconds, limit in app_settings.USER_IP_LIMITS
    ])
