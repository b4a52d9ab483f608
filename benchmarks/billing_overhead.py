"""How much billing slows down sending: request_sms throughput with billing on
(price lookup, conditional hold UPDATE, ledger rows, settlement on delivery) vs
off (``BILLING_ENABLED = False``). Services level, same process, same database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
        .venv/bin/python benchmarks/billing_overhead.py [--messages 2000] [--rounds 4]

It creates (and drops) a scratch database ``test_<name>`` from DATABASE_URL.
Each message is delivered at once (ASYNC off, dummy backend), so "on" pays
for the hold and the charge. Rate limits are switched off in both modes: they
are not what is measured. Prints messages/s per mode and the on/off ratio
(target ≥ 0.8). Not a test: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.support import NO_SENDING_LIMITS, throwaway_database  # noqa: E402  (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="per mode")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="alternate off/on this many times to even out drift",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"warning: running on {connection.vendor}; set DATABASE_URL=postgres://…")
    with throwaway_database():
        results = run(args.messages, args.rounds)
    off, on = results["off"], results["on"]
    print(f"\nbilling off: {off:8.1f} messages/s")
    print(f"billing on:  {on:8.1f} messages/s")
    print(f"ratio on/off: {on / off:.3f} (target >= 0.8)")


def run(messages: int, rounds: int) -> dict[str, float]:
    from django.test.utils import override_settings

    from sms_service.models import App, Price, Signature
    from sms_service.services import billing
    from sms_service.services.sending import SmsRequest, request_sms

    app = App.objects.create(name="Bench", company_name="Bench Ltd")
    Signature.objects.create(
        app=app, name="Bench", text="Bench", status="approved", is_default=True
    )
    Price.objects.create(region="CN", channel="sms", unit_price=Decimal("0.0500"))
    billing.top_up(app=app, amount="100000000", reason="benchmark")
    base = {
        # Deliver inline (no broker): each message is sent and settled at once.
        "ASYNC": False,
        "BACKENDS": {"default": {"BACKEND": "sms_service.backends.dummy.DummyBackend"}},
        # Its codes are never verified: the pumping defence would hold the range back.
        "PUMPING_DEFENCE": {"ENABLED": False},
        "RATE_LIMITS": NO_SENDING_LIMITS,
    }
    per_round = max(messages // rounds, 1)
    elapsed = {"off": 0.0, "on": 0.0}
    sent = {"off": 0, "on": 0}
    counter = 0
    for round_no in range(rounds):
        for mode in ("off", "on"):
            config = {**base, "BILLING_ENABLED": mode == "on"}
            with override_settings(SMS_SERVICE=config):
                start = time.perf_counter()
                for i in range(per_round):
                    counter += 1
                    number = f"+86139{counter:08d}"
                    request_sms(app=app, request=SmsRequest(phone=number))
                    if i % 50 == 0:
                        print(
                            f"\rround {round_no + 1}/{rounds} billing {mode:3} "
                            f"{i:5}/{per_round}",
                            end="",
                            flush=True,
                        )
                elapsed[mode] += time.perf_counter() - start
                sent[mode] += per_round
    books = billing.books(app=app)
    print(f"\rdone; books consistent: {books.consistent}, held {books.held}" + " " * 20)
    return {mode: sent[mode] / elapsed[mode] for mode in elapsed}


if __name__ == "__main__":
    main()
