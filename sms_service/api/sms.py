"""requestSmsCode and verifySmsCode."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from ..exceptions import OperationForbiddenError, PhoneNumberMissingError
from ..models import CodePurpose
from ..phone import parse_phone
from ..services import codes
from ..services.sending import SmsRequest, request_sms
from .base import LeanCloudView, client_ip, empty_response

#: Body keys with a meaning of their own; every other key is a template variable.
NAMED_FIELDS = (
    "mobilePhoneNumber",
    "smsType",
    "ttl",
    "name",
    "op",
    "template",
    "sign",
    "validate_token",
)

_ERROR = inline_serializer(
    "Error", {"code": serializers.IntegerField(), "error": serializers.CharField()}
)
_EMPTY = inline_serializer("Empty", {})


@extend_schema(
    request=inline_serializer(
        "RequestSmsCode",
        {
            "mobilePhoneNumber": serializers.CharField(
                help_text="E.164; no + means +86"
            ),
            "smsType": serializers.ChoiceField(["sms", "voice"], required=False),
            "ttl": serializers.IntegerField(
                min_value=1, required=False,
                help_text="minutes, at most the server's CODE_MAX_TTL_MINUTES",
            ),
            "name": serializers.CharField(required=False),
            "op": serializers.CharField(required=False),
            "template": serializers.CharField(required=False),
            "sign": serializers.CharField(required=False, help_text="signature name"),
            "validate_token": serializers.CharField(required=False),
        },
    ),
    responses={200: _EMPTY, 400: _ERROR, 401: _ERROR},
    description="Every other key in the body is a template variable.",
)
class RequestSmsCodeView(LeanCloudView):
    """Send a verification code (SMS or voice) or a template message."""

    operation_id = "requestSmsCode"

    def post(self, request: Request) -> HttpResponse:
        body = self.body
        sms = SmsRequest(
            phone=body.get("mobilePhoneNumber"),
            sms_type=body.get("smsType"),
            ttl=body.get("ttl"),
            name=body.get("name"),
            op=body.get("op"),
            template=body.get("template"),
            sign=body.get("sign"),
            validate_token=body.get("validate_token"),
            variables={k: v for k, v in body.items() if k not in NAMED_FIELDS},
            client_ip=client_ip(request),
        )
        request_sms(app=self.app, request=sms, is_master=self.credentials.is_master)
        return empty_response()


@extend_schema(
    request=inline_serializer(
        "VerifySmsCode",
        {
            "mobilePhoneNumber": serializers.CharField(),
        },
    ),
    parameters=[
        OpenApiParameter(
            "mobilePhoneNumber",
            str,
            required=False,
            description="accepted in the query string too",
        )
    ],
    responses={200: _EMPTY, 400: _ERROR, 401: _ERROR},
)
class VerifySmsCodeView(LeanCloudView):
    """Check a code sent by requestSmsCode; single use."""

    operation_id = "verifySmsCode"

    def post(self, request: Request, code: str) -> HttpResponse:
        app = self.app
        if not app.sms_enabled or not (
            app.sms_api_enabled or self.credentials.is_master
        ):
            raise OperationForbiddenError()
        raw_phone: Any = self.body.get("mobilePhoneNumber") or request.query_params.get(
            "mobilePhoneNumber"
        )
        if not raw_phone:
            raise PhoneNumberMissingError()
        phone = parse_phone(raw_phone)
        codes.verify_code(app=app, phone=phone.e164, purpose=CodePurpose.GENERIC, code=code,
                          region=phone.region)
        return empty_response()
