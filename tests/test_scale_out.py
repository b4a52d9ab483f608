"""Scaled out on one database and one broker: two API server processes and two
Celery workers, as behind a load balancer (docs/capacity.md). Sending limits,
billing and single-use codes hold across them.

The servers (``runserver``, the suite's settings, the Redis cache of this
process) publish to the Redis broker; the two workers (the reliability suite's
``start_worker``: solo pool, file backend with a provider round trip) consume
it. Needs PostgreSQL + Redis (cache and broker); skipped elsewhere, failing
instead under CI=true. Run in a pytest process of its own (``make test`` does):
like the other real-worker tests it must not share the process's broker with
the rest of the suite. Waits are bounded polls; nothing asserts on timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings

from sms_service.models import (
    LedgerEntry,
    LedgerKind,
    Message,
    MessageStatus,
    Signature,
)
from sms_service.services import billing
from tests.billing_support import assert_books, funded_app, phone, set_price
from tests.test_multiprocess_limits import _free_port, _wait_until_up
from tests.test_reliability import _documents, _wait, start_worker
from tests.test_worker import ROOT, _database_url, _require_services

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def _sign(app) -> str:
    ts = str(int(time.time() * 1000))
    return hashlib.md5((ts + app.app_key).encode()).hexdigest() + "," + ts


def _post(url: str, app, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-LC-Id": app.app_id,
                 "X-LC-Sign": _sign(app)},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def cluster(tmp_path):
    """Two API servers and two workers on this test's database and broker."""
    _require_services()
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the scale-out test: it needs Redis as the cache "
                        "(CACHE_URL)", pytrace=False)
        pytest.skip("needs Redis as the cache (CACHE_URL)")
    broker = os.environ["CELERY_BROKER_URL"]
    sent_dir = tmp_path / "sent"
    sent_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "SMS_TEST_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",  # publish; the workers send
        "SMS_TEST_BACKEND": "slowfile",
        "SMS_FILE_PATH": str(sent_dir),
        # One client address and one number range: only the per-number limits
        # and the balance stand between the client and a send.
        "SMS_TEST_LOAD": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    servers, urls, workers = [], [], []
    try:
        for _ in range(2):
            port = _free_port()
            log = open(tmp_path / f"server-{port}.log", "wb")
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}",
                 "--noreload", "--skip-checks"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))
            log.close()
            urls.append(f"http://127.0.0.1:{port}")
        for name in ("a", "b"):
            workers.append(start_worker(tmp_path, broker=broker, sent_dir=sent_dir,
                                        name=f"scale-{name}"))
        for url in urls:
            _wait_until_up(url)
        yield urls, sent_dir, workers
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def test_limits_billing_and_codes_hold_across_two_servers_and_two_workers(cluster):
    urls, sent_dir, workers = cluster
    set_price("0.05")
    billing.forget_prices()  # the servers read prices through the shared cache
    app = funded_app("0.30", pumping_defence=False)  # six messages' worth
    Signature.objects.create(app=app, name="Demo", text="Demo", status="approved",
                             is_default=True)

    # Limits: six requests for one number at once, over both servers: one send.
    same = phone(1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(
            lambda i: _post(urls[i % 2], app, "/1.1/requestSmsCode",
                            {"mobilePhoneNumber": same}), range(6)))
    assert [status for status, _ in results].count(200) == 1, results
    assert Message.objects.filter(app=app, phone=same).count() == 1

    # Billing: twelve numbers at once, over both servers, with money left for
    # five: five sends, the rest refused for the balance, never below zero.
    numbers = [phone(10 + i) for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(
            lambda i: _post(urls[i % 2], app, "/1.1/requestSmsCode",
                            {"mobilePhoneNumber": numbers[i]}), range(12)))
    accepted = [numbers[i] for i, (status, _) in enumerate(results) if status == 200]
    refused = [body.get("code") for status, body in results if status != 200]
    assert len(accepted) == 5, results
    assert refused == [160] * 7, results

    # The two workers deliver all six, each once, each charged once.
    sent = Message.objects.filter(app=app)
    ids = list(sent.values_list("pk", flat=True))
    assert len(ids) == 6
    _wait("six deliveries", lambda: not sent.exclude(status=MessageStatus.DELIVERED).exists(),
          timeout=120)
    calls = _documents(sent_dir)
    assert sorted(calls) == sorted(ids)
    assert set(calls.values()) == {1}
    charges = Counter(LedgerEntry.objects.filter(message_id__in=ids, kind=LedgerKind.CHARGE)
                      .values_list("message_id", flat=True))
    assert charges == Counter({message_id: 1 for message_id in ids})
    app.refresh_from_db()
    assert app.balance == Decimal("0")
    assert_books(app)
    assert all(worker.proc.poll() is None for worker in workers)

    # Single-use codes: one delivered code, verified at once on both servers:
    # one success.
    number = accepted[0]
    message_id = Message.objects.get(app=app, phone=number).pk
    [document] = [doc for doc in (json.loads(path.read_text(encoding="utf-8"))
                                  for path in sent_dir.glob("*.json"))
                  if doc["message_id"] == message_id]
    code = CODE.search(document["body"]).group(1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(
            lambda i: _post(urls[i % 2], app, f"/1.1/verifySmsCode/{code}",
                            {"mobilePhoneNumber": number}), range(6)))
    assert [status for status, _ in results].count(200) == 1, results
