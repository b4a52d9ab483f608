"""The reliability suite: the deployed pieces fail, nothing is lost, duplicated,
charged twice or half-written. Figures are printed under "reliability figures"
at the end of the run.

* a Celery worker killed with SIGKILL in the middle of a batch, five times;
* the broker down (a private Redis server, stopped and started again);
* the cache down (a private Redis server as the rate-limit store);
* the database restarted under HTTP load (a private PostgreSQL cluster behind
  gunicorn).

The shared PostgreSQL/Redis/RabbitMQ servers of the machine are never stopped:
every outage is staged on a private instance on a free port. Marked ``services``
and ``slow``; skipped without PostgreSQL + Redis, failing instead under CI=true.
Waits are bounded polls; timings are reported, never asserted.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from glob import glob
from pathlib import Path

import pytest

from sms_service import caching
from sms_service.models import (
    LedgerEntry,
    LedgerKind,
    Message,
    MessageEvent,
    MessageStatus,
)
from sms_service.services import recovery
from sms_service.services.sending import SmsRequest, request_sms
from tests.billing_support import funded_app, phone, set_price
from tests.celery_app import app as celery_app
from tests.test_worker import (
    ROOT,
    Worker,
    _closed_port,
    _database_url,
    _require_services,
    _use_write_broker,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROUNDS = 5
BATCH = 50
#: Longest wait for a batch to be settled after a kill (a bound, not a target).
RECOVERY_TIMEOUT = 240.0


# --- processes ----------------------------------------------------------------------


def _wait(what: str, condition, timeout: float = 60.0, interval: float = 0.2) -> float:
    """Poll ``condition`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"no {what} within {timeout:.0f} s", pytrace=False)
        time.sleep(interval)
    return time.monotonic() - start


def _shared_cache_prefix() -> dict[str, str]:
    """The worker shares this process's cache entries (sending limits, the
    delivery runs' wake-ups), as a deployment's workers share its web's."""
    from django.conf import settings

    prefix = settings.CACHES["default"].get("KEY_PREFIX")
    return {"SMS_TEST_CACHE_PREFIX": prefix} if prefix else {}


def start_worker(base: Path, *, broker: str, sent_dir: Path, name: str,
                 batch_size: int = 1) -> Worker:
    """A ``celery worker`` (solo pool, its own process group) on ``broker``, with
    the slow file backend writing to ``sent_dir`` (in batches of ``batch_size``)."""
    log_path = base / f"worker-{name}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "SMS_TEST_BACKEND": "slowfile",
        "SMS_FILE_PATH": str(sent_dir),
        "SMS_TEST_BATCH_SIZE": str(batch_size),
        **_shared_cache_prefix(),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
           "--pool=solo", "--concurrency=1", "-l", "warning", "--without-gossip",
           "--without-mingle", "--without-heartbeat", "-n", f"sms-rel-{name}-{os.getpid()}@%h"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Worker(proc, log_path, sent_dir)


def kill_9(worker: Worker) -> None:
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=30)


class PrivateRedis:
    """A throw-away redis-server on a free port (never the shared one)."""

    def __init__(self, base: Path):
        self.port = _closed_port()
        self.base = base
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            pytest.fail("redis-server is not installed (.ci/run installs it)", pytrace=False)
        self.proc = subprocess.Popen(
            [redis_server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        _wait("private Redis", answers, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # an outage, not a clean shutdown
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


# --- 1. kill -9 of a worker mid-batch -----------------------------------------------


@pytest.fixture
def eager_off(settings, tmp_path):
    """This process publishes to the real broker; the sweep's thresholds are
    short (the killed worker is certainly dead)."""
    sent_dir = tmp_path / "sent"
    sent_dir.mkdir()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "ASYNC": True,
        "BACKENDS": {"default": {"BACKEND": "tests.provider_delay.SlowFileBackend",
                                 "OPTIONS": {"PATH": str(sent_dir)}}},
        "STUCK_QUEUED_AFTER_SECONDS": 5,
        "STUCK_CLAIMED_AFTER_SECONDS": 2,
        "STUCK_SENDING_AFTER_SECONDS": 3,
        "RESOLVE_UNKNOWN_AFTER_SECONDS": 1,
    }
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield sent_dir
    finally:
        celery_app.conf.task_always_eager = eager
        _use_write_broker(None)


def _documents(sent_dir: Path) -> Counter:
    """Provider calls per message id (one document per call)."""
    counts: Counter = Counter()
    for path in sent_dir.glob("*.json"):
        counts[json.loads(path.read_text(encoding="utf-8"))["message_id"]] += 1
    return counts


@pytest.mark.parametrize("batch_size", [1, 10], ids=["one-by-one", "batches-of-10"])
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_loses_duplicates_and_double_charges_nothing(
        eager_off, tmp_path, figures, settings, batch_size):
    """Also with a backend sending in batches: a kill mid-batch leaves the
    batch's started calls unknown; the sweep asks the provider about each and
    sends only those it does not have."""
    _require_services()
    sent_dir = eager_off
    backend = settings.SMS_SERVICE["BACKENDS"]["default"]
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "BACKENDS": {"default": {
        **backend, "OPTIONS": {**backend["OPTIONS"], "BATCH_SIZE": batch_size}}}}
    broker = os.environ["CELERY_BROKER_URL"]
    set_price("0.05")
    # Hundreds of unverified codes to one number range are what the pumping
    # defence holds back; this scenario is about delivery.
    app = funded_app("1000", pumping_defence=False)
    from sms_service.models import Signature

    Signature.objects.create(app=app, name="Demo", text="Demo", status="approved",
                             is_default=True)
    rng = random.Random(20261130)
    totals = Counter()
    for round_no in range(ROUNDS):
        worker = start_worker(tmp_path, broker=broker, sent_dir=sent_dir, name=f"{round_no}a",
                              batch_size=batch_size)
        ids = [
            request_sms(app=app, request=SmsRequest(phone=phone(round_no * BATCH + i))).pk
            for i in range(BATCH)
        ]
        # Somewhere between a quarter and three quarters of the batch.
        kill_after = rng.randrange(BATCH // 4, BATCH * 3 // 4)
        try:
            worker.wait_for(f"{kill_after} deliveries before the kill",
                            lambda ids=ids, n=kill_after: sum(
                                1 for i in _documents(sent_dir) if i in set(ids)) >= n,
                            timeout=180)
        except BaseException:
            worker.stop()  # not left running after the test
            raise
        kill_9(worker)
        at_kill = Counter(
            "claimed, call not started" if (s == MessageStatus.SENDING and c is None)
            else "mid-call" if s == MessageStatus.SENDING else s
            for s, c in Message.objects.filter(pk__in=ids).values_list("status", "call_started_at")
        )
        killed_at = time.monotonic()
        replacement = start_worker(tmp_path, broker=broker, sent_dir=sent_dir,
                                   name=f"{round_no}b", batch_size=batch_size)
        try:
            def settled(ids=ids) -> bool:
                recovery.redispatch_stuck()  # what beat runs every 10 s
                return not Message.objects.filter(pk__in=ids).exclude(status=MessageStatus.DELIVERED).exists()

            deadline = time.monotonic() + RECOVERY_TIMEOUT
            while not settled():
                if time.monotonic() > deadline:
                    left = Counter(Message.objects.filter(pk__in=ids)
                                   .exclude(status=MessageStatus.DELIVERED).values_list("status", flat=True))
                    pytest.fail(f"round {round_no + 1}: not delivered {RECOVERY_TIMEOUT:.0f} s "
                                f"after the kill: {dict(left)} (at the kill: {dict(at_kill)})"
                                f"\n{replacement.log_tail()}", pytrace=False)
                time.sleep(0.2)
        finally:
            replacement.stop()
        recovery_seconds = time.monotonic() - killed_at

        calls = _documents(sent_dir)
        delivered = Message.objects.filter(pk__in=ids, status=MessageStatus.DELIVERED).count()
        lost = BATCH - sum(1 for i in ids if calls[i] >= 1)
        duplicated = sum(1 for i in ids if calls[i] > 1)
        charges = Counter(LedgerEntry.objects.filter(message_id__in=ids, kind=LedgerKind.CHARGE)
                          .values_list("message_id", flat=True))
        double_charges = sum(1 for i in ids if charges[i] > 1)
        uncharged = sum(1 for i in ids if charges[i] == 0)
        released = LedgerEntry.objects.filter(message_id__in=ids, kind=LedgerKind.RELEASE).count()
        resent = MessageEvent.objects.filter(
            message_id__in=ids, description__contains="sending again").count()
        looked_up = MessageEvent.objects.filter(
            message_id__in=ids, description__startswith="file has it").count()
        totals.update(lost=lost, duplicated=duplicated, double_charges=double_charges,
                      delivered=delivered)
        figures.append(
            f"kill -9 ({batch_size=}) round {round_no + 1}/{ROUNDS}: worker killed after {kill_after} of "
            f"{BATCH} sends (at the kill: {dict(at_kill)}); delivered {delivered}/{BATCH}, "
            f"lost {lost}, duplicated {duplicated}, double charges {double_charges}, "
            f"uncharged {uncharged}; recovered by resend {resent}, by provider lookup "
            f"{looked_up}; all delivered {recovery_seconds:.1f} s after the kill"
        )
        assert (lost, duplicated, double_charges, uncharged, released) == (0, 0, 0, 0, 0)
        assert delivered == BATCH
    figures.append(
        f"kill -9 ({batch_size=}) x{ROUNDS} ({ROUNDS * BATCH} messages): delivered {totals['delivered']}, "
        f"lost {totals['lost']}, duplicated {totals['duplicated']}, "
        f"double charges {totals['double_charges']}"
    )
    app.refresh_from_db()
    assert app.balance == Decimal("1000") - Decimal("0.05") * ROUNDS * BATCH


# --- 2. broker down ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_broker_down_sends_are_accepted_and_delivered_after_it_returns(
        eager_off, tmp_path, private_redis, lc, signature, figures):
    _require_services()
    # Twenty unverified codes to one number range would trip the pumping defence.
    lc.app.pumping_defence = False
    lc.app.save()
    sent_dir = eager_off
    _use_write_broker(private_redis.url)
    worker = start_worker(tmp_path, broker=private_redis.url, sent_dir=sent_dir, name="broker")
    try:
        private_redis.stop()  # the broker goes down
        phones = [f"+86137{i:04d}{(i * 7919) % 10000:04d}" for i in range(20)]
        answers = [lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": p}) for p in phones]
        accepted = sum(1 for r in answers if r.status_code == 200 and r.json() == {})
        ids = list(Message.objects.filter(phone__in=phones).values_list("pk", flat=True))
        queued = Message.objects.filter(pk__in=ids, status=MessageStatus.QUEUED).count()

        private_redis.start()  # back, empty: the tasks published meanwhile are gone
        started = time.monotonic()

        def delivered_all() -> bool:
            recovery.redispatch_stuck()
            return Message.objects.filter(pk__in=ids, status=MessageStatus.DELIVERED).count() == len(ids)

        worker.wait_for("delivery after the broker returned", delivered_all, timeout=180)
        took = time.monotonic() - started
    finally:
        worker.stop()
    calls = _documents(sent_dir)
    figures.append(
        f"broker down: {accepted}/{len(phones)} sends answered {{}} during the outage "
        f"({queued} rows queued); {len(ids)}/{len(phones)} delivered {took:.1f} s after "
        f"it returned, {sum(1 for i in ids if calls[i] > 1)} duplicated"
    )
    assert accepted == len(phones) == len(ids) == queued
    assert all(calls[i] == 1 for i in ids)


# --- 3. cache down ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cache_down_sends_are_refused(private_redis, settings, lc, signature, outbox, figures):
    """The sending limits live in the cache: without it nothing is sent (fail closed)."""
    _require_services()
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": private_redis.url,
                    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}},
    }
    assert lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "18612340000"}).json() == {}
    private_redis.stop()
    caching.clear_process()  # the process's copies of the app and prices expire too
    phones = [f"186123{i:05d}" for i in range(1, 11)]
    answers = [lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": p}) for p in phones]
    refused = [r for r in answers if r.status_code >= 400 and set(r.json()) == {"code", "error"}]
    written = Message.objects.filter(phone__in=["+86" + p for p in phones]).count()
    figures.append(
        f"cache down: {len(refused)}/{len(phones)} sends refused "
        f"(HTTP {sorted({r.status_code for r in answers})}, LeanCloud code "
        f"{sorted({r.json().get('code') for r in answers})}), {written} messages written, "
        f"{len(outbox) - 1} sent"
    )
    assert len(refused) == len(phones)
    assert {r.status_code for r in answers} == {503}
    assert written == 0 and len(outbox) == 1


# --- 4. database restart under load -----------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (.ci/run installs it)",
                    pytrace=False)
    return path


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a temporary directory on a free port."""

    def __init__(self, base: Path):
        self.dir = base / "pgdata"
        self.port = _closed_port()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
            base.chmod(0o755)
            for parent in base.parents:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o005)

    def _run(self, *cmd: str, check: bool = True) -> None:
        done = subprocess.run([*self.as_postgres, *cmd], capture_output=True, text=True,
                              timeout=120)
        if check and done.returncode != 0:
            log = self.dir / "log"
            pytest.fail(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}\n"
                        + (log.read_text()[-3000:] if log.exists() else ""), pytrace=False)

    def init(self) -> None:
        self.dir.mkdir()
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        self.start()
        self._run(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                  "postgres", "sms")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/sms"

    def _ctl(self, action: str, *extra: str, check: bool = True) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.dir), "-w", "-t", "60", *extra, action,
                  check=check)

    def start(self) -> None:
        self._ctl("start", "-l", str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast", "-l", str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self) -> None:
        if (self.dir / "postmaster.pid").exists():
            self._ctl("stop", "-m", "immediate", check=False)


@pytest.fixture
def private_postgres(tmp_path):
    _require_services()
    pg = PrivatePostgres(tmp_path)
    pg.init()
    try:
        yield pg
    finally:
        pg.stop()


def test_database_restart_under_load_gives_no_traceback_and_no_half_rows(
        private_postgres, tmp_path, figures):
    import requests

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": private_postgres.url,
        "SMS_TEST_BACKEND": "file",
        "SMS_FILE_PATH": str(tmp_path / "sent"),
        "SMS_TEST_CACHE_PREFIX": f"sms-rel-{os.getpid()}",
        "SMS_TEST_LOAD": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    manage = [sys.executable, "-m", "django"]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    seed = subprocess.run([*manage, "sms_service_demo"], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=120).stdout
    app_id = re.search(r"App id:\s+(\S+)", seed).group(1)
    app_key = re.search(r"App key:\s+(\S+)", seed).group(1)
    port = _closed_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [str(gunicorn), "-c", "example_project/gunicorn.conf.py",
         "django.core.wsgi:get_wsgi_application()"],
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2",
             "GUNICORN_THREADS": "4"},
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    headers = {"X-LC-Id": app_id, "X-LC-Key": app_key}
    results: list[tuple[str, int, str, str]] = []
    stop = threading.Event()
    lock = threading.Lock()
    counter = iter(range(10**6))

    def load() -> None:
        session = requests.Session()
        while not stop.is_set():
            with lock:
                i = next(counter)
            number = f"+86135{i:04d}{(i * 7919) % 10000:04d}"
            try:
                r = session.post(f"{base}/1.1/requestSmsCode", json={"mobilePhoneNumber": number},
                                 headers=headers, timeout=30)
                results.append((number, r.status_code, r.headers.get("Content-Type", ""),
                                r.text))
            except requests.RequestException as exc:  # counted below: must stay 0
                results.append((number, -1, "", repr(exc)))

    try:
        def up() -> bool:
            try:
                return requests.get(f"{base}/1.1/nothing", timeout=5).status_code == 404
            except requests.RequestException:
                return False

        _wait("gunicorn", up, timeout=60)
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        _wait("load before the restart", lambda: len(results) >= 40, timeout=120)
        before = len(results)
        private_postgres.restart()
        restarted_at = len(results)
        _wait("load after the restart",
              lambda: len(results) >= restarted_at + 40, timeout=120)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()

    statuses = Counter(status for _, status, _, _ in results)
    traces = [r for r in results if "Traceback" in r[3] or "<html" in r[3].lower()]
    not_json = [r for r in results if r[1] != 200 and "application/json" not in r[2]]
    not_leancloud = [r for r in results if r[1] >= 400 and not _is_leancloud_error(r[3])]
    ok_numbers = {n for n, status, _, _ in results if status == 200}
    failed_numbers = {n for n, status, _, _ in results if status != 200}

    # The rows, read from the private database.
    check = subprocess.run(
        [*manage, "shell", "-c", _ROWS_SCRIPT], env=env, cwd=ROOT, check=True,
        capture_output=True, text=True, timeout=120)
    rows = json.loads(check.stdout.strip().splitlines()[-1])
    with_message = set(rows["messages"])
    half_written = rows["without_hold"] + rows["without_code"]
    figures.append(
        f"database restart under load: {len(results)} requests ({before} before the "
        f"restart), answers {dict(sorted(statuses.items()))}; tracebacks/HTML "
        f"{len(traces)}, non-LeanCloud errors {len(not_leancloud)}; half-written rows "
        f"{len(half_written)}; answered 200 without a message {len(ok_numbers - with_message)}, "
        f"refused with a message {len(failed_numbers & with_message)}"
    )
    assert statuses[-1] == 0  # no dropped connection
    assert set(statuses) <= {200, 503}  # 503 + Retry-After while the database is away
    assert statuses[500] == 0
    assert traces == [] and not_json == [] and not_leancloud == []
    assert half_written == []
    assert ok_numbers <= with_message  # every {} has its message
    assert not (failed_numbers & with_message)  # every refusal wrote nothing
    assert statuses[200] > 0


def _is_leancloud_error(text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"code", "error"}


#: Run in the private database: messages by number, and rows missing their pair
#: (a message without its hold, a message without its code row).
_ROWS_SCRIPT = """
import json
from sms_service import caching
from sms_service.models import LedgerEntry, Message
from sms_service.models.codes import VerificationCode
messages = list(Message.objects.values_list("phone", flat=True))
held = set(LedgerEntry.objects.filter(kind="hold").values_list("message_id", flat=True))
coded = set(VerificationCode.objects.values_list("phone", flat=True))
print(json.dumps({
    "messages": messages,
    "without_hold": [m.pk for m in Message.objects.filter(cost__gt=0) if m.pk not in held],
    "without_code": [p for p in messages if p not in coded],
}))
"""
