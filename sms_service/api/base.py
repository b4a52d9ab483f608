"""The base view of the LeanCloud-compatible API."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from ..adapter import get_adapter
from ..exceptions import (
    InvalidParameterError,
    MalformedJsonError,
    MasterKeyRequiredError,
)
from ..models import App
from .authentication import AppCredentials, LeanCloudAuthentication
from .exceptions import exception_handler

#: Largest JSON body accepted under /1.1/ (bytes).
MAX_BODY_BYTES = 64 * 1024


class LeanCloudJSONRenderer(JSONRenderer):
    charset = "utf-8"
    ensure_ascii = False


class HasAppCredentials(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, AppCredentials)


class MasterKeyOnly(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not (isinstance(request.auth, AppCredentials) and request.auth.is_master):
            raise MasterKeyRequiredError()
        return True


def parse_body(raw: bytes) -> dict[str, Any]:
    """Empty, JSON ``null`` or an object; anything else is 107 (LeanCloud)."""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidParameterError("The request body is too large.")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJsonError() from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MalformedJsonError()
    return data


def client_ip(request: Request) -> str | None:
    """The caller's IP address, as the adapter's ``get_client_ip`` tells it."""
    return get_adapter(request).get_client_ip(request=request)


class LeanCloudSchema(AutoSchema):
    """Operation ids are LeanCloud's endpoint names (``view.operation_id``)."""

    def get_operation_id(self) -> str:
        return getattr(self.view, "operation_id", "") or super().get_operation_id()

    def get_tags(self) -> list[str]:
        return ["LeanCloud API"]


class LeanCloudView(APIView):
    """Thin view: LeanCloud auth, tolerant JSON bodies, LeanCloud error envelope.

    Subclasses read the parsed body from ``self.body`` and the caller from
    ``self.credentials``.
    """

    authentication_classes = [LeanCloudAuthentication]
    permission_classes = [HasAppCredentials]
    throttle_classes: list = []
    renderer_classes = [LeanCloudJSONRenderer]
    parser_classes: list = []
    # Documented with drf-spectacular whatever the host's DEFAULT_SCHEMA_CLASS is.
    schema = LeanCloudSchema()
    operation_id = ""

    body: dict[str, Any]

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
            self.body = {}  # the JS SDK sends "null" on GET: ignore any body
            return
        try:
            raw = request._request.body
        except RequestDataTooBig as exc:
            raise InvalidParameterError("The request body is too large.") from exc
        self.body = parse_body(raw)

    @property
    def credentials(self) -> AppCredentials:
        return self.request.auth

    @property
    def app(self) -> App:
        return self.request.auth.app
