"""The base view of the LeanCloud-compatible API."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.utils.translation import gettext_noop
from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from ..adapter import client_ip  # noqa: F401  (the API views import it from here)
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


#: Deepest nesting of objects and arrays accepted in a body (the API's own
#: fields are scalars; this leaves room for nested user data).
MAX_BODY_DEPTH = 16

#: NUL and UTF-16 surrogates are not text: no field may carry them.
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def _not_a_number(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def parse_body(raw: bytes) -> dict[str, Any]:
    """Empty, JSON ``null`` or an object; anything else is 107 (LeanCloud).

    Also 107: ``NaN``/``Infinity`` (not JSON), nesting deeper than
    :data:`MAX_BODY_DEPTH`, and a NUL or lone surrogate in any key or string.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidParameterError(gettext_noop("The request body is too large."))
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_not_a_number)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedJsonError() from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MalformedJsonError()
    _check_clean(data)
    return data


def _check_clean(data: dict[str, Any]) -> None:
    """Walk the parsed body (iteratively: depth is what is being checked)."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _NOT_TEXT.search(value):
                raise MalformedJsonError("Strings may not contain NUL or lone surrogates.")
        elif isinstance(value, (dict, list)):
            if depth > MAX_BODY_DEPTH:
                raise MalformedJsonError(
                    f"The JSON body is nested deeper than {MAX_BODY_DEPTH} levels."
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                pending.append((key, depth))
                pending.append((item, depth + 1))


class LeanCloudSchema(AutoSchema):
    """Operation ids are LeanCloud's endpoint names (``view.operation_id``)."""

    def get_operation_id(self) -> str:
        # One name per view, or per method ({"get": ..., "put": ...}); a view also
        # routed under /classes/_User (LeanCloud's object API) is told apart there.
        name = getattr(self.view, "operation_id", "")
        if isinstance(name, dict):
            name = name.get(self.method.lower(), "")
        if not name:
            return super().get_operation_id()
        if "/classes/" in self.path:
            return "classesUser" + name[:1].upper() + name[1:]
        return name

    def get_tags(self) -> list[str]:
        return ["LeanCloud API"]

    def map_parsers(self) -> list[str]:
        # The views parse their bodies themselves (no DRF parsers), always as JSON:
        # without this the schema would describe no request bodies at all.
        return ["application/json"]


def empty_response() -> HttpResponse:
    """``{}``, the answer of most calls, without a renderer pass."""
    return HttpResponse(b"{}", content_type="application/json; charset=utf-8")


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
    #: The operation id in the API docs: one name, or one per method.
    operation_id: str | dict[str, str] = ""

    body: dict[str, Any]

    def get_exception_handler(self):
        return exception_handler

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # Every answer is JSON: a client that accepts anything (the SDKs send
        # no Accept header or */*) or JSON skips DRF's negotiation; any other
        # Accept header is negotiated as usual (406 when JSON is not acceptable).
        accept = request.META.get("HTTP_ACCEPT", "")
        if (not accept or accept == "*/*" or accept.startswith("application/json")) and (
                len(self.renderer_classes) == 1):
            renderer = self.renderer_classes[0]()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
            self.body = {}  # the JS SDK sends "null" on GET: ignore any body
            return
        try:
            raw = request._request.body
        except RequestDataTooBig as exc:
            raise InvalidParameterError(gettext_noop("The request body is too large.")) from exc
        self.body = parse_body(raw)

    @property
    def credentials(self) -> AppCredentials:
        return cast(AppCredentials, self.request.auth)  # set by the authentication class

    @property
    def app(self) -> App:
        return self.credentials.app
