from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..exceptions import InternalError, InvalidParameterError, NotFoundError
from .exceptions import json_error


@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    """Unknown paths under /1.1/ answer JSON, never Django's HTML page."""
    return json_error(NotFoundError())


def _is_api(request: HttpRequest) -> bool:
    return "/1.1/" in request.path or request.path.endswith("/1.1")


def bad_request(request: HttpRequest, exception=None, *args, **kwargs):
    """``handler400`` for host projects: JSON under /1.1/, Django's page elsewhere.

    Django answers 400 itself, before any view, for a ``Host`` header outside
    ``ALLOWED_HOSTS`` and other suspicious requests; the SDKs expect
    ``{"code", "error"}`` there too.
    """
    from django.views import defaults

    if _is_api(request):
        return json_error(InvalidParameterError("Bad request."))
    return defaults.bad_request(request, exception, *args, **kwargs)


def server_error(request: HttpRequest, *args, **kwargs):
    """``handler500`` for host projects: JSON under /1.1/, Django's page elsewhere.

    Errors inside the API views are already JSON; this covers failures outside
    them (middleware, URL resolution), which would otherwise crash the SDKs on an
    HTML page.
    """
    from django.views import defaults

    if _is_api(request):
        return json_error(InternalError())
    return defaults.server_error(request, *args, **kwargs)
