"""requestCaptcha, the CAPTCHA image, and verifyCaptcha."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import app_settings
from ..exceptions import MethodNotAllowedError, SmsServiceError
from ..services import captcha
from .base import LeanCloudView, client_ip
from .exceptions import json_error

_ERROR = inline_serializer(
    "CaptchaError", {"code": serializers.IntegerField(), "error": serializers.CharField()}
)


def absolute_url(request: HttpRequest, path: str) -> str:
    """``path`` on ``PUBLIC_BASE_URL`` when set, else on the request's own host."""
    base = app_settings.PUBLIC_BASE_URL.rstrip("/")
    return base + path if base else request.build_absolute_uri(path)


@extend_schema(
    parameters=[
        OpenApiParameter("width", int, required=False, description="60-200, default 85"),
        OpenApiParameter("height", int, required=False, description="30-100, default 30"),
        OpenApiParameter("size", int, required=False,
                         description="characters, 3-6, default 4; master key only"),
        OpenApiParameter("ttl", int, required=False,
                         description="seconds, 10-180, default 60; master key only"),
    ],
    responses={
        200: inline_serializer("Captcha", {"captcha_token": serializers.CharField(),
                                           "captcha_url": serializers.URLField()}),
        400: _ERROR, 401: _ERROR, 403: _ERROR, 429: _ERROR,
    },
)
class RequestCaptchaView(LeanCloudView):
    """A new CAPTCHA challenge: its token and the absolute URL of its image."""

    operation_id = "requestCaptcha"

    def get(self, request: Request) -> Response:
        query = request.query_params
        challenge = captcha.request_captcha(
            app=self.app,
            width=query.get("width"),
            height=query.get("height"),
            size=query.get("size"),
            ttl=query.get("ttl"),
            is_master=self.credentials.is_master,
            client_ip=client_ip(request),
        )
        return Response({"captcha_token": challenge.token,
                         "captcha_url": absolute_url(request, challenge.path)})


@extend_schema(
    request=inline_serializer("VerifyCaptcha", {"captcha_token": serializers.CharField(),
                                                "captcha_code": serializers.CharField()}),
    responses={200: inline_serializer("ValidateToken",
                                      {"validate_token": serializers.CharField()}),
               400: _ERROR, 401: _ERROR},
    description="A challenge answers once: a wrong answer spends it (603).",
)
class VerifyCaptchaView(LeanCloudView):
    """Check the answer (any case); a right one yields a single-use validate_token."""

    operation_id = "verifyCaptcha"

    def post(self, request: Request) -> Response:
        token = captcha.verify_captcha(app=self.app, token=self.body.get("captcha_token"),
                                       answer=self.body.get("captcha_code"))
        return Response({"validate_token": token})


@csrf_exempt
def captcha_image(request: HttpRequest) -> HttpResponse:
    """The PNG of ``captcha_url``: loaded by a browser ``<img>``, so no LeanCloud
    headers; the app id and the token in the query find it."""
    if request.method not in ("GET", "HEAD"):
        return json_error(MethodNotAllowedError())
    try:
        png = captcha.render_image(app_id=request.GET.get("appId"),
                                   token=request.GET.get("token"))
    except SmsServiceError as error:
        response: HttpResponse = json_error(error)
    else:
        response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response
