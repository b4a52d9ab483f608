"""What one send costs each shared part: SQL statements (and how many write),
Redis round trips, broker messages. Counts, not times: docs/capacity.md turns
them into where each part saturates.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench CACHE_URL=redis://127.0.0.1:6379/1 \\
        .venv/bin/python benchmarks/send_costs.py [--messages 200]

It creates (and drops) a scratch database ``test_<name>`` from DATABASE_URL and
uses the suite's settings (tests.settings) with the Redis cache of CACHE_URL,
billing on. Measured after a warm-up, averaged over ``--messages`` sends:

* the request: ``request_sms`` for a fresh number (code, price, hold, message,
  the pumping defence's count), tasks going through a broker;
* the delivery one by one (a backend with batch size 1, as the network
  providers have): runs of one message, each waking the next, final at once,
  charged;
* the request and the delivery with a backend sending in batches of 100 (the
  dummy backend's batch size).

Commits wake delivery runs (a task only when none is pending), and each run
claims its batch and wakes the next when its batch was full; the runs are
counted as the broker messages they are.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.support import throwaway_database  # noqa: E402  (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
# Fresh rate-limit counters every run (the numbers repeat from run to run).
os.environ["SMS_TEST_CACHE_PREFIX"] = f"send-costs-{os.getpid()}"

WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")



class Redis:
    """Counts round trips to Redis (a pipeline is one)."""

    def __init__(self) -> None:
        import redis.client

        self.count = 0
        counter = self
        real_command = redis.client.Redis.execute_command
        real_pipeline = redis.client.Pipeline.execute

        def execute_command(self, *args, **kwargs):
            counter.count += 1
            return real_command(self, *args, **kwargs)

        def execute(self, *args, **kwargs):
            counter.count += 1
            return real_pipeline(self, *args, **kwargs)

        # Pipeline overrides execute_command (queueing): its commands are not counted.
        redis.client.Redis.execute_command = execute_command
        redis.client.Pipeline.execute = execute


def measure(label: str, n: int, run, redis: Redis, published: list) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    redis.count = 0
    published.clear()
    with CaptureQueriesContext(connection) as queries:
        run()
    kinds = Counter(q["sql"].lstrip().split(" ", 1)[0].upper() for q in queries.captured_queries)
    writes = sum(kinds[k] for k in WRITES)
    row = {"statements": len(queries.captured_queries) / n, "writes": writes / n,
           "savepoints": (kinds["SAVEPOINT"] + kinds["RELEASE"]) / n,
           "redis": redis.count / n, "broker": len(published) / n}
    print(f"{label:<34} {row['statements']:6.2f} SQL ({row['writes']:5.2f} writing, "
          f"{row['savepoints']:4.2f} savepoint) {row['redis']:5.2f} Redis "
          f"{row['broker']:5.2f} broker", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    n = args.messages

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        sys.exit("needs DATABASE_URL=postgres://... and CACHE_URL=redis://...")
    with throwaway_database():
        run(n)


def run(n: int) -> None:
    from decimal import Decimal

    from django.test.utils import override_settings

    from sms_service.conf import DEFAULTS
    from sms_service.models import App, Price, Signature
    from sms_service.services import billing, outbox
    from sms_service.services.sending import SmsRequest, request_sms
    from tests.celery_app import app as celery_app

    # As deployed: tasks go through a broker (the suite's settings run them eagerly).
    celery_app.conf.task_always_eager = False
    app = App.objects.create(name="Bench", company_name="Bench Ltd")
    Signature.objects.create(app=app, name="Bench", text="Bench", status="approved",
                             is_default=True)
    Price.objects.create(region="CN", channel="sms", unit_price=Decimal("0.0500"))
    billing.top_up(app=app, amount="1000000", reason="benchmark")
    from django.core.cache import cache

    published: list[int | str] = []
    outbox._send_task = lambda task, argument, *rest: published.append(argument) or True
    redis = Redis()
    counter = iter(range(10**6))

    def send(count: int) -> list[int]:
        return [request_sms(app=app, request=SmsRequest(
            phone=f"+86139{next(counter):08d}")).pk for _ in range(count)]

    def run_woken(size: int) -> None:
        # The run the sends woke, then each run a full batch woke, until one
        # finds less than a batch.
        while outbox.deliver_queued(alias="default") == size:
            pass

    base = {
        "ASYNC": True,
        # Counted and judged on every send; one number range gets everything,
        # never verified, so no volume is enough to block it.
        "PUMPING_DEFENCE": {"RANGE_MIN_VOLUME": 10**9, "COUNTRY_MIN_VOLUME": 10**9},
        # Every limit runs; one address and one number range send everything.
        "RATE_LIMITS": {**DEFAULTS["RATE_LIMITS"], "ip": [(60, 10**9)],
                        "prefix": [(3600, 10**9)]},
    }
    one = {**base, "BACKENDS": {"default": {"BACKEND": "sms_service.backends.dummy.DummyBackend",
                                            "OPTIONS": {"BATCH_SIZE": 1}}}}
    batch = {**base, "BACKENDS": {"default": {"BACKEND": "sms_service.backends.dummy.DummyBackend"}}}
    print(f"per send, averaged over {n} after a warm-up (PostgreSQL, Redis cache, billing on)")
    with override_settings(SMS_SERVICE=one):
        cache.delete("sms-service:outbox-wake:default")
        send(20)  # warm-up: caches, prepared statements
        run_woken(1)
        cache.delete("sms-service:outbox-wake:default")
        measure("request (request_sms)", n, lambda: send(n), redis, published)
        measure("delivery one by one", n, lambda: run_woken(1), redis, published)
    with override_settings(SMS_SERVICE=batch):
        cache.delete("sms-service:outbox-wake:default")
        measure("request, batching backend", n, lambda: send(n), redis, published)
        measure("delivery in batches of 100", n, lambda: run_woken(100), redis, published)


if __name__ == "__main__":
    main()
