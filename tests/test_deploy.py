"""A production install as the README documents it: the broker check, the example
settings' production mode, `check --deploy`, and gunicorn under slow clients.

The settings and gunicorn tests run fresh processes with a cleaned environment, so
they see what an operator's shell would give them.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sms_service.checks import check_broker
from tests.test_worker import _closed_port

ROOT = Path(__file__).resolve().parent.parent

#: The environment the README's production section lists (nothing is contacted by
#: `check`: the addresses only need to parse).
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "sms.example.com",
    "DATABASE_URL": "postgres://sms@127.0.0.1:5432/sms",
    "CACHE_URL": "redis://127.0.0.1:6379/1",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
             "DJANGO_SETTINGS_MODULE": "example_project.settings", **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)


# --- the broker's transport -------------------------------------------------------


@pytest.fixture
def without_packaging(monkeypatch):
    """Kombu's Redis transport imports ``packaging``: make that import fail as in
    an environment where nothing installed it."""
    import kombu.transport

    monkeypatch.setitem(sys.modules, "packaging", None)
    monkeypatch.setitem(sys.modules, "packaging.version", None)
    monkeypatch.delitem(sys.modules, "kombu.transport.redis", raising=False)
    monkeypatch.setattr(kombu.transport, "_transport_cache", {})


def test_a_broker_transport_that_cannot_import_fails_the_checks(settings, without_packaging):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    errors = [e for e in check_broker() if e.id == "sms_service.E018"]
    assert errors  # one per redis:// address in use (settings, Celery app)
    for error in errors:
        assert "'redis'" in error.msg and "packaging" in error.msg
        assert "django-sms-service[redis]" in error.hint


def test_an_importable_broker_transport_passes(settings):
    for url in ("redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"):
        settings.CELERY_BROKER_URL = url
        assert [e.id for e in check_broker()] == [], url


def test_an_unknown_broker_transport_fails_the_checks(settings):
    settings.CELERY_BROKER_URL = "sqs://"  # kombu's SQS transport needs boto3
    assert "sms_service.E018" in [e.id for e in check_broker()]


# --- the example settings ---------------------------------------------------------


def test_production_mode_refuses_to_start_without_its_environment():
    result = _manage("check", env={})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    for name in PRODUCTION_ENV:  # each missing variable is named, none means SQLite
        assert name in result.stderr, name


def test_production_mode_refuses_the_example_secret_key():
    example_key = "example-project-insecure-key-change-me"  # example_project.settings
    for debug in ({}, {"DJANGO_DEBUG": "0"}):
        env = {**PRODUCTION_ENV, "DJANGO_SECRET_KEY": example_key, **debug}
        result = _manage("check", env=env)
        assert result.returncode != 0
        assert "needs these environment variables: DJANGO_SECRET_KEY." in result.stderr


def test_development_mode_runs_with_zero_configuration():
    result = _manage("check", env={"DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_check_deploy_passes_for_the_documented_production_settings():
    result = _manage("check", "--deploy", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr  # no errors (drf_spectacular.E001 was one)
    assert "E001" not in result.stderr
    for warning in ("W004", "W008", "W012", "W016"):  # HSTS, SSL redirect, secure cookies
        assert f"security.{warning}" not in result.stderr, result.stderr
    # With the two domain-wide HSTS promises made as well, no security warning at all.
    env = {**PRODUCTION_ENV, "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1", "DJANGO_HSTS_PRELOAD": "1"}
    result = _manage("check", "--deploy", env=env)
    assert result.returncode == 0 and "security." not in result.stderr, result.stderr


# --- gunicorn as the README runs it -----------------------------------------------


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


@pytest.mark.slow
def test_slow_clients_do_not_freeze_the_documented_gunicorn(tmp_path):
    """Six clients that promise a 100-byte body and send 7 stay connected; a
    normal request still gets its answer (sync workers, `-w 4`, never answer it)."""
    port = _closed_port()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "DJANGO_DEBUG": "1", "GUNICORN_BIND": f"127.0.0.1:{port}",
           "DJANGO_SETTINGS_MODULE": "example_project.settings"}
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "example_project/gunicorn.conf.py",
         "example_project.wsgi"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    slow: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                warm = _connect(port)  # and load the app before the slow clients come
                warm.settimeout(120)
                warm.sendall(b"GET /1.1/warm-up HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")
                warm.recv(4096)
                warm.close()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for _ in range(6):
            sock = _connect(port)
            sock.sendall(b"POST /1.1/requestSmsCode HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                         b'{"mobil')
            slow.append(sock)
        time.sleep(1)  # let the workers pick the slow requests up first
        normal = _connect(port)
        normal.settimeout(60)  # a bound on a loaded machine; sync workers never answer
        normal.sendall(b"GET /1.1/nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Connection: close\r\n\r\n")
        reply = normal.recv(4096)
        normal.close()
        assert reply.startswith(b"HTTP/1.1 404"), reply
        assert all(sock.fileno() != -1 for sock in slow)  # still holding on
    finally:
        for sock in slow:
            sock.close()
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()
