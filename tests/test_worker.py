"""Delivery through a real Celery worker process (security spec, test plan D).

These tests start ``celery worker`` as a subprocess on the Redis broker
(CELERY_BROKER_URL) against the same PostgreSQL test database as the test, with
the file backend configured in both processes, and publish tasks from the test
process with eager mode off. They need PostgreSQL + Redis: elsewhere they are
skipped, except in CI (``CI=true``) where they must run and so fail instead.

Waits are bounded polls; nothing asserts on timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections

from sms_service.models import Message, MessageStatus, Signature
from sms_service.services import codes, outbox, recovery
from sms_service.services.sending import SmsRequest, request_sms
from sms_service.tasks import deliver_message
from tests.celery_app import app as celery_app

ROOT = Path(__file__).resolve().parent.parent

#: Longest wait for the worker to deliver one message (a bound, not a target).
DELIVERY_TIMEOUT = 60.0

#: The default verification text of an app named "Demo" with the default signature.
CODE_TEXT = re.compile(
    r"^【LeanCloud】您正在使用Demo服务进行短信验证操作，您的验证码是：(\d{6})，请在10分钟内完成验证。$"
)


# --- environment ------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False


def _services_missing() -> str | None:
    """Why the real-service tests cannot run here, or None when they can."""
    if connection.vendor != "postgresql":
        return f"needs PostgreSQL (DATABASE_URL); the database is {connection.vendor}"
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis"):
        return "needs a Redis broker (CELERY_BROKER_URL=redis://...)"
    if not _redis_answers(broker):
        return f"the Redis broker at {broker} does not answer"
    return None


def _require_services() -> None:
    reason = _services_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the real-worker tests: {reason}", pytrace=False)
    pytest.skip(reason)


def _database_url() -> str:
    """A DATABASE_URL naming the test database this process is using."""
    s = connection.settings_dict
    user = quote(s.get("USER") or "", safe="")
    password = quote(s.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = s.get("HOST") or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(s['NAME'], safe='')}"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _use_write_broker(url: str | None) -> None:
    """Point this process's publishing at ``url`` (None: back to CELERY_BROKER_URL).

    ``broker_write_url`` is used because CELERY_BROKER_URL in the environment wins
    over ``broker_url``. The app's cached pools are dropped so the next publish
    uses the pool of the new address.
    """
    celery_app.conf.broker_write_url = url
    # Forget (not close): kombu keeps one pool per broker address process-wide and
    # hands the same one out again for the same address.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


# --- the worker process -----------------------------------------------------------


class Worker:
    def __init__(self, proc: subprocess.Popen, log_path: Path, sent_dir: Path):
        self.proc = proc
        self.log_path = log_path
        self.sent_dir = sent_dir

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def documents(self, message_id: int) -> list[dict]:
        """The file backend's documents for one message (one per provider call)."""
        found = []
        for path in sorted(self.sent_dir.glob(f"*-{message_id}-*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc["message_id"] == message_id:
                found.append(doc)
        return found

    def wait_for(self, what: str, condition: Callable[[], bool],
                 timeout: float = DELIVERY_TIMEOUT) -> None:
        """Poll ``condition`` until true; fail (with the worker's log) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the worker exited ({self.proc.returncode}) while waiting for "
                            f"{what}:\n{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:.0f} s; worker log:\n{self.log_tail()}",
                            pytrace=False)
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Worker]:
    """One ``celery worker`` process for this module, stopped before the test
    database is dropped (this fixture depends on ``django_db_setup``)."""
    _require_services()
    base = tmp_path_factory.mktemp("celery-worker")
    sent_dir = base / "sent"
    sent_dir.mkdir()
    log_path = base / "worker.log"
    with django_db_blocker.unblock():
        database_url = _database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "SMS_TEST_BACKEND": "file",
        "SMS_FILE_PATH": str(sent_dir),
        # Shares this process's cache entries, as a deployment's workers do.
        **({"SMS_TEST_CACHE_PREFIX": django_settings.CACHES["default"]["KEY_PREFIX"]}
           if "KEY_PREFIX" in django_settings.CACHES["default"] else {}),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
        "--pool=solo", "--concurrency=1", "-l", "warning",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"sms-tests-{os.getpid()}@%h",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    w = Worker(proc, log_path, sent_dir)
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def publish(worker, settings):
    """This process publishes to the broker (eager off) and uses the same file
    backend as the worker (for the in-process deliver() calls)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "ASYNC": True,
        "BACKENDS": {"default": {"BACKEND": "sms_service.backends.file.FileBackend",
                                 "OPTIONS": {"PATH": str(worker.sent_dir)}}},
    }
    # Celery copied its configuration when it was first read: set it there too.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield worker
    finally:
        celery_app.conf.task_always_eager = eager
        _use_write_broker(None)


@pytest.fixture
def sender(app) -> Signature:
    return Signature.objects.create(
        app=app, name="LeanCloud", text="LeanCloud", status="approved", is_default=True
    )


def _send(app, phone: str) -> Message:
    return request_sms(app=app, request=SmsRequest(phone=phone))


def _status(message: Message) -> str:
    return Message.objects.values_list("status", flat=True).get(pk=message.pk)


def _delivered_once(worker: Worker, message: Message, phone: str) -> dict:
    """Wait until ``message`` is delivered; check the document and the row."""
    worker.wait_for(f"delivery of message {message.pk}",
                    lambda: _status(message) == MessageStatus.DELIVERED
                    and worker.documents(message.pk))
    docs = worker.documents(message.pk)
    assert len(docs) == 1, docs
    doc = docs[0]
    assert doc["to"] == phone
    assert doc["channel"] == "sms"
    assert CODE_TEXT.match(doc["body"]), doc["body"]
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert message.provider == "file"
    assert message.attempts == 1
    assert message.payload is None  # the plaintext is dropped once sent
    return doc


# --- tests ------------------------------------------------------------------------

@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_delivers_a_verification_code(publish, app, sender):
    phone = "+8613800138001"
    message = _send(app, phone)
    # Committed and published; the worker (another process) does the sending.
    doc = _delivered_once(publish, message, phone)
    # The code the worker delivered is the one the server accepts.
    code = CODE_TEXT.match(doc["body"]).group(1)
    codes.verify_code(app=app, phone=phone, purpose="generic", code=code)


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_delivers_through_the_api(publish, app, sender, client):
    import hashlib

    phone = "+8613800138002"
    ts = str(int(time.time() * 1000))
    sign = hashlib.md5((ts + app.app_key).encode()).hexdigest() + "," + ts
    response = client.post(
        "/1.1/requestSmsCode", data=json.dumps({"mobilePhoneNumber": phone}),
        content_type="application/json", HTTP_X_LC_ID=app.app_id, HTTP_X_LC_SIGN=sign,
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(app=app, phone=phone)
    doc = _delivered_once(publish, message, phone)
    code = CODE_TEXT.match(doc["body"]).group(1)
    ts = str(int(time.time() * 1000))
    sign = hashlib.md5((ts + app.app_key).encode()).hexdigest() + "," + ts
    response = client.post(
        f"/1.1/verifySmsCode/{code}", data=json.dumps({"mobilePhoneNumber": phone}),
        content_type="application/json", HTTP_X_LC_ID=app.app_id, HTTP_X_LC_SIGN=sign,
    )
    assert response.status_code == 200, response.content


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_broker_outage_then_redispatch(publish, app, sender, caplog, settings):
    """A broker outage in small: the enqueue fails, the row stays queued, and redispatch_stuck()
    sends it once the broker is back."""
    phone = "+8613800138003"
    _use_write_broker(f"redis://127.0.0.1:{_closed_port()}/0")
    with caplog.at_level("ERROR", logger="sms_service.services.outbox"):
        message = _send(app, phone)  # the request itself succeeds
    assert any(f"could not enqueue message {message.pk}" in r.getMessage()
               for r in caplog.records), caplog.text
    assert _status(message) == MessageStatus.QUEUED
    assert publish.documents(message.pk) == []

    _use_write_broker(None)  # the broker is reachable again
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "STUCK_QUEUED_AFTER_SECONDS": 0}
    result = recovery.redispatch_stuck()
    assert result["requeued"] == 1
    _delivered_once(publish, message, phone)
    # A second pass finds nothing left to send.
    assert recovery.redispatch_stuck()["requeued"] == 0


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_duplicate_tasks_send_once(publish, app, sender):
    """A task delivered twice (redelivery after a lost ack) sends once: the claim
    on the row lets only the first run call the backend."""
    phone = "+8613800138004"
    message = _send(app, phone)  # publishes one task on commit
    deliver_message.delay(message.pk)  # and two duplicates
    deliver_message.delay(message.pk)
    _delivered_once(publish, message, phone)
    # The solo worker takes tasks in order: once a later message is delivered the
    # duplicates above have run too.
    later = _send(app, "+8613800138005")
    _delivered_once(publish, later, "+8613800138005")
    assert len(publish.documents(message.pk)) == 1
    message.refresh_from_db()
    assert message.attempts == 1


@pytest.mark.django_db
def test_deliver_twice_sends_once(app, sender, settings, tmp_path, monkeypatch):
    """deliver() called twice for the same id sends once (no services needed)."""
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "BACKENDS": {"default": {"BACKEND": "sms_service.backends.file.FileBackend",
                                 "OPTIONS": {"PATH": str(tmp_path)}}},
    }
    monkeypatch.setattr(outbox, "_send_task", lambda task, argument, *rest: None)
    message = _send(app, "+8613800138006")
    assert _status(message) == MessageStatus.QUEUED
    assert outbox.deliver(message_id=message.pk) == MessageStatus.DELIVERED
    assert outbox.deliver(message_id=message.pk) == "skipped"
    assert len(list(tmp_path.glob(f"*-{message.pk}-*.json"))) == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert message.attempts == 1


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliver_sends_once(publish, app, sender, monkeypatch):
    """Eight threads (eight database connections) deliver the same id at once."""
    phone = "+8613800138007"
    monkeypatch.setattr(outbox, "_send_task", lambda task, argument, *rest: None)  # no worker
    message = _send(app, phone)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(outbox.deliver(message_id=message.pk))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(results) == [MessageStatus.DELIVERED] + ["skipped"] * 7
    assert len(publish.documents(message.pk)) == 1
