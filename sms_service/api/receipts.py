"""The generic delivery-receipt webhook: ``POST sms_service/receipts/<alias>``.

The backend configured under ``alias`` parses (and authenticates) the request;
each report is applied through the outbox. Unknown message ids are kept for
reconciliation and never answer 500, so providers do not retry forever.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..backends import get_backend
from ..exceptions import (
    ErrorCode,
    GenericError,
    NotFoundError,
    SmsServiceConfigurationError,
    SmsServiceError,
)
from ..services import receipts
from .exceptions import json_error

logger = logging.getLogger(__name__)


class _Forbidden(SmsServiceError):
    code = ErrorCode.FORBIDDEN
    http_status = 403
    default_message = "Invalid delivery receipt signature."


@csrf_exempt
@require_POST
def delivery_receipt(request: HttpRequest, alias: str) -> JsonResponse:
    """Apply the delivery receipts a provider posts for backend ``alias``."""
    try:
        backend = get_backend(alias)
    except SmsServiceConfigurationError:
        return json_error(NotFoundError("Unknown backend."))
    try:
        reports = backend.parse_delivery_reports(request)
    except PermissionDenied:
        logger.warning("delivery receipt for %r refused: bad signature", alias)
        return json_error(_Forbidden())
    except NotImplementedError:
        return json_error(NotFoundError("This backend takes no delivery receipts."))
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("delivery receipt for %r could not be parsed: %s", alias, exc)
        return json_error(GenericError("Malformed delivery receipt."))
    outcome = receipts.apply_reports(reports=reports, backend=backend)
    return JsonResponse(backend.webhook_reply(receipts.receipt_summary(outcome)))
