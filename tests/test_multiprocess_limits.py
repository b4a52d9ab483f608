"""Sending limits hold across server processes that share Redis."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from sms_service.models import Message

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _services_available() -> str | None:
    if connection.vendor != "postgresql":
        return "needs PostgreSQL (set DATABASE_URL)"
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        return "needs Redis as the cache (set CACHE_URL)"
    return None


@pytest.fixture
def require_services():
    reason = _services_available()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the multi-process tests: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def two_servers(require_services):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                        f"{db['PORT'] or 5432}/{db['NAME']}",
        "SMS_TEST_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
    }
    servers, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}",
                 "--noreload", "--skip-checks"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_until_up(url)
        yield urls
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_until_up(url: str) -> None:
    # Generous: on a loaded 2-core CI machine Django alone can take over 10 s to start.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/1.1/ping", timeout=1)
        except urllib.error.HTTPError:
            return  # a JSON 401/404 means the server answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


def _post(url: str, app, body: dict) -> tuple[int, dict]:
    ts = str(int(time.time() * 1000))
    request = urllib.request.Request(
        url + "/1.1/requestSmsCode", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-LC-Id": app.app_id,
                 "X-LC-Sign": hashlib.md5((ts + app.app_key).encode()).hexdigest() + "," + ts},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_one_sms_per_10_seconds_holds_across_two_processes(two_servers, app, signature):
    body = {"mobilePhoneNumber": "18612345678"}
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda i: _post(two_servers[i % 2], app, body), range(10)))
    ok = [r for r in results if r == (200, {})]
    too_fast = [r for r in results if r[1].get("code") == 1]
    assert len(ok) == 1, results
    assert len(too_fast) == 9
    assert Message.objects.count() == 1
