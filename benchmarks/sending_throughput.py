"""Sending throughput: requestSmsCode -> verifySmsCode cycles against bare DRF
views, over HTTP, with an external load generator (wrk).

Run from the repository root (PostgreSQL and Redis on 127.0.0.1; wrk from
Debian: ``apt-get install -y wrk``, which the script runs itself when it is
root and wrk is missing)::

    .venv/bin/python benchmarks/sending_throughput.py            # the full table (~10 min)
    .venv/bin/python benchmarks/sending_throughput.py --smoke    # a quick pass (~30 s)

What is measured, on loopback only, every run bounded in time:

* Server: gunicorn, 2 sync workers, benchmarks.settings (PostgreSQL with
  CONN_MAX_AGE=600, Redis cache, Django's default middleware plus CORS, billing
  on with a CN price, every sending limit at its default except the per-IP
  windows, raised because all load comes from one address). The database is
  recreated (``--database``, default ``sms_bench``).
* Load: wrk, 8 threads with one connection each (benchmarks/wrk/cycle.lua).
* Baselines, bare DRF views through the ORM: one INSERT of a small row, and one
  SELECT by primary key among 1,000 rows, each measured alone; their *pair*
  ``1 / (1/insert + 1/select)`` is the rate of a cycle that did one of each.
* Ours: cycles of requestSmsCode for a new number (the code comes back in a
  response header that the benchmark's adapter sets) then verifySmsCode,
  "queued" (as deployed with a network provider, which sends one message at
  a time), "woken" (as deployed with a backend that sends in batches of 100)
  and "inline" (delivery inside the request). In both queued modes the
  request wakes the backend's delivery runs, publishing a task to Redis only
  when no run is pending (see the outbox's wake-ups); no worker consumes the
  queue during a run. They differ in what the runs would claim, which the
  request does not see: the two measure the same request path.
* At 0, 10^5 and 10^6 old code rows (bulk-filled, then VACUUM ANALYZEd), in rounds
  that alternate the order of the kinds; each ratio is ours / pair of the same
  round, and the table shows the median of the rounds with their spread.
* Database and Redis round trips of one requestSmsCode and one verifySmsCode,
  counted in this process through the same settings (queued mode).
* Hot row: one app against eight apps sharing the same load, 32 connections
  on 4 workers, queued (``--no-hot-row`` skips it).

Figures are ratios from one run on one machine: the client, the server,
PostgreSQL and Redis share its cores, so compare ratios, not times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LUA = ROOT / "benchmarks" / "wrk" / "cycle.lua"
#: The modes whose requests hand delivery to the workers (target 0.5; inline 0.3).
QUEUED = ("queued", "woken")
READ_ROWS = 1000


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --- the load generator -------------------------------------------------------------


def find_wrk() -> str:
    """wrk from PATH; installed from Debian's packages when missing and root."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False)
        path = shutil.which("wrk")
        if path:
            return path
    sys.exit("This benchmark needs wrk (HTTP load generator): apt-get install -y wrk")


class Load:
    """Runs wrk with cycle.lua; each run takes the phone numbers after the last
    run's, so no number repeats and each number range gets its turn in order."""

    def __init__(self, wrk: str):
        self.wrk = wrk
        self.offset = 0

    def run(self, port: int, kind: str, seconds: float, threads: int, connections: int,
            apps: list[tuple[str, str]] = (), warm_up: bool = False) -> float:
        """Completed units per second (cycles, or requests for the baselines).
        A warm-up run only has to end without errors."""
        env = {**os.environ, "BENCH_KIND": kind, "BENCH_OFFSET": str(self.offset),
               "BENCH_ROWS": str(READ_ROWS), "BENCH_THREADS": str(threads),
               "BENCH_APPS": ",".join(f"{i}:{k}" for i, k in apps)}
        cmd = [self.wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{port}/"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
        if out.returncode or line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
        result = json.loads(line[6:])
        # The next run's numbers follow this run's (cycle.lua numbers them
        # offset + seq * threads + thread): number ranges keep their turns.
        self.offset += result["requests"] + threads
        if (result["done"] == 0 and not warm_up) or result["errors"] > max(2, result["done"] // 100):
            raise RuntimeError(f"{kind}: {result['done']} done, {result['errors']} errors; "
                               f"first: {result['first_error']}")
        return result["done"] / result["seconds"]


# --- server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn on a free loopback port, stopped (its process group) on exit."""

    def __init__(self, env: dict[str, str], workers: int):
        self.env, self.workers = env, workers
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "benchmarks.wsgi:application",
             "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "--timeout", "60"],
            cwd=ROOT, env=self.env, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}/bench/select/1", timeout=5):
                    return self
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


# --- database -----------------------------------------------------------------------


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create ``name`` on the server of ``admin_url`` (through its
    ``postgres`` database); returns the new database's URL."""
    import psycopg

    parts = urlsplit(admin_url.replace("postgres://", "postgresql://", 1))
    with psycopg.connect(urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, "")),
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def setup_apps(count: int):
    """Schema, ``count`` apps (approved default signature, topped up), the CN
    price, and the SELECT baseline's rows."""
    from django.core.management import call_command

    from benchmarks.models import ReadRow
    from sms_service.models import App, Price, Signature
    from sms_service.services import billing

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    Price.objects.create(region="CN", channel="sms", unit_price="0.0500")
    apps = []
    for i in range(count):
        app = App.objects.create(name=f"Bench {i}", company_name="Bench Ltd")
        Signature.objects.create(app=app, name="LeanCloud", text="LeanCloud",
                                 status="approved", is_default=True)
        billing.top_up(app=app, amount="100000000", reason="benchmark")
        apps.append(app)
    ReadRow.objects.bulk_create(ReadRow(phone=f"+8613700{i:06d}") for i in range(READ_ROWS))
    return apps


def analyze() -> None:
    """VACUUM ANALYZE, as autovacuum keeps a database in use: planner statistics
    for the filled tables, and the dead versions of the apps' balance rows
    (one per send) cleared before the measured rounds."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def code_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sms_service_verificationcode")
        return cursor.fetchone()[0]


def fill_codes(app_pk: int, old: int) -> None:
    """Add ``old`` rows of other numbers (+86139...) of the same app: mostly
    finished codes (used, expired, dead), one in ten still active."""
    from django.db import connection

    step = 50_000  # short transactions: a long one holds back every table's cleanup
    for first in range(0, old, step):
        last = min(old, first + step)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO sms_service_verificationcode
                    (app_id, phone, purpose, digest, lookup, status, attempts,
                     expires_at, created_at, used_at, data)
                SELECT %s, '+86139' || lpad(i::text, 8, '0'), 'generic',
                       md5('d' || i) || md5('e' || i), md5('l' || i) || md5('m' || i),
                       (ARRAY['used', 'expired', 'dead', 'used', 'expired',
                              'used', 'expired', 'used', 'expired', 'active'])[i %% 10 + 1],
                       0, now() + interval '10 minutes' - (i %% 1000) * interval '1 minute',
                       now() - (i %% 1000) * interval '1 minute', NULL, '{}'::jsonb
                FROM generate_series(%s, %s) AS i
                ON CONFLICT DO NOTHING
                """,
                [app_pk, first, last - 1],
            )
    analyze()


# --- round trips --------------------------------------------------------------------


_REDIS_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)")


def count_round_trips(app, numbers: int = 5, first: int = 0) -> dict[str, list[str]]:
    """The database statements and Redis round trips of one requestSmsCode and
    one verifySmsCode (the last of ``numbers`` cycles), through the test client
    in this process with the server's settings."""
    import redis.connection
    from django.db import connection
    from django.test import Client
    from psycopg import pq

    trips: list[str] = []

    def on_sql(execute, sql, params, many, context):
        trips.append("sql " + " ".join(sql.split()[:3])[:60])
        return execute(sql, params, many, context)

    real_commit = connection._commit

    def commit():
        if connection.connection.info.transaction_status != pq.TransactionStatus.IDLE:
            trips.insert(next((i for i, t in enumerate(trips) if t.startswith("sql")), 0),
                         "sql BEGIN")
            trips.append("sql COMMIT")
        return real_commit()

    real_send = redis.connection.AbstractConnection.send_packed_command

    def send(self, command, *args, **kwargs):
        chunks = command if isinstance(command, list | tuple) else [command]
        names = _REDIS_COMMAND.findall(b"".join(bytes(c) for c in chunks))
        trips.append("redis " + "+".join(n.decode().upper() for n in names))
        return real_send(self, command, *args, **kwargs)

    client = Client(HTTP_X_LC_ID=app.app_id, HTTP_X_LC_KEY=app.app_key,
                    REMOTE_ADDR="127.0.0.1")
    seen: dict[str, list[str]] = {}
    connection._commit = commit
    redis.connection.AbstractConnection.send_packed_command = send
    try:
        with connection.execute_wrapper(on_sql):
            for i in range(numbers):
                phone = f"+86135{first + i:04d}{os.getpid() % 10000:04d}"
                trips.clear()
                response = client.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone},
                                       content_type="application/json")
                assert response.status_code == 200, response.content
                seen["requestSmsCode"] = list(trips)
                trips.clear()
                response = client.post(f"/1.1/verifySmsCode/{response['X-Bench-Code']}",
                                       {"mobilePhoneNumber": phone},
                                       content_type="application/json")
                assert response.status_code == 200, response.content
                seen["verifySmsCode"] = list(trips)
    finally:
        connection._commit = real_commit
        redis.connection.AbstractConnection.send_packed_command = real_send
    return seen


# --- the runs -----------------------------------------------------------------------


def spread(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def clear_queue(broker_url: str, queue: str, *, bindings: bool = False) -> None:
    """Empty the run's queue; at the end also drop Kombu's binding keys of it."""
    import redis

    keys = [queue]
    if bindings:
        keys += [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    redis.Redis.from_url(broker_url).delete(*keys)


def table_size_runs(load: Load, servers: dict[str, Server], apps, args, broker_url: str,
                    queue: str) -> dict[int, dict[str, list[float]]]:
    """For each table size: warm-up, then rounds of insert, select and the cycle
    modes, in alternating order."""
    one_app = [(apps[0].app_id, apps[0].app_key)]
    base = next(iter(servers.values())).port
    kinds = [("insert", base, "insert"), ("select", base, "select")]
    kinds += [(mode, server.port, "cycle") for mode, server in servers.items()]
    results: dict[int, dict[str, list[float]]] = {}
    filled = 0
    for size in args.sizes:
        if size > filled:
            log(f"\n-- filling the code table with {size - filled:,d} old rows")
            fill_codes(apps[0].pk, size)  # rows 0 .. size-1: idempotent
            filled = size
        log(f"-- {code_rows():,d} code rows; warm-up")
        for label, port, kind in kinds:
            load.run(port, kind, 2, args.threads, args.threads, one_app, warm_up=True)
            if label in QUEUED:
                clear_queue(broker_url, queue)
        analyze()
        rates: dict[str, list[float]] = {label: [] for label, _, _ in kinds}
        for round_no in range(args.rounds):
            order = kinds if round_no % 2 == 0 else kinds[::-1]
            for label, port, kind in order:
                rates[label].append(load.run(port, kind, args.seconds, args.threads,
                                             args.threads, one_app))
                if label in QUEUED:
                    clear_queue(broker_url, queue)
            log(f"   round {round_no + 1}: " + ", ".join(
                f"{label} {values[-1]:.0f}/s" for label, values in rates.items()))
        rates["pair"] = [1 / (1 / i + 1 / s) for i, s in
                         zip(rates["insert"], rates["select"], strict=True)]
        results[size] = rates
    return results


def hot_row(load: Load, env: dict[str, str], apps, args, broker_url: str, queue: str) -> None:
    """One app against eight apps sharing the same load (queued)."""
    log(f"\n== hot row: 1 app vs {len(apps)} apps, {args.hot_connections} connections, "
        f"{args.hot_workers} gunicorn workers, queued")
    one = [(apps[0].app_id, apps[0].app_key)]
    many = [(app.app_id, app.app_key) for app in apps]
    c = args.hot_connections
    with Server(env, args.hot_workers) as server:
        for group in (one, many):
            load.run(server.port, "cycle", 2, c, c, group, warm_up=True)
            clear_queue(broker_url, queue)
        analyze()
        rates: dict[str, list[float]] = {"one": [], "eight": []}
        for round_no in range(args.rounds):
            order = [("one", one), ("eight", many)]
            for label, group in order if round_no % 2 == 0 else order[::-1]:
                rates[label].append(load.run(server.port, "cycle", args.seconds, c, c, group))
                clear_queue(broker_url, queue)
            log(f"   round {round_no + 1}: one app {rates['one'][-1]:.0f}/s, "
                f"eight apps {rates['eight'][-1]:.0f}/s")
    ratios = [a / b for a, b in zip(rates["one"], rates["eight"], strict=True)]
    ratio = statistics.median(ratios)
    log(f"  one app {spread(rates['one'], 0)} cycles/s, eight apps {spread(rates['eight'], 0)}"
        f" cycles/s; one / eight = {spread(ratios)} "
        f"(target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'})")


def report(results: dict[int, dict[str, list[float]]], modes: list[str]) -> None:
    sizes = list(results)
    log("\n== throughput against the bare DRF pair (median of rounds, spread min–max)")
    for size in sizes:
        r = results[size]
        log(f"  {size:>9,d} old rows: INSERT {spread(r['insert'], 0)} rps, "
            f"SELECT-by-pk {spread(r['select'], 0)} rps, pair {spread(r['pair'], 0)}")
    header = " / ".join(f"{s:,d}" for s in sizes)
    pair = [statistics.median(results[s]["pair"]) for s in sizes]
    log(f"\n| | cycles/s at {header} old code rows | ratio to the pair |")
    log("| --- | --- | --- |")
    log(f"| bare DRF views: INSERT {statistics.median(results[sizes[0]]['insert']):,.0f} rps, "
        f"SELECT-by-pk {statistics.median(results[sizes[0]]['select']):,.0f} rps → pair | "
        + " / ".join(f"{p:,.0f}" for p in pair) + " | 1.00 |")
    verdict = []
    for mode in modes:
        ratios = [[c / p for c, p in zip(results[s][mode], results[s]["pair"], strict=True)]
                  for s in sizes]
        medians = [statistics.median(x) for x in ratios]
        target = 0.5 if mode in QUEUED else 0.3
        verdict.append(f"{mode} ≥ {target}: {'met' if min(medians) >= target else 'NOT met'}")
        log(f"| ours, {mode} | "
            + " / ".join(f"{statistics.median(results[s][mode]):,.0f}" for s in sizes) + " | "
            + " / ".join(f"{m:.2f} ({min(x):.2f}–{max(x):.2f})"
                         for m, x in zip(medians, ratios, strict=True)) + " |")
    log("\n  " + "; ".join(verdict))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per table size")
    parser.add_argument("--threads", type=int, default=8,
                        help="wrk threads, one connection each")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--sizes", default="0,100000,1000000",
                        help="old code rows in the table, comma-separated, ascending")
    parser.add_argument("--modes", default="queued,woken,inline")
    parser.add_argument("--no-hot-row", dest="hot_row", action="store_false")
    parser.add_argument("--hot-connections", type=int, default=32)
    parser.add_argument("--hot-workers", type=int, default=4)
    parser.add_argument("--database", default="sms_bench",
                        help="database to (re)create on the server of DATABASE_URL")
    parser.add_argument("--smoke", action="store_true",
                        help="one short round at 0 rows, queued only, no hot row: "
                             "checks the benchmark works, measures nothing")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds, args.sizes, args.modes = 1, 1, "0", "queued"
        args.hot_row, args.threads = False, 2
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]

    wrk = find_wrk()
    # A SIGTERM stops the servers too (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    cache_url = os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/1")
    broker_url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    queue = f"sms-bench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "BENCH_DATABASE_URL": recreate_database(admin_url, args.database),
        "BENCH_CACHE_URL": cache_url,
        "BENCH_CACHE_PREFIX": f"sms-bench-{uuid.uuid4().hex[:8]}",
        "BENCH_BROKER_URL": broker_url,
        "BENCH_QUEUE": queue,
        "BENCH_DELIVERY": "queued",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    os.environ.update(env)

    import django

    django.setup()
    from django.db import connection

    from benchmarks import celery_app  # noqa: F401  (tasks go to the run's own queue)

    apps = setup_apps(8 if args.hot_row else 1)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
    log(f"run        {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {socket.gethostname()}, "
        f"{os.cpu_count()} CPUs shared by the load generator, the server, PostgreSQL, "
        "Redis and anything else running on the machine")
    log(f"versions   Python {sys.version.split()[0]}, Django {django.__version__}, "
        f"PostgreSQL {pg_version}, {wrk_version.split(' [')[0]}")
    log(f"database   {args.database} (recreated); cache {cache_url}; broker {broker_url} "
        f"(queue {queue}, emptied after each run)")
    log(f"load       wrk, {args.threads} threads, one connection each, {args.seconds:g} s "
        f"per run, {args.rounds} rounds per table size; gunicorn {args.workers} sync workers")

    from django.test import override_settings

    from benchmarks.settings import sms_service_for

    for n, mode in enumerate([m for m in modes if m in QUEUED] or ["queued"]):
        log(f"\n== round trips per request ({mode}, counted in this process)")
        with override_settings(SMS_SERVICE=sms_service_for(mode)):
            counted = count_round_trips(apps[0], first=n * 100)
        for view, trips in counted.items():
            sql = [t[4:] for t in trips if t.startswith("sql ")]
            cache = [t[6:] for t in trips if t.startswith("redis ")]
            log(f"  {view}: {len(sql)} database + {len(cache)} Redis")
            log(f"    database: {'; '.join(sql) or 'none'}")
            log(f"    Redis:    {'; '.join(cache) or 'none'}")
        clear_queue(broker_url, queue)

    load = Load(wrk)
    servers: dict[str, Server] = {}
    try:
        for mode in modes:
            servers[mode] = Server({**env, "BENCH_DELIVERY": mode}, args.workers).__enter__()
        results = table_size_runs(load, servers, apps, args, broker_url, queue)
    finally:
        for server in servers.values():
            server.__exit__()
        clear_queue(broker_url, queue)
    report(results, modes)
    try:
        if args.hot_row:
            hot_row(load, env, apps, args, broker_url, queue)
    finally:
        clear_queue(broker_url, queue, bindings=True)
    log("\n  one run on one shared machine: compare the ratios of this run, not times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
