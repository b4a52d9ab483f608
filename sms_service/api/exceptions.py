"""Render every error under /1.1/ as LeanCloud's ``{"code": <int>, "error": "<msg>"}``."""

from __future__ import annotations

import logging
from typing import Any

from django import db
from django.http import Http404, JsonResponse
from django.utils.translation import gettext
from rest_framework import exceptions as drf
from rest_framework.response import Response

from ..conf import app_settings
from ..exceptions import (
    DatabaseUnavailableError,
    InternalError,
    MalformedJsonError,
    MasterKeyRequiredError,
    MethodNotAllowedError,
    NotFoundError,
    SmsServiceError,
    TooManyRequestsError,
    UnauthorizedError,
)

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def _translate(exc: Exception) -> SmsServiceError | None:
    """DRF and Django exceptions in LeanCloud's vocabulary."""
    if isinstance(exc, SmsServiceError):
        return exc
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return UnauthorizedError()
    if isinstance(exc, drf.PermissionDenied):
        return MasterKeyRequiredError()
    if isinstance(exc, drf.MethodNotAllowed):
        return MethodNotAllowedError()
    if isinstance(exc, (drf.NotFound, Http404)):
        return NotFoundError()
    if isinstance(exc, drf.ParseError):
        return MalformedJsonError()
    if isinstance(exc, drf.Throttled):
        wait = exc.wait  # type: ignore[attr-defined]  # set by Throttled.__init__; not in the stubs
        return TooManyRequestsError(retry_after=int(wait) if wait else None)
    if isinstance(exc, drf.ValidationError):
        from ..exceptions import InvalidParameterError

        return InvalidParameterError(_first_message(exc.detail))
    if isinstance(exc, (db.OperationalError, db.InterfaceError)):
        # The transaction rolled back with the connection: nothing was written.
        logger.warning("database unavailable: %s", exc)
        return DatabaseUnavailableError()
    return None


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return f"{key}: {_first_message(value)}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def error_body(error: SmsServiceError) -> dict[str, Any]:
    """``{"code", "error"}``: LeanCloud's English text, or with the
    ``TRANSLATE_API_ERRORS`` setting its translation into the request's language
    (``LocaleMiddleware``)."""
    body = error.as_dict()
    if app_settings.TRANSLATE_API_ERRORS:
        body["error"] = gettext(error.message)
    return body


def error_response(error: SmsServiceError) -> Response:
    response = Response(error_body(error), status=error.http_status)
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    error = _translate(exc)
    if error is None:
        logger.exception("unexpected error in %s", context.get("view"))
        error = InternalError()
    return error_response(error)


def json_error(error: SmsServiceError) -> JsonResponse:
    """The same envelope for plain Django views (404 catch-all, webhooks)."""
    response = JsonResponse(error_body(error), status=error.http_status,
                            json_dumps_params={"ensure_ascii": False})
    response["Content-Type"] = JSON_CONTENT_TYPE
    return response
