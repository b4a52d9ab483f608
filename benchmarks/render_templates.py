"""Template rendering: cached compiles against compiling per message.

Run from the repository root::

    .venv/bin/python benchmarks/render_templates.py [--messages 100000]

Prints ratios measured in this run on this machine, not absolute targets:

* cached render vs compile-per-message (the cache must win by >= 100x);
* cached render vs ``str.format`` of the same text (the floor: what any
  templating at all costs on top of string formatting).

Compile-per-message is timed on a sample and scaled, since 100,000 pybars
compiles would take many minutes; the per-message cost is what matters.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from sms_service import templating  # noqa: E402

BODY = "Your package for the order {{order_id}} will be delivered by {{date}}, {{name}}."
FORMAT = "Your package for the order {order_id} will be delivered by {date}, {name}."
SYSTEM = {"name": "BuyBuyBuy", "code": "", "ttl": 10, "sign": "BuyBuyBuy",
          "template": "Order_Notice"}


def _variables(i: int) -> dict[str, str]:
    return {"order_id": str(7623432424540 + i), "date": "2026-05-01"}


def bench_cached(n: int) -> float:
    templating.cache.clear()
    start = time.perf_counter()
    for i in range(n):
        templating.render_body(BODY, variables=_variables(i), system=SYSTEM, key=1)
        if i and i % 25_000 == 0:
            print(f"  cached: {i:,} rendered", flush=True)
    elapsed = time.perf_counter() - start
    assert templating.cache.compiles == 1
    return elapsed / n


def bench_compile_each(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        compiled = templating.compile_template(BODY)
        templating.render(compiled, templating.build_context(_variables(i), SYSTEM))
        if i and i % 100 == 0:
            print(f"  compile-each: {i:,} rendered", flush=True)
    return (time.perf_counter() - start) / n


def bench_format(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        FORMAT.format(**{**_variables(i), **SYSTEM})
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--compile-sample", type=int, default=300,
                        help="messages timed with a compile each (scaled up)")
    args = parser.parse_args()
    n = args.messages

    # Same output from both paths, so the comparison is fair.
    expected = FORMAT.format(**{**_variables(0), **SYSTEM})
    assert templating.render_body(BODY, variables=_variables(0), system=SYSTEM) == expected

    print(f"Rendering {n:,} messages from a cached template...", flush=True)
    cached = bench_cached(n)
    print(f"Compiling per message ({args.compile_sample:,}-message sample)...", flush=True)
    compile_each = bench_compile_each(args.compile_sample)
    print(f"str.format of the same text ({n:,} messages)...", flush=True)
    fmt = bench_format(n)

    print()
    print(f"{'path':<28}{'per message':>14}{'for ' + format(n, ',') + ' messages':>24}")
    for label, per in (
        ("cached pybars", cached),
        ("compile per message", compile_each),
        ("str.format", fmt),
    ):
        print(f"{label:<28}{per * 1e6:>11.2f} µs{per * n:>22.2f} s")
    print()
    ratio = compile_each / cached
    print(f"cached vs compile-per-message: {ratio:,.0f}x faster "
          f"({'OK' if ratio >= 100 else 'BELOW'} the 100x target)")
    print(f"cached render vs str.format:   {cached / fmt:,.1f}x the cost of str.format")


if __name__ == "__main__":
    main()
