"""Shared machinery of the fake Aliyun and Tencent Cloud servers on 127.0.0.1.

A :class:`FakeProvider` records every request and consumes injected faults one
per API call, in order. The faults every fake understands:

``inject("status", status=503, code="ServiceUnavailable")``
    answer with that HTTP status and the provider's error body;
``inject("error", code="isv.BUSINESS_LIMIT_CONTROL")``
    answer HTTP 200 with the provider's own error code (how both providers
    report most refusals);
``inject("throttle")``
    the provider's throttling reply;
``inject("delay", seconds=2)``
    accept-then-timeout: the message is recorded as sent, the reply is held
    back longer than the client's read timeout;
``inject("close")`` / ``inject("reset")``
    read the request, then close or reset the connection without a reply;
``inject("malformed")``
    answer 200 with a body that is not JSON.

Subclasses implement :meth:`FakeProvider.handle` for their API.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

FAULTS = frozenset(
    {"status", "error", "send_error", "throttle", "delay", "close", "reset", "malformed"}
)


@dataclass
class Call:
    """One request as the fake received it."""

    action: str
    params: dict[str, Any]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Fault:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


class FakeProvider:
    name = "fake"

    def __init__(self) -> None:
        #: Every call received, oldest first (failed ones too).
        self.calls: list[Call] = []
        #: Messages the provider "sent": what would reach a handset, by id.
        self.sent: dict[str, dict[str, Any]] = {}
        self._faults: deque[Fault] = deque()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self.name}",
            daemon=True,
        )

    @property
    def host(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def inject(self, kind: str, **options: Any) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self._faults.append(Fault(kind, options))

    def calls_to(self, action: str) -> list[Call]:
        return [call for call in self.calls if call.action == action]

    def record(self, call: Call, *, consumes_fault: bool = True) -> Fault | None:
        with self.lock:
            self.calls.append(call)
            if consumes_fault and self._faults:
                return self._faults.popleft()
            return None

    # --- for subclasses -----------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> Reply | None:
        """Answer one request; None when the connection was dropped."""
        raise NotImplementedError

    def hold(self, fault: Fault | None) -> None:
        """For a "delay" fault, wait (the message is already recorded as sent)."""
        if fault is not None and fault.kind == "delay":
            self.stopping.wait(fault.options.get("seconds", 2.0))

    @staticmethod
    def json_reply(status: int, data: Any) -> Reply:
        return Reply(status, json.dumps(data, ensure_ascii=False).encode())

    @staticmethod
    def drop(handler: BaseHTTPRequestHandler, *, reset: bool) -> None:
        if reset:
            # SO_LINGER with a zero timeout turns close() into an RST.
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        handler.close_connection = True
        handler.connection.close()

    def transport_fault(
        self, handler: BaseHTTPRequestHandler, fault: Fault | None
    ) -> tuple[bool, Reply | None]:
        """Apply the faults that do not depend on the API: (handled, reply)."""
        if fault is None:
            return False, None
        if fault.kind in {"close", "reset"}:
            self.drop(handler, reset=fault.kind == "reset")
            return True, None
        if fault.kind == "malformed":
            return True, Reply(200, b'{"Response": {"Reque', "application/json")
        return False, None


class _Handler(BaseHTTPRequestHandler):
    # One request per connection: a fault never leaks into the next request.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake.handle(self, body)  # type: ignore[attr-defined]
        if reply is None:
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass  # the client gave up (read timeout)


F = TypeVar("F", bound=FakeProvider)


@contextmanager
def running(fake: F) -> Iterator[F]:
    """Run ``fake`` for the duration of the block (wrap in a fixture)."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def outgoing(**fields: Any):
    """An OutgoingMessage to a mainland number with a mapped template."""
    from datetime import UTC, datetime

    from sms_service.backends.base import OutgoingMessage

    values: dict[str, Any] = {
        "message_id": 7,
        "app_id": "app-1",
        "to": "+8618612345678",
        "channel": "sms",
        "body": "【Demo】您的验证码是123456",
        "created": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "template_params": (("code", "123456"), ("ttl", "10")),
    }
    values.update(fields)
    return OutgoingMessage(**values)


def free_port_refusing() -> int:
    """A port on 127.0.0.1 nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
