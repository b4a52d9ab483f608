"""A worker's deliveries per second against the same worker running a no-op task.

Run from the repository root (PostgreSQL, Redis and RabbitMQ on 127.0.0.1)::

    .venv/bin/python benchmarks/delivery_throughput.py
    .venv/bin/python benchmarks/delivery_throughput.py --messages 5000 --rounds 3 \\
        --redis redis://127.0.0.1:6379/15 --amqp amqp://guest:guest@127.0.0.1:5672//
    .venv/bin/python benchmarks/delivery_throughput.py --brokers redis --rounds 0 \\
        --drain 100000          # memory over a drain of 10^5 queued messages

What it does:

1. (Re)creates the database ``sms_delivery_bench`` (``--database``) on the server
   of DATABASE_URL and migrates it; one app with a price, a signature and a
   balance (billing on: every delivery settles its hold).
2. For each broker (Redis, then RabbitMQ) starts one ``celery worker -c 2``
   (prefork, as ``make worker`` and the example project's settings deploy it:
   acks late, prefetch 1, database connections kept across tasks) on
   benchmarks.delivery_settings, the no-network dummy backend.
3. Each round, in alternating order, fills a fresh queue the worker does not
   consume yet and then adds it to the worker, timing until it is done:

   * no-op: N tasks of ``benchmarks.noop`` (same task options as the delivery
     task, an empty body): done when the queue is empty;
   * delivery: N messages queued as the API queues them (one through
     ``request_sms``: code, price, hold, encrypted payload; the others copies
     of it made in a few statements, each with its billing hold, so filling a
     round takes less time than draining it), and the wake-up their commits
     publish (one ``deliver_queued`` task, as for a burst of sends: the
     cache is Redis, shared with the worker). Each run claims a batch of 100
     and wakes the next at once, so both pool processes share the backlog:
     done when every message is ``delivered`` and the queue is empty. Each
     delivery is the whole send path: claim, provider call, events, status,
     charge.

   Prints both rates, the ratio of every round and the median with the spread
   (target >= 0.8).
4. ``--drain N`` (optional: 10^5 takes minutes) queues N messages the same
   way (without holds: the copies cost nothing), wakes the runs and drains
   them on the first broker with a progress line, sampling the
   worker's memory (resident set of the main process and its children).

Numbers are ratios from one run on one (possibly shared) machine, not targets
for absolute time. Nothing here asserts; it prints.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FINAL = ("delivered", "undelivered", "failed", "unknown")


def log(msg: str = "", end: str = "\n") -> None:
    print(msg, end=end, flush=True)


def database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit((parts.scheme.replace("postgres", "postgresql", 1)
                        if parts.scheme == "postgres" else parts.scheme,
                        parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- the worker ---------------------------------------------------------------------


class Worker:
    def __init__(self, broker: str, concurrency: int, log_path: Path, prefetch: int = 1):
        self.name = f"delivery-bench-{uuid.uuid4().hex[:8]}@localhost"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.delivery_settings",
               "BENCH_BROKER_URL": broker, "BENCH_PREFETCH": str(prefetch),
               "PYTHONPATH": str(ROOT)}
        self.log_path = log_path
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "benchmarks.delivery_celery", "worker",
                 "--pool=prefork", f"--concurrency={concurrency}", "-l", "warning",
                 # Consumes only the queues added per round.
                 "-Q", f"idle-{self.name.split('@')[0]}",
                 "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-n", self.name],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, app, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.log_path.read_text()[-3000:]}")
            if app.control.ping(destination=[self.name], timeout=1.0):
                return
        raise RuntimeError(f"the worker did not answer:\n{self.log_path.read_text()[-3000:]}")

    def rss_mb(self) -> float:
        """Resident memory of the main process and its pool children, MB."""
        total = 0
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        except OSError:
            pass
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


# --- queues -------------------------------------------------------------------------


def queue_length(app, queue: str) -> int:
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        if conn.transport_cls in ("redis", "rediss") or "redis" in conn.transport.driver_type:
            return int(channel.client.llen(queue))
        return int(channel.queue_declare(queue=queue, passive=True).message_count)


def delete_queue(app, queue: str) -> None:
    with app.connection_for_write() as conn:
        try:
            conn.default_channel.queue_delete(queue)
        except Exception:  # already gone
            pass


def publish(app, task, ids, queue: str) -> None:
    from kombu import Queue

    with app.producer_or_acquire() as producer:
        for message_id in ids:
            task.apply_async((message_id,), queue=Queue(queue, routing_key=queue),
                             producer=producer)


def consume(app, worker: Worker, queue: str, done, total: int, progress=None,
            timeout: float = 900, keep: bool = False) -> tuple[float, list[float]]:
    """Add ``queue`` to the worker and wait until ``done()`` says it is drained.
    Returns the seconds it took and the worker's memory samples (MB)."""
    memory = [worker.rss_mb()]
    replies = app.control.add_consumer(queue, destination=[worker.name], reply=True,
                                       timeout=10)
    start = time.perf_counter()
    if not replies:
        raise RuntimeError("the worker did not take the queue")
    last_sample = start
    try:
        while True:
            left = done()
            now = time.perf_counter()
            if now - last_sample >= 1.0:
                memory.append(worker.rss_mb())
                last_sample = now
                if progress:
                    finished = progress()
                    log(f"\r  {finished:>7}/{total} delivered, {finished / (now - start):7.0f}/s, "
                        f"{left:>7} messages and tasks left, worker memory "
                        f"{memory[-1]:6.1f} MB", end="")
            if left == 0:
                break
            if now - start > timeout:
                raise RuntimeError(f"not drained after {timeout:.0f} s ({left} left)")
            if worker.proc.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{worker.log_path.read_text()[-3000:]}")
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
    finally:
        app.control.cancel_consumer(queue, destination=[worker.name], reply=True, timeout=10)
        if not keep:
            delete_queue(app, queue)
    memory.append(worker.rss_mb())
    if progress:
        log("")
    return elapsed, memory


# --- the two kinds of round ------------------------------------------------------------


def noop_round(app, worker: Worker, n: int) -> float:
    from benchmarks.delivery_celery import noop

    queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
    publish(app, noop, range(n), queue)
    elapsed, _ = consume(app, worker, queue, lambda: queue_length(app, queue), n)
    return n / elapsed


class Sender:
    """Queues messages: one through ``request_sms`` as the API does (code,
    price, hold, encrypted payload), then copies of it in one INSERT with a
    billing hold each (the ledger rows in one INSERT, the balance in one
    UPDATE), so filling a round does not take longer than draining it. Nothing
    is published: the round wakes the delivery runs once all are queued."""

    def __init__(self) -> None:
        from sms_service.models import App

        self.app = App.objects.get(name="Bench")
        self.counter = 0

    def queue(self, n: int, *, billed: bool = True) -> list[int]:
        from decimal import Decimal

        from django.db import connection, transaction
        from django.db.models import F

        from sms_service.models import App, LedgerEntry, LedgerKind
        from sms_service.services import outbox
        from sms_service.services.sending import SmsRequest, request_sms

        real = outbox._send_task
        outbox._send_task = lambda task, argument, *rest: None
        try:
            self.counter += 1
            template = request_sms(app=self.app,
                                   request=SmsRequest(phone=f"+86139{self.counter:08d}"))
        finally:
            outbox._send_task = real
        if n == 1:
            return [template.pk]
        first = self.counter + 1
        self.counter += n - 1
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO sms_service_message (app_id, phone, region, channel, kind,
                    template_version_id, signature_id, body, payload, length, segments, cost,
                    is_test, status, backend, provider, provider_message_id, error_code,
                    error_message, attempts, call_started_at, next_attempt_at, client_ip,
                    created_at, updated_at, sent_at, finished_at)
                SELECT app_id, '+86139' || lpad(g::text, 8, '0'), region, channel, kind,
                    template_version_id, signature_id, body, payload, length, segments,
                    CASE WHEN %s THEN cost ELSE 0 END,
                    is_test, status, backend, provider, provider_message_id, error_code,
                    error_message, attempts, call_started_at, next_attempt_at, client_ip,
                    now(), now(), sent_at, finished_at
                FROM sms_service_message, generate_series(%s, %s) AS g WHERE id = %s
                ORDER BY g
                RETURNING id
                """, [billed, first, self.counter, template.pk])
            ids = [row[0] for row in cursor.fetchall()]
            cost = template.cost if billed else Decimal(0)
            if cost > 0:
                LedgerEntry.objects.bulk_create(
                    [LedgerEntry(app_id=self.app.pk, kind=LedgerKind.HOLD, amount=-cost,
                                 held_change=cost, message_id=pk) for pk in ids],
                    batch_size=5000)
                App.objects.filter(pk=self.app.pk).update(balance=F("balance") - cost * len(ids))
        return [template.pk, *ids]


def left_to_deliver(first: int, last: int):
    from django.db import connection

    def left() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM sms_service_message WHERE id BETWEEN %s AND %s "
                "AND status <> ALL(%s)", [first, last, list(FINAL)])
            return cursor.fetchone()[0]
    return left


def wake_runs(app) -> str:
    """Publish the wake-up the queued messages' commits would have (the
    delivery runs' queue, which the worker consumes only when a round adds
    it); returns that queue."""
    from django.core.cache import cache

    from sms_service.services import outbox

    if not outbox.coalesces("default"):
        raise RuntimeError("messages would not share delivery runs: is the cache Redis?")
    cache.delete("sms-service:outbox-wake:default")
    outbox.wake("default")
    return app.conf.task_default_queue


def delivery_round(app, worker: Worker, sender: Sender, n: int) -> float:
    ids = sender.queue(n)
    queue = wake_runs(app)
    left = left_to_deliver(min(ids), max(ids))
    # Done when every message is delivered and every run has been taken.
    elapsed, _ = consume(app, worker, queue, lambda: left() + queue_length(app, queue), n,
                         keep=True)
    from sms_service.models import Message

    delivered = Message.objects.filter(pk__in=ids, status="delivered").count()
    if delivered != n:
        log(f"  warning: {n - delivered} of {n} not delivered")
    return n / elapsed


def drain(app, worker: Worker, sender: Sender, n: int) -> None:
    from django.db import connection

    log(f"queueing {n} messages ...")
    ids = sender.queue(n, billed=False)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sms_service_message")
    queue = wake_runs(app)
    log(f"draining {n} queued messages:")
    left = left_to_deliver(min(ids), max(ids))
    elapsed, memory = consume(app, worker, queue, lambda: left() + queue_length(app, queue), n,
                              progress=lambda: n - left(), timeout=3600, keep=True)
    tenth = max(len(memory) // 10, 1)
    log(f"drain of {n}: {n / elapsed:.0f} deliveries/s over {elapsed:.0f} s; worker memory "
        f"(main process + pool) at the start {memory[0]:.1f} MB, after the first tenth "
        f"{statistics.median(memory[1:tenth + 1] or memory[:1]):.1f} MB, peak "
        f"{max(memory):.1f} MB, at the end {memory[-1]:.1f} MB")


# --- main -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="per round and kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--brokers", default="redis,amqp")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL",
                                                          "redis://127.0.0.1:6379/15"))
    parser.add_argument("--amqp", default=os.environ.get("BENCH_AMQP_URL",
                                                         "amqp://guest:guest@127.0.0.1:5672//"))
    parser.add_argument("--cache", default=os.environ.get("BENCH_CACHE_URL",
                                                          "redis://127.0.0.1:6379/14"),
                        help="the shared cache (Redis) of this process and the worker")
    parser.add_argument("--prefetch", type=int, default=1,
                        help="the worker's prefetch multiplier (the example project: 1)")
    parser.add_argument("--database", default="sms_delivery_bench")
    parser.add_argument("--drain", type=int, default=0,
                        help="also drain this many queued messages (e.g. 100000)")
    args = parser.parse_args()
    # Stopped with SIGTERM too, the workers it started are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))

    db_url = database_url(args.database)
    os.environ["BENCH_DATABASE_URL"] = db_url
    # Shared with the worker: wake-ups are seen and cleared across processes.
    os.environ["BENCH_CACHE_URL"] = args.cache
    os.environ["BENCH_CACHE_PREFIX"] = f"delivery-bench-{uuid.uuid4().hex[:8]}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.delivery_settings"
    recreate_database(db_url)

    import django

    django.setup()
    from decimal import Decimal

    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from sms_service.models import App, Price, Signature
    from sms_service.services import billing

    bench = App.objects.create(name="Bench", company_name="Bench Ltd")
    Signature.objects.create(app=bench, name="Bench", text="Bench", status="approved",
                             is_default=True)
    Price.objects.create(region="CN", channel="sms", unit_price=Decimal("0.0500"))
    billing.top_up(app=bench, amount="100000000", reason="benchmark")
    sender = Sender()

    from benchmarks.delivery_celery import app

    log(f"{os.cpu_count()} CPUs (shared with whatever else runs here); "
        f"{args.messages} messages per round; celery worker -c {args.concurrency}, "
        f"prefetch multiplier {args.prefetch}")
    urls = {"redis": args.redis, "amqp": args.amqp}
    summary = []
    for broker in args.brokers.split(","):
        url = urls[broker]
        app.conf.broker_url = url
        app.conf.broker_write_url = None
        app.conf.broker_read_url = None
        app._pool = None
        app.amqp._producer_pool = None
        log(f"\n== {broker} broker ({url}) ==")
        worker = Worker(url, args.concurrency, Path(f"/tmp/delivery-bench-{broker}.log"),
                        prefetch=args.prefetch)
        try:
            worker.wait_ready(app)
            # Warm-up: both kinds once, not counted.
            noop_round(app, worker, min(500, args.messages))
            delivery_round(app, worker, sender, min(500, args.messages))
            ratios = []
            for round_no in range(args.rounds):
                order = ("noop", "deliver") if round_no % 2 == 0 else ("deliver", "noop")
                rates = {}
                for kind in order:
                    if kind == "noop":
                        rates[kind] = noop_round(app, worker, args.messages)
                    else:
                        rates[kind] = delivery_round(app, worker, sender, args.messages)
                ratio = rates["deliver"] / rates["noop"]
                ratios.append(ratio)
                log(f"round {round_no + 1}/{args.rounds}: no-op {rates['noop']:7.0f} tasks/s, "
                    f"delivery {rates['deliver']:7.0f} deliveries/s, ratio {ratio:.2f}")
            if ratios:
                line = (f"{broker}: delivery/no-op median {statistics.median(ratios):.2f} "
                        f"(min {min(ratios):.2f}, max {max(ratios):.2f}, "
                        f"{len(ratios)} rounds; target >= 0.8)")
                summary.append(line)
                log(line)
            if args.drain and broker == args.brokers.split(",")[0]:
                drain(app, worker, sender, args.drain)
        finally:
            worker.stop()
    log("\n" + "\n".join(summary))
    from sms_service.services import billing as books

    log(f"books consistent: {books.books(app=bench).consistent}")


if __name__ == "__main__":
    main()
