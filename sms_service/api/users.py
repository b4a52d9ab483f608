"""LeanCloud's ``_User`` endpoints for phone users (sign up, log in, sessions, codes).

Thin views: each reads the body, calls one service of
:mod:`sms_service.services.users` and renders the member as LeanCloud does:
every field but the password, plus ``objectId``, ``createdAt``/``updatedAt``
(ISO 8601 UTC with milliseconds and ``Z``), ``mobilePhoneVerified``,
``emailVerified`` and, on log-in and sign-up, ``sessionToken``.

The session comes from ``X-LC-Session`` or, as the Python SDK's ``User.become``
sends it, the ``session_token`` query parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..exceptions import SessionRequiredError
from ..models import AppUser
from ..services import users
from .base import LeanCloudView, client_ip

_ERROR = inline_serializer(
    "UserError", {"code": serializers.IntegerField(), "error": serializers.CharField()}
)
_EMPTY = inline_serializer("UserEmpty", {})
_USER = inline_serializer(
    "User",
    {
        "objectId": serializers.CharField(),
        "username": serializers.CharField(),
        "email": serializers.CharField(required=False),
        "mobilePhoneNumber": serializers.CharField(required=False),
        "mobilePhoneVerified": serializers.BooleanField(),
        "emailVerified": serializers.BooleanField(),
        "sessionToken": serializers.CharField(required=False),
        "createdAt": serializers.CharField(),
        "updatedAt": serializers.CharField(),
    },
)
_PHONE = inline_serializer(
    "PhoneNumberBody",
    {"mobilePhoneNumber": serializers.CharField(),
     "validate_token": serializers.CharField(required=False)},
)


def iso(moment: datetime) -> str:
    """LeanCloud's timestamp: ``2015-06-29T01:39:35.931Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def member_json(member: AppUser, session_token: str | None = None) -> dict[str, Any]:
    """The member as LeanCloud's ``_User`` object (never the password)."""
    data: dict[str, Any] = dict(member.extra)
    data.update(
        objectId=member.object_id,
        username=member.username,
        mobilePhoneVerified=member.phone_verified,
        emailVerified=member.email_verified,
        createdAt=iso(member.created_at),
        updatedAt=iso(member.updated_at),
    )
    if member.email:
        data["email"] = member.email
    if member.phone:
        data["mobilePhoneNumber"] = member.phone
    if session_token:
        data["sessionToken"] = session_token
    return data


class UserApiView(LeanCloudView):
    """Shared helpers: the session's member, the client IP, logging in."""

    def session_token(self) -> str | None:
        # The query's token first: User.become(token) sends it while the SDK's
        # current user (if any) still rides in X-LC-Session.
        return self.request.query_params.get("session_token") or self.credentials.session_token

    def session_member(self) -> AppUser:
        return users.member_for_session(app=self.app, token=self.session_token())

    def optional_member(self) -> AppUser | None:
        token = self.session_token()
        return users.member_for_session(app=self.app, token=token) if token else None

    def own_member(self, object_id: str) -> tuple[AppUser, str | None]:
        """The member ``object_id`` when the caller may act on it: its own session,
        or the master key. 206 without a session, 211 for an unknown id."""
        member = users.get_member(app=self.app, object_id=object_id)
        if self.credentials.is_master and not self.session_token():
            return member, None
        own = self.session_member()
        if own.pk != member.pk:
            raise SessionRequiredError()
        return own, self.session_token()

    @property
    def ip(self) -> str | None:
        return client_ip(self.request)

    def logged_in(self, member: AppUser, *, status: int = 200) -> Response:
        """A new session; Django's ``user_logged_in`` for the host's receivers."""
        token = users.start_session(member=member, client_ip=self.ip)
        user_logged_in.send(sender=type(member.user), request=self.request._request,
                            user=member.user)
        return Response(member_json(member, token), status=status)


@extend_schema(request=inline_serializer("SignUp", {
    "username": serializers.CharField(), "password": serializers.CharField(),
    "email": serializers.CharField(required=False),
    "mobilePhoneNumber": serializers.CharField(required=False),
}), responses={201: _USER, 400: _ERROR}, description="Every other key is a user field.")
class UsersView(UserApiView):
    """Sign up with a username and password."""

    operation_id = "signUp"

    def post(self, request: Request) -> Response:
        body = self.body
        member = users.signup(app=self.app, username=body.get("username"),
                              password=body.get("password"), email=body.get("email"),
                              phone=body.get("mobilePhoneNumber"), extra=body,
                              client_ip=self.ip)
        return self.logged_in(member, status=201)


@extend_schema(request=inline_serializer("LogIn", {
    "username": serializers.CharField(required=False),
    "email": serializers.CharField(required=False),
    "mobilePhoneNumber": serializers.CharField(required=False),
    "password": serializers.CharField(required=False),
    "smsCode": serializers.CharField(required=False),
}), responses={200: _USER, 400: _ERROR})
class LoginView(UserApiView):
    """Log in with username / email / number and password, or number and SMS code."""

    operation_id = {"post": "login", "get": "loginWithQuery"}

    def post(self, request: Request) -> Response:
        return self._login(self.body)

    def get(self, request: Request) -> Response:
        # The legacy form: the fields in the query string.
        return self._login(request.query_params.dict())

    def _login(self, data: dict[str, Any]) -> Response:
        if data.get("smsCode") not in (None, ""):
            member = users.login_with_code(app=self.app, phone=data.get("mobilePhoneNumber"),
                                           code=data.get("smsCode"), client_ip=self.ip)
        else:
            member = users.login_with_password(
                app=self.app, password=data.get("password"), username=data.get("username"),
                email=data.get("email"), phone=data.get("mobilePhoneNumber"),
                client_ip=self.ip,
            )
        return self.logged_in(member)


@extend_schema(request=None, responses={200: _USER, 400: _ERROR})
class MeView(UserApiView):
    """The session's member (``X-LC-Session`` or ``?session_token=``)."""

    operation_id = "usersMe"

    def get(self, request: Request) -> Response:
        return Response(member_json(self.session_member(), self.session_token()))


_UPDATE_USER = inline_serializer("UpdateUser", {
    "username": serializers.CharField(required=False),
    "password": serializers.CharField(required=False),
    "email": serializers.CharField(required=False, allow_null=True),
    "mobilePhoneNumber": serializers.CharField(
        required=False, allow_null=True,
        help_text="A new number is unverified until its code is checked; null or an "
                  "empty string removes the number."),
})
_UPDATED = inline_serializer("UserUpdated", {
    "objectId": serializers.CharField(), "updatedAt": serializers.CharField(),
})


@extend_schema(methods=["GET"], request=None,
               responses={200: _USER, 400: _ERROR, 403: _ERROR})
@extend_schema(
    methods=["PUT"], request=_UPDATE_USER, responses={200: _UPDATED, 400: _ERROR, 403: _ERROR},
    description='Only the keys sent change. Every other key is a user field; '
                '{"__op": "Delete"} as a value removes that field.',
)
class UserDetailView(UserApiView):
    """Read or change one's own record (its session, or the master key)."""

    operation_id = {"get": "getUser", "put": "updateUser"}

    def get(self, request: Request, object_id: str) -> Response:
        member, token = self.own_member(object_id)
        return Response(member_json(member, token))

    def put(self, request: Request, object_id: str) -> Response:
        member, _ = self.own_member(object_id)
        member = users.update_member(app=self.app, member=member, data=self.body,
                                     client_ip=self.ip)
        return Response({"objectId": member.object_id, "updatedAt": iso(member.updated_at)})


@extend_schema(request=inline_serializer("UpdatePassword", {
    "old_password": serializers.CharField(), "new_password": serializers.CharField(),
}), responses={200: _USER, 400: _ERROR, 403: _ERROR})
class UpdatePasswordView(UserApiView):
    operation_id = "updatePassword"

    def put(self, request: Request, object_id: str) -> Response:
        member, token = self.own_member(object_id)
        member = users.update_password(app=self.app, member=member,
                                       old_password=self.body.get("old_password"),
                                       new_password=self.body.get("new_password"))
        return Response(member_json(member, token))


@extend_schema(request={"application/json": {"type": "object", "maxProperties": 0}},
               responses={200: _USER, 400: _ERROR, 403: _ERROR},
               description="No body, or {}.")
class RefreshSessionTokenView(UserApiView):
    """End every session of the member and answer a new token."""

    operation_id = "refreshSessionToken"

    def put(self, request: Request, object_id: str) -> Response:
        member, _ = self.own_member(object_id)
        token = users.refresh_session(member=member, client_ip=self.ip)
        return Response(member_json(member, token))


@extend_schema(request=inline_serializer("UsersByMobilePhone", {
    "mobilePhoneNumber": serializers.CharField(), "smsCode": serializers.CharField(),
    "password": serializers.CharField(required=False),
    "username": serializers.CharField(required=False),
}), responses={200: _USER, 201: _USER, 400: _ERROR})
class UsersByMobilePhoneView(UserApiView):
    """Sign up or log in with a number and an SMS code."""

    operation_id = "usersByMobilePhone"

    def post(self, request: Request) -> Response:
        body = self.body
        member, created = users.signup_or_login_by_code(
            app=self.app, phone=body.get("mobilePhoneNumber"), code=body.get("smsCode"),
            password=body.get("password"), username=body.get("username"), extra=body,
            client_ip=self.ip,
        )
        return self.logged_in(member, status=201 if created else 200)


class _RequestCodeView(UserApiView):
    """``{mobilePhoneNumber, validate_token}`` → ``{}``."""

    #: The service function that sends the code (set by each subclass).
    service: ClassVar[Callable[..., None]]

    def post(self, request: Request) -> Response:
        type(self).service(app=self.app, phone=self.body.get("mobilePhoneNumber"),
                           validate_token=self.body.get("validate_token"), client_ip=self.ip)
        return Response({})


@extend_schema(request=_PHONE, responses={200: _EMPTY, 400: _ERROR})
class RequestLoginSmsCodeView(_RequestCodeView):
    operation_id = "requestLoginSmsCode"
    service = users.request_login_code


@extend_schema(request=_PHONE, responses={200: _EMPTY, 400: _ERROR})
class RequestMobilePhoneVerifyView(_RequestCodeView):
    operation_id = "requestMobilePhoneVerify"
    service = users.request_phone_verification


@extend_schema(request=_PHONE, responses={200: _EMPTY, 400: _ERROR})
class RequestPasswordResetView(_RequestCodeView):
    operation_id = "requestPasswordResetBySmsCode"
    service = users.request_password_reset


@extend_schema(request=inline_serializer("VerifyMobilePhone", {
    "mobilePhoneNumber": serializers.CharField(required=False),
}), responses={200: inline_serializer("Verified", {
    "objectId": serializers.CharField(), "updatedAt": serializers.CharField()}),
    400: _ERROR})
class VerifyMobilePhoneView(UserApiView):
    """The JS SDK sends a ``null`` body: the code alone is enough."""

    operation_id = "verifyMobilePhone"

    def post(self, request: Request, code: str) -> Response:
        member = users.verify_phone(app=self.app, code=code,
                                    phone=self.body.get("mobilePhoneNumber"),
                                    member=self.optional_member(), client_ip=self.ip)
        return Response({"objectId": member.object_id, "updatedAt": iso(member.updated_at)})


@extend_schema(request=inline_serializer("ResetPassword", {
    "password": serializers.CharField(),
    "mobilePhoneNumber": serializers.CharField(required=False),
}), responses={200: _EMPTY, 400: _ERROR})
class ResetPasswordView(UserApiView):
    """PUT (SDKs) or POST (the Go SDK); the JS SDK sends only the password."""

    operation_id = {"put": "resetPasswordBySmsCode", "post": "resetPasswordBySmsCodePost"}

    def put(self, request: Request, code: str) -> Response:
        users.reset_password(app=self.app, code=code, password=self.body.get("password"),
                             phone=self.body.get("mobilePhoneNumber"), client_ip=self.ip)
        return Response({})

    post = put


@extend_schema(request=inline_serializer("RequestChangePhoneNumber", {
    "mobilePhoneNumber": serializers.CharField(),
    "ttl": serializers.IntegerField(required=False, help_text="minutes, default 6"),
    "validate_token": serializers.CharField(required=False),
}), responses={200: _EMPTY, 400: _ERROR, 403: _ERROR})
class RequestChangePhoneNumberView(UserApiView):
    """Needs the member's session; the code goes to the new number."""

    operation_id = "requestChangePhoneNumber"

    def post(self, request: Request) -> Response:
        users.request_phone_change(app=self.app, member=self.session_member(),
                                   phone=self.body.get("mobilePhoneNumber"),
                                   ttl=self.body.get("ttl"),
                                   validate_token=self.body.get("validate_token"),
                                   client_ip=self.ip)
        return Response({})


@extend_schema(request=inline_serializer("ChangePhoneNumber", {
    "mobilePhoneNumber": serializers.CharField(), "code": serializers.CharField(),
}), responses={200: _EMPTY, 400: _ERROR, 403: _ERROR})
class ChangePhoneNumberView(UserApiView):
    operation_id = "changePhoneNumber"

    def post(self, request: Request) -> Response:
        users.change_phone(app=self.app, member=self.session_member(),
                           phone=self.body.get("mobilePhoneNumber"),
                           code=self.body.get("code"), client_ip=self.ip)
        return Response({})
