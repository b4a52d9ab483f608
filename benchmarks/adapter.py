"""The benchmark server's adapter: codes drawn as usual, and each one handed
back to the load generator in a response header (``X-Bench-Code``).

Benchmark only. The load generator plays the phone: it must read the code it
verifies, and a response header costs the server next to nothing, so the
measured cycle is the server's work, not a side channel's.
"""

from __future__ import annotations

from contextvars import ContextVar

from sms_service.adapter import DefaultSmsAdapter

#: The code drawn during the current request (one request per worker at a time).
drawn_code: ContextVar[str] = ContextVar("drawn_code", default="")

HEADER = "X-Bench-Code"


class BenchAdapter(DefaultSmsAdapter):
    def generate_code(self, **kwargs) -> str:
        code = super().generate_code(**kwargs)
        drawn_code.set(code)
        return code


class CodeHeaderMiddleware:
    """Copies the code drawn by the request into the ``X-Bench-Code`` header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = drawn_code.set("")
        try:
            response = self.get_response(request)
            code = drawn_code.get()
            if code:
                response[HEADER] = code
            return response
        finally:
            drawn_code.reset(token)
