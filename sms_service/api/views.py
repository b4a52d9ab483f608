from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..exceptions import NotFoundError
from .exceptions import json_error


@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    """Unknown paths under /1.1/ answer JSON, never Django's HTML page."""
    return json_error(NotFoundError())
