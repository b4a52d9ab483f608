"""Sending throughput and verify latency on PostgreSQL behind gunicorn.

Run from the repository root (PostgreSQL on 127.0.0.1; Redis optional)::

    .venv/bin/python benchmarks/sending_throughput.py
    .venv/bin/python benchmarks/sending_throughput.py --seconds 10 --verifies 300

What it does, on loopback only, with every loop bounded in count and time:

1. (Re)creates the database ``sms_bench`` on the server of DATABASE_URL
   (default postgres://postgres@127.0.0.1:5432/postgres), builds the schema and
   one app with an approved default signature.
2. Starts gunicorn (2 sync workers) on benchmarks.settings / benchmarks.urls.
3. Throughput (queued run, then inline run): N client threads run, in rounds
   of a fixed time each and alternating, (a) full cycles - POST
   /1.1/requestSmsCode for a fresh number, receive the code, POST
   /1.1/verifySmsCode/<code> - and (b) baseline cycles - two POSTs to a bare
   DRF endpoint doing one INSERT and one SELECT through the ORM, as a DRF
   endpoint does (benchmarks/urls.py; the same two statements as raw SQL are
   measured too, as the floor of what Django and DRF can serve). A baseline
   cycle is two requests like a real one, so the ratio compares the same
   number of HTTP round trips. After a warm-up of each kind the database is
   ANALYZEd (as autovacuum keeps a database in use). Prints cycles/s of each,
   the ratio of every round and their median (target >= 0.5).
4. Verify latency as the code table grows: bulk-fills verification_code rows
   (generate_series, same app, other numbers) to 10^4 and then 10^6 rows,
   ANALYZEs, and times single verify requests (median / p95) at each size,
   with EXPLAIN ANALYZE of the verify lookup.

How the code gets back to the client, in two runs (both as one UDP datagram
on loopback, which the load generator's inbox thread receives):

* inline - delivery runs at commit (``ASYNC`` off) through
  benchmarks.backend.LoadGeneratorBackend. The whole send path (claim, events,
  status transitions, payload decryption, the provider call) is inside the
  measured request: more than a deployment's request does, where a Celery
  worker sends.
* queued - as deployed: the request publishes the delivery task to Redis
  (its own queue, which nothing consumes during the run and which is dropped
  afterwards) and a ``message_queued`` receiver in benchmarks/urls.py sends the
  code. This is the HTTP tier's own cost.

Test numbers with fixed codes were not used: they skip the send path entirely.

Numbers are ratios from one run on one machine, not targets for absolute time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "sms_bench"
CODE_RE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


# --- helpers ------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_database_url(admin_url: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + DB_NAME, parts.query, ""))


def recreate_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1),
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- HTTP client --------------------------------------------------------------------


class CodeInbox:
    """The phone: receives ``<to>\\n<body>`` datagrams and hands each code to the
    thread waiting for that number."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.received: dict[str, str] = {}
        self.arrived = threading.Condition()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            data = self.socket.recv(65536)
            to, _, body = data.decode().partition("\n")
            with self.arrived:
                self.received[to] = body
                self.arrived.notify_all()

    def take(self, phone: str, timeout: float = 10.0) -> str:
        with self.arrived:
            if not self.arrived.wait_for(lambda: phone in self.received, timeout):
                raise RuntimeError(f"no message reached {phone} within {timeout} s")
            return self.received.pop(phone)


class Client:
    def __init__(self, port: int, app_id: str, app_key: str, inbox: CodeInbox):
        self.port = port
        self.headers = {"Content-Type": "application/json", "X-LC-Id": app_id,
                        "X-LC-Key": app_key}
        self.inbox = inbox

    def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, bytes]:
        # gunicorn's sync workers close the connection after each response.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=json.dumps(body).encode(),
                         headers=headers if headers is not None else self.headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def request_code(self, phone: str) -> str:
        status, body = self.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone})
        if status != 200:
            raise RuntimeError(f"requestSmsCode {phone}: {status} {body[:200]!r}")
        text = self.inbox.take(phone)
        match = CODE_RE.search(text)
        if not match:
            raise RuntimeError(f"no code in {text!r}")
        return match.group(1)

    def verify(self, phone: str, code: str) -> None:
        status, body = self.post(f"/1.1/verifySmsCode/{code}", {"mobilePhoneNumber": phone})
        if status != 200:
            raise RuntimeError(f"verifySmsCode {phone}: {status} {body[:200]!r}")

    def cycle(self, phone: str) -> None:
        self.verify(phone, self.request_code(phone))

    def _baseline(self, path: str, phone: str) -> None:
        for _ in range(2):
            status, body = self.post(path, {"mobilePhoneNumber": phone},
                                     headers={"Content-Type": "application/json"})
            if status != 200:
                raise RuntimeError(f"{path}: {status} {body[:200]!r}")

    def baseline_cycle(self, phone: str) -> None:
        self._baseline("/bench/baseline", phone)

    def sql_baseline_cycle(self, phone: str) -> None:
        self._baseline("/bench/baseline-sql", phone)


class Numbers:
    """Distinct, valid mainland mobile numbers (+86 138...), thread-safe."""

    def __init__(self, prefix: str = "+86138"):
        self.prefix = prefix
        self.lock = threading.Lock()
        self.next = 0

    def take(self) -> str:
        with self.lock:
            n = self.next
            self.next += 1
        if n >= 10**8:
            raise RuntimeError("out of numbers")
        return f"{self.prefix}{n:08d}"


def run_for(label: str, seconds: float, threads: int, work, numbers: Numbers) -> float:
    """Run ``work(phone)`` on ``threads`` threads for ``seconds``; cycles per second."""
    done = [0] * threads
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop(i: int) -> None:
        while not stop.is_set():
            try:
                work(numbers.take())
            except BaseException as exc:
                errors.append(exc)
                stop.set()
                return
            done[i] += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    next_report = start + 1
    while time.perf_counter() - start < seconds and not stop.is_set():
        time.sleep(0.05)
        now = time.perf_counter()
        if now >= next_report:
            log(f"    {label}: {sum(done):6d} cycles, {sum(done) / (now - start):7.1f}/s")
            next_report += 1
    stop.set()
    for t in workers:
        t.join(timeout=60)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{label} failed: {errors[0]}") from errors[0]
    return sum(done) / elapsed


# --- database preparation -------------------------------------------------------------


def setup_schema_and_app():
    from django.core.management import call_command

    from sms_service.models import App, Signature

    # Migrated apps, then the baseline's table (the benchmarks app has no
    # migration files).
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    app = App.objects.create(name="Bench", company_name="Bench Ltd")
    Signature.objects.create(app=app, name="LeanCloud", text="LeanCloud", status="approved",
                             is_default=True)
    return app


def analyze() -> None:
    """Planner statistics for the tables the warm-up filled, as a database in use
    has them (autovacuum would otherwise gather them in the middle of a round)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def code_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sms_service_verificationcode")
        return cursor.fetchone()[0]


def fill_codes(app_pk: int, target: int) -> float:
    """Add rows until the code table holds ``target`` rows; returns seconds taken.

    Other numbers of the same app (+86139...), one row each as the table keeps
    them: mostly finished codes (used, expired, dead) and one in ten still
    active with a unique lookup.
    """
    from django.db import connection

    have = code_rows()
    if have >= target:
        return 0.0
    start = time.perf_counter()
    step = 200_000
    first = have
    while first < target:
        last = min(target, first + step)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO sms_service_verificationcode
                    (app_id, phone, purpose, digest, lookup, status, attempts,
                     expires_at, created_at, used_at, data)
                SELECT %s,
                       '+86139' || lpad(i::text, 8, '0'),
                       'generic',
                       md5('d' || i) || md5('e' || i),
                       md5('l' || i) || md5('m' || i),
                       (ARRAY['used', 'expired', 'dead', 'used', 'expired',
                              'used', 'expired', 'used', 'expired', 'active'])[i %% 10 + 1],
                       0,
                       now() + interval '10 minutes' - (i %% 1000) * interval '1 minute',
                       now() - (i %% 1000) * interval '1 minute',
                       NULL,
                       '{}'::jsonb
                FROM generate_series(%s, %s) AS i
                """,
                [app_pk, first, last - 1],
            )
        first = last
        log(f"    filled {first:>9,d} / {target:,d} rows")
    analyze()
    return time.perf_counter() - start


def explain_verify(app, phone: str) -> str:
    """EXPLAIN ANALYZE of verifySmsCode's lookup, the statement itself
    (sms_service.services.codes.ACTIVE_CODE_SQL); the consuming UPDATE then goes
    by primary key."""
    from django.db import connection

    from sms_service.models import VerificationCode
    from sms_service.services.codes import ACTIVE_CODE_SQL

    statement = ACTIVE_CODE_SQL.format(table=VerificationCode._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN ANALYZE " + statement, [app.pk, phone, "generic", "active"])
        return "\n".join(row[0] for row in cursor.fetchall())


def verify_latency(client: Client, numbers: Numbers, count: int, label: str) -> list[float]:
    times = []
    for i in range(count):
        phone = numbers.take()
        code = client.request_code(phone)
        start = time.perf_counter()
        client.verify(phone, code)
        times.append(time.perf_counter() - start)
        if (i + 1) % max(1, count // 4) == 0:
            log(f"    {label}: {i + 1}/{count} verifies")
    return times


# --- main -------------------------------------------------------------------------------


class Server:
    """gunicorn on a free loopback port, stopped (process group) on exit."""

    def __init__(self, env: dict[str, str], workers: int, client_args: tuple):
        self.env = env
        self.workers = workers
        self.port = free_port()
        self.client = Client(self.port, *client_args)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Client:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "benchmarks.wsgi:application",
             "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "--timeout", "60"],
            cwd=ROOT, env=self.env, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.post("/bench/baseline", {"mobilePhoneNumber": "warmup"},
                                 headers={"Content-Type": "application/json"})
                return self.client
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def throughput(client: Client, numbers: Numbers, args, title: str) -> float:
    """Alternating rounds of each kind; returns the median of the rounds' ratios."""
    log(f"\n== throughput, {title} (cycles/s; a cycle is two HTTP requests)")
    kinds = [("baseline", client.baseline_cycle), ("baseline-sql", client.sql_baseline_cycle),
             ("request+verify", client.cycle)]
    for label, work in kinds:
        run_for(f"warm-up {label}", 1.5, args.threads, work, numbers)
    analyze()
    rates: dict[str, list[float]] = {label: [] for label, _ in kinds}
    for round_no in range(1, args.rounds + 1):
        for label, work in kinds if round_no % 2 else kinds[::-1]:
            rates[label].append(run_for(label, args.seconds, args.threads, work, numbers))
        log(f"  round {round_no}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
    sms = rates["request+verify"]
    ratios = [a / b for a, b in zip(sms, rates["baseline"], strict=True)]
    floor_ratios = [a / b for a, b in zip(sms, rates["baseline-sql"], strict=True)]

    def show(values: list[float], digits: int = 1) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in values)

    log(f"  baseline, DRF + ORM (2 x INSERT+SELECT)   {statistics.median(rates['baseline']):8.1f}"
        f" cycles/s  (rounds: {show(rates['baseline'])})")
    log(f"  floor, DRF + raw SQL (2 x INSERT+SELECT)  "
        f"{statistics.median(rates['baseline-sql']):8.1f} cycles/s  "
        f"(rounds: {show(rates['baseline-sql'])})")
    log(f"  requestSmsCode + verifySmsCode            {statistics.median(sms):8.1f}"
        f" cycles/s  (rounds: {show(sms)})")
    ratio = statistics.median(ratios)
    log(f"  RATIO sms / baseline      median {ratio:5.2f}  (rounds: {show(ratios, 2)})")
    log(f"  ratio sms / raw-SQL floor median {statistics.median(floor_ratios):5.2f}  "
        f"(rounds: {show(floor_ratios, 2)})")
    return ratio


def latency(client: Client, numbers: Numbers, app, args) -> None:
    log("\n== verify latency as the code table grows (one client, sequential)")
    results = []
    plans = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        log(f"  filling the code table to {size:,d} rows")
        took = fill_codes(app.pk, size)
        if took:
            log(f"    done in {took:.1f} s")
        verify_latency(client, numbers, min(20, args.verifies), "warm-up")
        times = verify_latency(client, numbers, args.verifies, f"{size:,d} rows")
        rows = code_rows()
        results.append((rows, statistics.median(times), percentile(times, 95)))
        # EXPLAIN the verify lookup for a number holding an active code.
        phone = numbers.take()
        client.request_code(phone)
        plans.append((rows, explain_verify(app, phone)))
    log(f"\n  code rows    verify median (ms)   verify p95 (ms)   ({args.verifies} verifies each)")
    for rows, median, p95 in results:
        log(f"  {rows:>10,d}   {median * 1000:14.2f}   {p95 * 1000:14.2f}")
    if len(results) >= 2:
        log(f"  median, largest / smallest table: {results[-1][1] / results[0][1]:.2f}")
    for rows, plan in plans:
        log(f"\n  EXPLAIN ANALYZE of the verify lookup at {rows:,d} rows:")
        for line in plan.splitlines():
            log(f"    {line}")


def clear_queue(broker_url: str) -> None:
    """Drop the benchmark's own queue (nothing consumes it during the run)."""
    import redis

    r = redis.Redis.from_url(broker_url)
    r.delete("sms-bench", "_kombu.binding.sms-bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="length of each throughput run")
    parser.add_argument("--rounds", type=int, default=7,
                        help="alternating rounds of each kind (the ratio is their median)")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--verifies", type=int, default=200,
                        help="verify requests timed at each table size")
    parser.add_argument("--sizes", default="10000,1000000",
                        help="code-table sizes for the latency runs")
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    cache_url = os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/2")
    broker_url = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/3")
    inbox = CodeInbox()
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "BENCH_DATABASE_URL": bench_database_url(admin_url),
        "BENCH_CODE_ADDRESS": inbox.address,
        "BENCH_CACHE_PREFIX": f"sms-bench-{uuid.uuid4().hex[:8]}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    redis_ok = redis_answers(cache_url)
    if redis_ok:
        env["BENCH_CACHE_URL"] = cache_url
    os.environ.update(env)

    where = urlsplit(admin_url)
    log(f"database   {DB_NAME} on {where.hostname}:{where.port or 5432} (recreated)")
    log(f"cache      {env.get('BENCH_CACHE_URL', 'locmem (Redis not answering)')}")
    log(f"server     gunicorn, {args.workers} sync workers; client: {args.threads} threads")
    recreate_database(admin_url)

    import django

    django.setup()
    from django.db import connection

    app = setup_schema_and_app()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    log(f"versions   Python {sys.version.split()[0]}, Django {django.__version__}, "
        f"PostgreSQL {pg_version}")
    client_args = (app.app_id, app.app_key, inbox)
    numbers = Numbers("+86138")
    ratios = {}

    if redis_answers(broker_url):
        clear_queue(broker_url)
        queued_env = {**env, "BENCH_DELIVERY": "queued", "BENCH_BROKER_URL": broker_url,
                      "CELERY_BROKER_URL": broker_url}
        with Server(queued_env, args.workers, client_args) as client:
            ratios["queued"] = throughput(
                client, numbers, args,
                "delivery queued on Redis as deployed (the request's own work)")
        clear_queue(broker_url)
    else:
        log(f"\n(no Redis broker at {broker_url}: the queued-delivery run is skipped)")

    inline_env = {**env, "BENCH_DELIVERY": "inline"}
    with Server(inline_env, args.workers, client_args) as client:
        ratios["inline"] = throughput(
            client, numbers, args,
            "delivery inline at commit (request + the whole send path)")
        latency(client, numbers, app, args)

    log("\n== summary")
    for mode, ratio in ratios.items():
        log(f"  {mode:7s} sms cycles / baseline cycles = {ratio:.2f}  "
            f"(target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
    log(f"  one run on this machine ({os.cpu_count()} CPUs, client and server share them):"
        " compare ratios, not times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
