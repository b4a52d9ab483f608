"""Phone users: sign-up, log-in, and the codes of user flows (sessions and
lockouts: :mod:`sms_service.services.user_sessions`).

Every function works inside one app: members, sessions and codes of another app
are never found. Users are the host project's ``AUTH_USER_MODEL``; an
:class:`~sms_service.models.AppUser` makes one a member of an app (see the
adapter's ``create_user`` for how usernames map onto the host's user table).

Codes go through the sending pipeline (:func:`sending.request_sms`, which also
checks and consumes CAPTCHA validate tokens) with a purpose of their own, so a
login code never resets a password. Calls that carry only the code (the JS SDK's
verifyMobilePhone and resetPasswordBySmsCode) find it by value within the app and
purpose; a number or a session narrows the search to that number.

The app's account options act as LeanCloud's console describes them:

* ``signup_sends_verification``: sign-up (or a number set with PUT users/<id>)
  with a number sends that number a verification code;
* ``forbid_unverified_login``: phone + password login refuses unverified numbers
  (215); username or email + password still works;
* ``allow_unverified_reset``: SMS password reset also for unverified numbers
  (otherwise 215);
* ``allow_sms_login``: members with a verified number may log in with an SMS code
  (requestLoginSmsCode, login with smsCode, usersByMobilePhone for an existing
  member); off: 119, unverified number: 215.

Lockout: ``LOGIN_MAX_FAILURES`` failed logins (wrong password or code at
``/1.1/login``) within ``LOGIN_LOCKOUT_SECONDS`` lock the account of that app until
``LOGIN_LOCKOUT_SECONDS`` after the last failure; every login path then answers
219. A successful login or a password reset clears the count. Every login and
code call also takes the per-IP windows of ``USER_IP_LIMITS`` (429).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from .. import signals
from ..adapter import get_adapter
from ..conf import app_settings
from ..exceptions import (
    DuplicateValueError,
    EmailTakenError,
    InvalidCodeError,
    InvalidEmailError,
    InvalidParameterError,
    InvalidPasswordError,
    InvalidUsernameError,
    OperationForbiddenError,
    PasswordMismatchError,
    PasswordMissingError,
    PhoneNumberNotFoundError,
    PhoneNumberNotVerifiedError,
    PhoneNumberTakenError,
    SmsServiceError,
    UsernameMissingError,
    UsernameTakenError,
    UserNotFoundError,
)
from ..models import (
    App,
    AppUser,
    CodePurpose,
    CodeStatus,
    LoginLockout,
    VerificationCode,
)
from ..phone import parse_phone
from . import codes, user_sessions
from .user_sessions import (  # noqa: F401  (public names, importable from here)
    end_sessions,
    member_for_session,
    prune,
    refresh_session,
    revoke_sessions,
    start_session,
    unlock,
)

logger = logging.getLogger(__name__)

MAX_USERNAME_LENGTH = 128
MAX_PASSWORD_LENGTH = 4096

#: Keys of a _User body the server manages itself: ignored when a client sends them.
SERVER_FIELDS = frozenset({
    "objectId", "createdAt", "updatedAt", "sessionToken", "emailVerified",
    "mobilePhoneVerified", "ACL", "authData", "salt", "smsCode", "code",
    "validate_token", "className", "__type",
})
#: Keys with a column of their own.
OWN_FIELDS = frozenset({"username", "password", "email", "mobilePhoneNumber"})

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_MAX_FIELDS = 64

#: The ``op`` of the default verification text, per purpose and language.
OPS = {
    CodePurpose.SIGNUP: {"zh": "注册或登录", "en": "sign up or log in"},
    CodePurpose.LOGIN: {"zh": "登录", "en": "log in"},
    CodePurpose.VERIFY_PHONE: {"zh": "验证手机号", "en": "verify your phone number"},
    CodePurpose.RESET_PASSWORD: {"zh": "重置密码", "en": "reset your password"},
    CodePurpose.CHANGE_PHONE: {"zh": "修改手机号", "en": "change your phone number"},
}

_UNSET: Any = object()


# --- members ---------------------------------------------------------------------------


def signup(*, app: App, username: object, password: object, email: object = None,
           phone: object = None, extra: dict[str, Any] | None = None,
           client_ip: str | None = None) -> AppUser:
    """Sign up with a username and password (``POST /1.1/users``).

    With a number and the app's "send verification SMS on sign-up" option, the
    number gets a verification code (not when the app requires CAPTCHA: the
    sign-up call carries no validate token; the client then calls
    requestMobilePhoneVerify with one). A failed send never undoes the sign-up.
    """
    username = clean_username(username)
    password = clean_password(password)
    email = clean_email(email)
    number = parse_phone(phone).e164 if phone not in (None, "") else None
    fields = clean_fields(extra or {})
    member = _create(app=app, username=username, password=password, email=email,
                     phone=number, phone_verified=False, extra=fields, method="password")
    if number and app.signup_sends_verification:
        _send_verification_after_change(app=app, member=member, client_ip=client_ip)
    return member


def create_member(*, app: App, username: object, password: str | None = None,
                  password_hash: str | None = None, email: object = None,
                  phone: object = None, phone_verified: bool = False,
                  email_verified: bool = False, extra: dict[str, Any] | None = None,
                  object_id: str | None = None,
                  created_at: datetime | None = None) -> AppUser:
    """A member as given (imports, scripts): no code, no SMS.

    ``password_hash`` is an encoded Django password (``algorithm$...``); without
    it and ``password`` the user gets an unusable password. An ``object_id``
    already used in the app raises :class:`DuplicateValueError` (137).
    """
    username = clean_username(username)
    if password is not None:
        password = clean_password(password)
    email = clean_email(email)
    number = parse_phone(phone).e164 if phone not in (None, "") else None
    fields = clean_fields(extra or {})
    if object_id is not None and (
        not isinstance(object_id, str) or not re.fullmatch(r"[A-Za-z0-9]{1,32}", object_id)
    ):
        raise InvalidParameterError(gettext_noop("objectId must be 1-32 letters or digits."))
    return _create(app=app, username=username, password=password, email=email,
                   phone=number, phone_verified=phone_verified,
                   email_verified=email_verified, extra=fields, object_id=object_id,
                   created_at=created_at, password_hash=password_hash, method="import")


def _create(*, app: App, username: str, password: str | None, email: str | None,
            phone: str | None, phone_verified: bool, extra: dict[str, Any], method: str,
            email_verified: bool = False, object_id: str | None = None,
            created_at: datetime | None = None, password_hash: str | None = None) -> AppUser:
    _check_free(app=app, username=username, email=email, phone=phone, object_id=object_id)
    now = timezone.now()
    try:
        with transaction.atomic():
            user = get_adapter().create_user(app=app, username=username, password=password,
                                             email=email, phone=phone, extra=extra)
            if password_hash:
                user.password = password_hash
                user.save(update_fields=["password"])
            member = AppUser(app=app, user=user, username=username, email=email, phone=phone,
                             phone_verified=phone_verified, email_verified=email_verified,
                             extra=extra, created_at=created_at or now, updated_at=now)
            if object_id:
                member.object_id = object_id
            member.save(force_insert=True)
    except IntegrityError as exc:
        # Another request took a value between the check and the insert.
        _check_free(app=app, username=username, email=email, phone=phone,
                    object_id=object_id)
        raise UsernameTakenError() from exc
    signals.member_signed_up.send_robust(sender=AppUser, app=app, member=member, method=method)
    return member


def _check_free(*, app: App, username: str | None = None, email: str | None = None,
                phone: str | None = None, object_id: str | None = None,
                exclude: AppUser | None = None) -> None:
    members = AppUser.objects.filter(app=app)
    if exclude is not None:
        members = members.exclude(pk=exclude.pk)
    if username is not None and members.filter(username=username).exists():
        raise UsernameTakenError()
    if email is not None and members.filter(email=email).exists():
        raise EmailTakenError()
    if phone is not None and members.filter(phone=phone).exists():
        raise PhoneNumberTakenError()
    if object_id is not None and members.filter(object_id=object_id).exists():
        raise DuplicateValueError()


def update_member(*, app: App, member: AppUser, data: dict[str, Any],
                  client_ip: str | None = None) -> AppUser:
    """Apply a ``PUT /1.1/users/<objectId>`` body to the member.

    A new ``mobilePhoneNumber`` is unverified (and, with the app's option, gets a
    verification code); ``null`` or ``""`` removes the number. Other keys are the
    member's own fields; ``{"__op": "Delete"}`` removes one.
    """
    changes: dict[str, Any] = {}
    if "username" in data:
        changes["username"] = clean_username(data["username"])
    if "email" in data:
        changes["email"] = clean_email(_deleted_is_none(data["email"]))
    if "mobilePhoneNumber" in data:
        raw = _deleted_is_none(data["mobilePhoneNumber"])
        changes["phone"] = parse_phone(raw).e164 if raw not in (None, "") else None
    password = clean_password(data["password"]) if "password" in data else None
    extra = dict(member.extra)
    for key, value in clean_fields(data, deletions=True).items():
        if value is _UNSET:
            extra.pop(key, None)
        else:
            extra[key] = value
    _check_size(extra)
    _check_free(app=app, exclude=member, username=changes.get("username"),
                email=changes.get("email"), phone=changes.get("phone"))
    old_phone = member.phone
    phone_changed = "phone" in changes and changes["phone"] != old_phone
    with transaction.atomic():
        for field, value in changes.items():
            setattr(member, field, value)
        if phone_changed:
            member.phone_verified = False
        member.extra = extra
        member.updated_at = timezone.now()
        user = member.user
        user_fields = []
        if "username" in changes:
            model = type(user)
            setattr(user, model.USERNAME_FIELD,
                    get_adapter().host_username(app=app, username=changes["username"]))
            user_fields.append(model.USERNAME_FIELD)
        if password is not None:
            user.set_password(password)
            user_fields.append("password")
        if "email" in changes and _mirrors_email(user):
            user.email = changes["email"] or ""
            user_fields.append("email")
        try:
            if user_fields:
                user.save(update_fields=user_fields)
            member.save()
        except IntegrityError as exc:
            raise UsernameTakenError() from exc
    if password is not None:
        signals.member_password_changed.send_robust(sender=AppUser, app=app, member=member,
                                                    method="update")
    if phone_changed:
        signals.member_phone_changed.send_robust(sender=AppUser, app=app, member=member,
                                                 old_phone=old_phone, new_phone=member.phone,
                                                 verified=False)
        if member.phone and app.signup_sends_verification:
            _send_verification_after_change(app=app, member=member, client_ip=client_ip)
    return member


def delete_member(*, member: AppUser) -> None:
    """Remove a member; its host user goes too unless it belongs to another app
    (so the member's username is free again in the host's user table)."""
    user = member.user
    with transaction.atomic():
        member.delete()
        if not AppUser.objects.filter(user=user).exists():
            user.delete()


def _mirrors_email(user: Any) -> bool:
    """Whether the host user has its own ``email`` field (the default model does)."""
    model = type(user)
    return model.USERNAME_FIELD != "email" and any(
        field.name == "email" for field in model._meta.get_fields()
    )


def update_password(*, app: App, member: AppUser, old_password: object,
                    new_password: object) -> AppUser:
    """``PUT /1.1/users/<objectId>/updatePassword``: 210 when the old one is wrong."""
    new_password = clean_password(new_password)
    if not isinstance(old_password, str) or not member.user.check_password(old_password):
        raise PasswordMismatchError()
    member.user.set_password(new_password)
    member.user.save(update_fields=["password"])
    _touch(member)
    signals.member_password_changed.send_robust(sender=AppUser, app=app, member=member,
                                                method="update")
    return member


def get_member(*, app: App, object_id: object) -> AppUser:
    """The member of ``app`` with this objectId (211 otherwise)."""
    if not isinstance(object_id, str):
        raise UserNotFoundError()
    member = AppUser.objects.select_related("user").filter(app=app, object_id=object_id).first()
    if member is None:
        raise UserNotFoundError()
    return member


def member_for_user(*, app: App, user: Any, required: bool = False) -> AppUser | None:
    """The membership in ``app`` of a host-project user (the logged-in user of the
    bundled pages), or None; with ``required``, 211 instead of None."""
    member = None
    if user is not None and user.is_authenticated:
        member = AppUser.objects.select_related("user").filter(app=app, user=user).first()
    if member is None and required:
        raise UserNotFoundError()
    return member


# --- logging in --------------------------------------------------------------------------


def login_with_password(*, app: App, password: object, username: object = None,
                        email: object = None, phone: object = None,
                        client_ip: str | None = None) -> AppUser:
    """Log in with a username, an email or a number, and the password."""
    user_sessions.take_ip(client_ip)
    if username not in (None, ""):
        kind, value = "username", username
        if not isinstance(username, str):
            raise InvalidUsernameError()
        lookup: dict[str, Any] = {"username": username}
    elif email not in (None, ""):
        if not isinstance(email, str):
            raise InvalidEmailError()
        kind, value = "email", email
        lookup = {"email": email}
    elif phone not in (None, ""):
        kind, value = "phone", parse_phone(phone).e164
        lookup = {"phone": value}
    else:
        raise UsernameMissingError()
    if not isinstance(password, str) or not password:
        raise PasswordMissingError()
    member = AppUser.objects.select_related("user").filter(app=app, **lookup).first()
    account = user_sessions.account_key(kind, value, member)
    had_failures = user_sessions.check_lock(app=app, account=account)
    if member is None or not member.user.is_active:
        user_sessions.login_failed(app=app, account=account, member=None)
        raise PasswordMismatchError() if app_settings.CONCEAL_ACCOUNTS else UserNotFoundError()
    if not member.user.check_password(password):
        user_sessions.login_failed(app=app, account=account, member=member)
        raise PasswordMismatchError()
    if kind == "phone" and app.forbid_unverified_login and not member.phone_verified:
        raise PhoneNumberNotVerifiedError()
    user_sessions.logged_in(app=app, account=account, member=member, method="password",
                            had_failures=had_failures)
    return member


def request_login_code(*, app: App, phone: object, validate_token: object = None,
                       client_ip: str | None = None) -> None:
    """``requestLoginSmsCode``: a login code to a member's verified number."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    if not app.allow_sms_login:
        raise OperationForbiddenError(gettext_noop("SMS-code login is not enabled for this app."))
    member = get_adapter().get_member_by_phone(app=app, phone=number)
    if member is None:
        return _conceal(PhoneNumberNotFoundError())
    if not member.phone_verified:
        return _conceal(PhoneNumberNotVerifiedError())
    _send_code(app=app, phone=number, purpose=CodePurpose.LOGIN,
               validate_token=validate_token, client_ip=client_ip)


def login_with_code(*, app: App, phone: object, code: object,
                    client_ip: str | None = None) -> AppUser:
    """``login`` with ``mobilePhoneNumber`` + ``smsCode`` (a requestLoginSmsCode code)."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    if not app.allow_sms_login:
        raise OperationForbiddenError(gettext_noop("SMS-code login is not enabled for this app."))
    member = get_adapter().get_member_by_phone(app=app, phone=number)
    account = user_sessions.account_key("phone", number, member)
    had_failures = user_sessions.check_lock(app=app, account=account)
    if member is None or not member.user.is_active:
        user_sessions.login_failed(app=app, account=account, member=None)
        raise InvalidCodeError() if app_settings.CONCEAL_ACCOUNTS else UserNotFoundError()
    if not member.phone_verified:
        raise PhoneNumberNotVerifiedError()
    try:
        codes.verify_code(app=app, phone=number, purpose=CodePurpose.LOGIN, code=code)
    except InvalidCodeError:
        user_sessions.login_failed(app=app, account=account, member=member)
        raise
    user_sessions.logged_in(app=app, account=account, member=member, method="sms_code",
                            had_failures=had_failures)
    return member


def request_signup_code(*, app: App, phone: object, validate_token: object = None,
                        client_ip: str | None = None) -> None:
    """A code for :func:`signup_or_login_by_code` (sign up, or log in when the
    number already has an account)."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    _send_code(app=app, phone=number, purpose=CodePurpose.SIGNUP,
               validate_token=validate_token, client_ip=client_ip)


def signup_or_login_by_code(*, app: App, phone: object, code: object,
                            password: object = None, username: object = None,
                            extra: dict[str, Any] | None = None,
                            client_ip: str | None = None) -> tuple[AppUser, bool]:
    """``usersByMobilePhone``: log the number's member in, or sign one up.

    The code is one from :func:`request_signup_code` or, as LeanCloud documents
    for this call, from the generic ``requestSmsCode``. A new member's username
    is the number (E.164) unless ``username`` is given; ``password`` is used on
    sign-up only (without it the password is unusable); the number is verified.
    Returns ``(member, created)``. Of concurrent calls with one code, one wins.
    """
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    member = get_adapter().get_member_by_phone(app=app, phone=number)
    if member is not None:
        if not app.allow_sms_login:
            raise OperationForbiddenError(gettext_noop("SMS-code login is not enabled for this app."))
        if not member.phone_verified:
            raise PhoneNumberNotVerifiedError()
        if not member.user.is_active:
            raise UserNotFoundError()
        account = user_sessions.account_key("phone", number, member)
        had_failures = user_sessions.check_lock(app=app, account=account)
        _verify_signup_code(app=app, phone=number, code=code)
        user_sessions.logged_in(app=app, account=account, member=member, method="sms_code",
                                had_failures=had_failures)
        return member, False
    username = clean_username(number if username in (None, "") else username)
    password = None if password in (None, "") else clean_password(password)
    fields = clean_fields(extra or {})
    _check_free(app=app, username=username, phone=number)
    _verify_signup_code(app=app, phone=number, code=code)
    member = _create(app=app, username=username, password=password, email=None,
                     phone=number, phone_verified=True, extra=fields, method="sms_code")
    account = user_sessions.account_key("phone", number, member)
    user_sessions.logged_in(app=app, account=account, member=member, method="sms_code",
                            had_failures=False)
    return member, True


def _verify_signup_code(*, app: App, phone: str, code: object) -> None:
    """A sign-up code, else a generic requestSmsCode code, of this number."""
    try:
        codes.verify_code(app=app, phone=phone, purpose=CodePurpose.SIGNUP, code=code)
    except InvalidCodeError:
        codes.verify_code(app=app, phone=phone, purpose=CodePurpose.GENERIC, code=code)


# --- verifying numbers, resetting passwords, changing numbers ----------------------------


def request_phone_verification(*, app: App, phone: object, validate_token: object = None,
                               client_ip: str | None = None) -> None:
    """``requestMobilePhoneVerify``: nothing is sent to an already verified number."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    member = get_adapter().get_member_by_phone(app=app, phone=number)
    if member is None:
        return _conceal(PhoneNumberNotFoundError())
    if member.phone_verified:
        return None
    _send_code(app=app, phone=number, purpose=CodePurpose.VERIFY_PHONE,
               validate_token=validate_token, client_ip=client_ip)


def verify_phone(*, app: App, code: object, phone: object = None,
                 member: AppUser | None = None, client_ip: str | None = None) -> AppUser:
    """``verifyMobilePhone/<code>``: marks the number of the code's member verified.

    With a number (or a session whose member has one) the code must be that
    number's; without either it is found by value (the JS SDK sends no number).
    """
    user_sessions.take_ip(client_ip)
    number = _narrowing_number(phone=phone, member=member)
    if number is not None:
        target = get_adapter().get_member_by_phone(app=app, phone=number)
        if target is None:
            raise PhoneNumberNotFoundError()
        codes.verify_code(app=app, phone=number, purpose=CodePurpose.VERIFY_PHONE, code=code)
    else:
        row = codes.verify_code_only(app=app, purpose=CodePurpose.VERIFY_PHONE, code=code)
        number = row.phone
        target = get_adapter().get_member_by_phone(app=app, phone=number)
        if target is None:
            raise PhoneNumberNotFoundError()
    get_adapter().set_phone_verified(member=target, verified=True)
    signals.member_phone_verified.send_robust(sender=AppUser, app=app, member=target,
                                              phone=number)
    return target


def request_password_reset(*, app: App, phone: object, validate_token: object = None,
                           client_ip: str | None = None) -> None:
    """``requestPasswordResetBySmsCode``: unverified numbers only with the app's option."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    member = get_adapter().get_member_by_phone(app=app, phone=number)
    if member is None:
        return _conceal(PhoneNumberNotFoundError())
    if not member.phone_verified and not app.allow_unverified_reset:
        return _conceal(PhoneNumberNotVerifiedError())
    _send_code(app=app, phone=number, purpose=CodePurpose.RESET_PASSWORD,
               validate_token=validate_token, client_ip=client_ip)


def reset_password(*, app: App, code: object, password: object, phone: object = None,
                   client_ip: str | None = None) -> AppUser:
    """``resetPasswordBySmsCode/<code>``: new password, every session ended, the
    account's login failures cleared."""
    user_sessions.take_ip(client_ip)
    password = clean_password(password)
    if phone not in (None, ""):
        number = parse_phone(phone).e164
        member = get_adapter().get_member_by_phone(app=app, phone=number)
        if member is None:
            raise PhoneNumberNotFoundError()
        _check_reset_allowed(app=app, member=member)
        codes.verify_code(app=app, phone=number, purpose=CodePurpose.RESET_PASSWORD,
                          code=code)
    else:
        row = codes.verify_code_only(app=app, purpose=CodePurpose.RESET_PASSWORD, code=code)
        member = get_adapter().get_member_by_phone(app=app, phone=row.phone)
        if member is None:
            raise PhoneNumberNotFoundError()
        _check_reset_allowed(app=app, member=member)
    with transaction.atomic():
        member.user.set_password(password)
        member.user.save(update_fields=["password"])
        _touch(member)
        LoginLockout.objects.filter(app=app, member=member).delete()
        end_sessions(member=member)
    signals.member_password_changed.send_robust(sender=AppUser, app=app, member=member,
                                                method="reset")
    return member


def _check_reset_allowed(*, app: App, member: AppUser) -> None:
    if not member.phone_verified and not app.allow_unverified_reset:
        raise PhoneNumberNotVerifiedError()


def request_phone_change(*, app: App, member: AppUser, phone: object, ttl: object = None,
                         validate_token: object = None, client_ip: str | None = None) -> None:
    """``requestChangePhoneNumber``: a code to the new number, valid ``ttl`` minutes
    (``CHANGE_PHONE_TTL_MINUTES`` by default), usable only by this member."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    other = get_adapter().get_member_by_phone(app=app, phone=number)
    if other is not None and other.pk != member.pk:
        raise PhoneNumberTakenError()
    if ttl in (None, ""):
        ttl = app_settings.CHANGE_PHONE_TTL_MINUTES
    _send_code(app=app, phone=number, purpose=CodePurpose.CHANGE_PHONE, ttl=ttl,
               validate_token=validate_token, client_ip=client_ip)
    # Bind the code to the member who asked: nobody else can spend it.
    VerificationCode.objects.filter(
        app=app, phone=number, purpose=CodePurpose.CHANGE_PHONE, status=CodeStatus.ACTIVE
    ).update(data={"member": member.object_id})


def change_phone(*, app: App, member: AppUser, phone: object, code: object,
                 client_ip: str | None = None) -> AppUser:
    """``changePhoneNumber``: the number of the request step, with its code."""
    user_sessions.take_ip(client_ip)
    number = parse_phone(phone).e164
    bound = VerificationCode.objects.filter(
        app=app, phone=number, purpose=CodePurpose.CHANGE_PHONE, status=CodeStatus.ACTIVE
    ).values_list("data", flat=True).first()
    if not bound or bound.get("member") != member.object_id:
        raise InvalidCodeError()
    _check_free(app=app, phone=number, exclude=member)
    codes.verify_code(app=app, phone=number, purpose=CodePurpose.CHANGE_PHONE, code=code)
    old_phone = member.phone
    member.phone, member.phone_verified = number, True
    member.updated_at = timezone.now()
    try:
        with transaction.atomic():
            member.save(update_fields=["phone", "phone_verified", "updated_at"])
    except IntegrityError as exc:
        raise PhoneNumberTakenError() from exc
    signals.member_phone_changed.send_robust(sender=AppUser, app=app, member=member,
                                             old_phone=old_phone, new_phone=number,
                                             verified=True)
    return member


def _narrowing_number(*, phone: object, member: AppUser | None) -> str | None:
    if phone not in (None, ""):
        return parse_phone(phone).e164
    if member is not None and member.phone:
        return member.phone
    return None


# --- sending -----------------------------------------------------------------------------


def _send_code(*, app: App, phone: str | None, purpose: CodePurpose, validate_token: object,
               client_ip: str | None, ttl: object = None) -> None:
    from .sending import SmsRequest, request_sms

    language = app.default_language if app.default_language in ("zh", "en") else "zh"
    request = SmsRequest(phone=phone, ttl=ttl, op=OPS[purpose][language],
                         validate_token=validate_token, purpose=purpose, client_ip=client_ip)
    request_sms(app=app, request=request)


def _send_verification_after_change(*, app: App, member: AppUser,
                                    client_ip: str | None) -> None:
    """The automatic verification code of a sign-up or a number set by the client."""
    if app.require_captcha:
        return  # no validate token on these calls: the client asks for the code itself
    try:
        _send_code(app=app, phone=member.phone, purpose=CodePurpose.VERIFY_PHONE,
                   validate_token=None, client_ip=client_ip)
    except SmsServiceError as exc:
        logger.warning("verification code for member %s of app %s not sent: %s",
                       member.object_id, app.app_id, exc)


def _conceal(error: SmsServiceError) -> None:
    """Raise an account-existence answer, or answer success with
    ``CONCEAL_ACCOUNTS`` (nothing is sent)."""
    if app_settings.CONCEAL_ACCOUNTS:
        return None
    raise error


# --- fields --------------------------------------------------------------------------------


def clean_username(value: object) -> str:
    if value is None:
        raise UsernameMissingError()
    if not isinstance(value, str) or not value.strip():
        raise InvalidUsernameError()
    if len(value) > MAX_USERNAME_LENGTH:
        raise InvalidUsernameError(
            f"Invalid username, it must be at most {MAX_USERNAME_LENGTH} characters."
        )
    return value


def clean_password(value: object) -> str:
    if value is None:
        raise PasswordMissingError()
    if not isinstance(value, str) or not value.strip():
        raise InvalidPasswordError()
    if len(value) > MAX_PASSWORD_LENGTH:
        raise InvalidPasswordError(
            f"Invalid password, it must be at most {MAX_PASSWORD_LENGTH} characters."
        )
    return value


def clean_email(value: object) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 254:
        raise InvalidEmailError()
    try:
        validate_email(value)
    except ValidationError as exc:
        raise InvalidEmailError() from exc
    return value


def clean_fields(data: dict[str, Any], *, deletions: bool = False) -> dict[str, Any]:
    """A body's other _User fields: server-managed keys are ignored, names checked.

    With ``deletions``, ``{"__op": "Delete"}`` values come back as a marker that
    :func:`update_member` removes.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in OWN_FIELDS or key in SERVER_FIELDS or key.startswith("_"):
            continue
        if not _FIELD_NAME.match(key):
            raise InvalidParameterError(f"Invalid field name: {key[:64]!r}.")
        if isinstance(value, dict) and "__op" in value:
            if value.get("__op") != "Delete":
                raise InvalidParameterError(
                    f"Field {key}: only the Delete operation is supported."
                )
            if deletions:
                out[key] = _UNSET
            continue
        out[key] = value
    if len(out) > _MAX_FIELDS:
        raise InvalidParameterError(f"At most {_MAX_FIELDS} fields are allowed.")
    _check_size({k: v for k, v in out.items() if v is not _UNSET})
    return out


def _check_size(fields: dict[str, Any]) -> None:
    size = len(json.dumps(fields, ensure_ascii=False).encode())
    if size > app_settings.MAX_USER_FIELDS_BYTES:
        raise InvalidParameterError(
            f"The user's fields are larger than {app_settings.MAX_USER_FIELDS_BYTES} bytes."
        )


def _deleted_is_none(value: object) -> object:
    if isinstance(value, dict) and value.get("__op") == "Delete":
        return None
    return value


def _touch(member: AppUser) -> None:
    member.updated_at = timezone.now()
    member.save(update_fields=["updated_at"])
