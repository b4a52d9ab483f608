"""A small fake of Twilio's REST API on 127.0.0.1, for backend tests over real HTTP.

It implements just what :mod:`sms_service.backends.twilio` uses: creating
messages and calls, and fetching them. Every request is recorded; faults are
queued with :meth:`FakeTwilio.inject` and consumed one per POST, in order:

``FakeTwilio.inject("status", status=503)``
    answer with that status and a Twilio-style error body (``code``/``message``
    may be given; 429 sends ``Retry-After``);
``FakeTwilio.inject("delay", seconds=2)``
    accept-then-timeout: the resource is created and recorded, then the reply is
    held back longer than the client's read timeout;
``FakeTwilio.inject("close")`` / ``FakeTwilio.inject("reset")``
    read the request, then close the connection (FIN) or reset it (RST) without
    answering;
``FakeTwilio.inject("malformed")`` / ``FakeTwilio.inject("no_sid")``
    answer 201 with a body that is not JSON, or JSON without ``sid``.

By default every connection carries one request (HTTP/1.0). ``keep_alive=True``
speaks HTTP/1.1 with persistent connections, as Twilio does; each recorded
request names the client's (host, port), so a test can count connections.

The server binds to an ephemeral port on the loopback interface only. Tests
start it through a fixture around :func:`running_fake_twilio`, which stops it
(and wakes any delayed handler) at teardown.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-twilio-auth-token"

_PATH_RE = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<resource>Messages|Calls)"
    r"(?:/(?P<sid>[A-Za-z0-9]+))?\.json$"
)


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    form: dict[str, str]
    auth: tuple[str, str] | None
    headers: dict[str, str]
    #: The client's (host, port): one value per TCP connection.
    client: tuple[str, int] = ("", 0)


@dataclass
class Fault:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


class FakeTwilio:
    """State shared by the handler threads, plus the test-facing controls."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        keep_alive: bool = False,
    ):
        self.account_sid = account_sid
        self.auth_token = auth_token
        #: Every request received, including failed ones, oldest first.
        self.requests: list[RecordedRequest] = []
        #: Messages and calls Twilio "has", by SID: what would reach a handset.
        self.resources: dict[str, dict[str, Any]] = {}
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        handler = _KeepAliveHandler if keep_alive else _Handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        # A short poll interval: shutdown() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-twilio",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes handlers sleeping in a "delay" fault
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # --- controls for tests ----------------------------------------------------------

    def inject(self, kind: str, **options: Any) -> None:
        """Queue a fault for the next POST (see the module docstring)."""
        if kind not in {"status", "delay", "close", "reset", "malformed", "no_sid"}:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, options))

    def set_status(self, sid: str, status: str, **fields: Any) -> None:
        """Change what a later GET of ``sid`` reports (e.g. ``error_code=30003``)."""
        with self._lock:
            self.resources[sid].update(status=status, **fields)

    @property
    def posts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    @property
    def connections(self) -> set[tuple[str, int]]:
        """The distinct client connections the requests came over."""
        return {r.client for r in self.requests}

    # --- used by the handler ---------------------------------------------------------

    def _record(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests.append(request)
            if request.method == "POST" and self._faults:
                return self._faults.popleft()
            return None

    def _create(self, resource: str, form: dict[str, str]) -> dict[str, Any]:
        prefix = "CA" if resource == "Calls" else "SM"
        sid = prefix + secrets.token_hex(16)
        item: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "status": "queued",
            "date_created": format_datetime(datetime.now(UTC)),
            "error_code": None,
            "error_message": None,
        }
        if resource == "Messages":
            item.update(
                body=form.get("Body"),
                num_segments="1",
                messaging_service_sid=form.get("MessagingServiceSid"),
            )
        with self._lock:
            self.resources[sid] = item
        return dict(item)


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeTwilio/1.0"
    # HTTP/1.0: one request per connection, so a fault never leaks into the next
    # request through a kept-alive socket.
    protocol_version = "HTTP/1.0"

    @property
    def fake(self) -> FakeTwilio:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        recorded = RecordedRequest(
            method=method,
            path=self.path,
            form=form,
            auth=_basic_auth(self.headers.get("Authorization", "")),
            headers=dict(self.headers.items()),
            client=self.client_address[:2],
        )
        fault = self.fake._record(recorded)

        match = _PATH_RE.match(urlsplit(self.path).path)
        if not match:
            return self._error(404, 20404, "The requested resource was not found")
        if recorded.auth != (self.fake.account_sid, self.fake.auth_token) or (
            match["account"] != self.fake.account_sid
        ):
            return self._error(401, 20003, "Authenticate")

        if fault is not None:
            if fault.kind == "status":
                return self._error(
                    fault.options.get("status", 500),
                    fault.options.get("code", 20500),
                    fault.options.get("message", "Internal Server Error"),
                )
            if fault.kind in {"close", "reset"}:
                return self._drop(reset=fault.kind == "reset")
            if fault.kind == "malformed":
                return self._send(201, b'{"sid": "SM', "application/json")
            if fault.kind == "no_sid":
                return self._json(201, {"status": "queued"})

        if method == "GET" and match["sid"] is None:
            return self._list(match["resource"])
        if method == "GET":
            item = self.fake.resources.get(match["sid"] or "")
            if item is None or match["sid"] is None:
                return self._error(404, 20404, "The requested resource was not found")
            return self._json(200, item)

        if match["sid"]:
            return self._error(405, 20004, "Method not allowed")
        missing = [name for name in ("To",) if not form.get(name)]
        if match["resource"] == "Messages" and not (
            form.get("From") or form.get("MessagingServiceSid")
        ):
            missing.append("From")
        if missing:
            return self._error(400, 21604, f"A '{missing[0]}' parameter is required.")
        if not form["To"].startswith("+"):
            return self._error(
                400, 21211, f"The 'To' number {form['To']} is not valid."
            )
        item = self.fake._create(match["resource"], form)
        if fault is not None and fault.kind == "delay":
            # Accept-then-timeout: Twilio has the message, the client hears nothing.
            self.fake.stopping.wait(fault.options.get("seconds", 2.0))
        self._json(201, item)

    def _list(self, resource: str) -> None:
        query = parse_qs(urlsplit(self.path).query)
        to = query.get("To", [None])[0]
        prefix = "CA" if resource == "Calls" else "SM"
        with self.fake._lock:
            items = [dict(item) for sid, item in self.fake.resources.items()
                     if sid.startswith(prefix) and (to is None or item["to"] == to)]
        items.reverse()  # newest first, as Twilio lists
        page_size = int(query.get("PageSize", ["50"])[0])
        self._json(200, {resource.lower(): items[:page_size], "page": 0,
                         "page_size": page_size})

    # --- replies -----------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (read timeout); nothing to tell it

    def _json(
        self, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _error(self, status: int, code: int, message: str) -> None:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        # Twilio's 429 carries Retry-After; the backend passes it on.
        self._json(status, body, {"Retry-After": "1"} if status == 429 else None)

    def _drop(self, *, reset: bool) -> None:
        if reset:
            # SO_LINGER with a zero timeout turns close() into an RST.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.close_connection = True
        self.connection.close()


class _KeepAliveHandler(_Handler):
    # HTTP/1.1: the connection stays open for the client's next request (every
    # reply carries Content-Length).
    protocol_version = "HTTP/1.1"


def _basic_auth(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return (user, password)


@contextmanager
def running_fake_twilio(**kwargs: Any) -> Iterator[FakeTwilio]:
    """Run a :class:`FakeTwilio` for the duration of the block (wrap in a fixture)."""
    fake = FakeTwilio(**kwargs).start()
    try:
        yield fake
    finally:
        fake.stop()
