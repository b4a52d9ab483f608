"""Does verifySmsCode's response time tell whether a number has a live code?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
        .venv/bin/python benchmarks/verify_timing.py [--numbers 1000] [--tries 1]

It creates (and drops) a scratch database ``test_<name>`` from DATABASE_URL.
Half the numbers get a live code, half never had one; each number then gets
``--tries`` wrong codes through the whole API (Django's test client: the
LeanCloud authentication, the view, the two verify statements and their
commit), the two groups interleaved in a random order so drift hits both alike.
Wrong codes only: a right code is no secret to measure. Prints the medians,
their ratio, the Mann-Whitney U test of "both groups come from the same
distribution" (target: p > 0.05, no significant difference) and how often an
attacker who ranks numbers by their mean time guesses right (50 % is chance).
Not a test: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.support import throwaway_database  # noqa: E402  (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1000, help="per group")
    parser.add_argument("--tries", type=int, default=1, help="wrong codes per number (< 5)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests first")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.tries < 5:
        parser.error("--tries must be 1-4 (the fifth wrong code kills a live code)")

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"warning: running on {connection.vendor}; set DATABASE_URL=postgres://…")
    with throwaway_database():
        live, none = run(args.numbers, args.tries, args.warmup, random.Random(args.seed))
    report(live, none, args.tries)


def run(numbers: int, tries: int, warmup: int, rng: random.Random):
    from django.test import Client

    from sms_service.models import App, CodePurpose
    from sms_service.services import codes

    app = App.objects.create(name="Bench", company_name="Bench Ltd")
    headers = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": app.app_key}
    client = Client()
    wrong: dict[str, str] = {}
    for n in range(numbers):
        phone = f"+86139{n:08d}"
        while True:  # codes are unique among active codes: draw again on a clash
            try:
                issued = codes.issue_code(app=app, phone=phone, purpose=CodePurpose.GENERIC,
                                          ttl_minutes=30)
                break
            except codes.CodeCollisionError:
                continue
        wrong[phone] = f"{(int(issued.code) + 1) % 10**6:06d}"
    for n in range(numbers):
        wrong[f"+86137{n:08d}"] = f"{rng.randrange(10**6):06d}"  # never had a code

    def attempt(phone: str) -> int:
        path = f"/1.1/verifySmsCode/{wrong[phone]}"
        start = time.perf_counter_ns()
        response = client.post(path, {"mobilePhoneNumber": phone},
                               content_type="application/json", **headers)
        elapsed = time.perf_counter_ns() - start
        assert response.status_code == 400 and response.json()["code"] == 603, response.content
        return elapsed

    for n in range(warmup):  # numbers outside both groups
        wrong[f"+86135{n:08d}"] = "000000"
        attempt(f"+86135{n:08d}")
    order = [phone for phone in wrong if not phone.startswith("+86135")] * tries
    rng.shuffle(order)
    times: dict[str, list[int]] = {phone: [] for phone in order}
    gc.disable()
    try:
        for i, phone in enumerate(order):
            times[phone].append(attempt(phone))
            if i % 200 == 0:
                print(f"\r{i}/{len(order)} requests", end="", flush=True)
    finally:
        gc.enable()
    print("\r" + " " * 40 + "\r", end="")
    live = {p: t for p, t in times.items() if p.startswith("+86139")}
    none = {p: t for p, t in times.items() if p.startswith("+86137")}
    return live, none


def report(live: dict[str, list[int]], none: dict[str, list[int]], tries: int) -> None:
    from scipy.stats import mannwhitneyu

    a = [t / 1e6 for ts in live.values() for t in ts]
    b = [t / 1e6 for ts in none.values() for t in ts]
    test = mannwhitneyu(a, b, alternative="two-sided")
    med_a, med_b = statistics.median(a), statistics.median(b)
    print(f"wrong code, live code:    n={len(a):5}  median {med_a:.3f} ms  "
          f"p10 {_quantile(a, 0.1):.3f}  p90 {_quantile(a, 0.9):.3f}")
    print(f"wrong code, no live code: n={len(b):5}  median {med_b:.3f} ms  "
          f"p10 {_quantile(b, 0.1):.3f}  p90 {_quantile(b, 0.9):.3f}")
    print(f"median ratio live/none: {med_a / med_b:.3f}")
    verdict = "no significant difference" if test.pvalue > 0.05 else "SIGNIFICANT difference"
    print(f"Mann-Whitney U = {test.statistic:.0f}, p = {test.pvalue:.3g} ({verdict} at 0.05)")
    # The attacker: rank every number by its mean time, call the slower half "live".
    means = sorted([(statistics.fmean(ts), True) for ts in live.values()]
                   + [(statistics.fmean(ts), False) for ts in none.values()])
    half = len(means) // 2
    right = sum(not is_live for _, is_live in means[:half]) + sum(
        is_live for _, is_live in means[half:])
    print(f"attacker ranking numbers by {tries} tries each: {right / len(means):.1%} right "
          "(50% = chance)")


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[round(q * 100) - 1]


if __name__ == "__main__":
    main()
