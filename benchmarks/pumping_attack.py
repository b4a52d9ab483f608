"""An SMS pumping attack against the defence, beside normal traffic.

    .venv/bin/python benchmarks/pumping_attack.py [--attack 3000] [--good 1000]
        [--ranges 1] [--seed 7]

Bots request verification codes to numbers of one range (``--ranges`` spreads
them over several ranges of the same country) from a new IP address each time
and never type a code in. Real users, mostly in mainland China and some in the
attacked country but other ranges, request codes from their own addresses and
type 90 % of them in (the rest give up). The two streams are interleaved at
random and go through ``request_sms`` and ``verify_code`` with the default
settings: the rate limits (per IP, per number range, per number) and the
pumping defence as shipped.

Reports how many attack messages went out before the defence held the range
back, how many it refused, how many the rate limits refused, and how many real
users were refused (target: attack stopped within a few hundred, no real user
refused). Runs on DATABASE_URL (a scratch ``test_<name>`` database) or SQLite.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

ATTACK_RANGES = ["+447400", "+447401", "+447402", "+447403", "+447404", "+447405",
                 "+447406", "+447407", "+447408", "+447409"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", type=int, default=3000, help="attack requests")
    parser.add_argument("--good", type=int, default=1000, help="real users")
    parser.add_argument("--ranges", type=int, default=1, choices=range(1, 11),
                        help="number ranges the attack spreads over")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        report = run(args)
    finally:
        teardown_databases(old, verbosity=0)
    print()
    for name, value in report.items():
        print(f"{name:48} {value}")


def run(args: argparse.Namespace) -> dict[str, object]:
    from django.core.cache import caches
    from django.test.utils import override_settings

    from sms_service.backends import locmem
    from sms_service.exceptions import SendingHeldBackError, SmsServiceError
    from sms_service.models import App, PumpingBlock, Signature
    from sms_service.services import codes
    from sms_service.services.sending import SmsRequest, request_sms

    for cache in caches.all():
        cache.clear()
    rng = random.Random(args.seed)
    app = App.objects.create(name="Bench", company_name="Bench Ltd", allow_international=True)
    Signature.objects.create(app=app, name="Bench", text="Bench", status="approved",
                             is_default=True)
    config = {
        "ASYNC": False,
        "BACKENDS": {"default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"}},
        "BILLING_ENABLED": False,
    }
    stream = ["attack"] * args.attack + ["good"] * args.good
    rng.shuffle(stream)
    tally: Counter[str] = Counter()
    attack_sent_before_block = None
    with override_settings(SMS_SERVICE=config):
        for step, who in enumerate(stream):
            if who == "attack":
                prefix = ATTACK_RANGES[rng.randrange(args.ranges)]
                phone = f"{prefix}{rng.randrange(1_000_000):06d}"
                ip = f"198.51.{rng.randrange(256)}.{rng.randrange(256)}"
            else:
                phone = real_number(rng)
                ip = f"203.0.{step // 256 % 256}.{step % 256}"
            try:
                request_sms(app=app, request=SmsRequest(phone=phone, client_ip=ip))
            except SendingHeldBackError:
                tally[f"{who}: refused by the pumping defence"] += 1
                continue
            except SmsServiceError as exc:
                tally[f"{who}: refused by rate limits / other ({exc.code})"] += 1
                continue
            tally[f"{who}: codes sent"] += 1
            if who == "attack" and attack_sent_before_block is None:
                if PumpingBlock.objects.filter(app=app).exists():
                    attack_sent_before_block = tally["attack: codes sent"]
            if who == "good" and rng.random() < 0.9:
                body = locmem.outbox[-1].body
                code = re.search(r"\d{6}", body).group(0)
                codes.verify_code(app=app, phone=phone, purpose="generic", code=code)
                tally["good: codes verified"] += 1
            locmem.outbox.clear()
            if step % 100 == 0:
                print(f"\r{step}/{len(stream)}", end="", flush=True)
    blocks = list(PumpingBlock.objects.filter(app=app).order_by("created_at"))
    if attack_sent_before_block is None:
        attack_sent_before_block = tally["attack: codes sent"]
    good_refused = sum(v for k, v in tally.items() if k.startswith("good: refused"))
    return {
        "attack requests": args.attack,
        "attack ranges": args.ranges,
        "real users": args.good,
        **dict(sorted(tally.items())),
        "attack messages sent before the (first) block": attack_sent_before_block,
        "attack messages sent in total": tally["attack: codes sent"],
        "real users refused": good_refused,
        "blocks": "; ".join(f"{b.scope} {b.value}: {b.reason}" for b in blocks) or "none",
    }


def real_number(rng: random.Random) -> str:
    """A valid number of a real user: 80 % mainland China, 20 % the attacked
    country (other ranges). Numbers phonenumbers does not know, or places in a
    territory sharing +44 (Jersey, Guernsey, Isle of Man), are drawn again."""
    from sms_service.exceptions import InvalidPhoneNumberError
    from sms_service.phone import parse_phone

    while True:
        if rng.random() < 0.8:
            phone = f"+86{rng.choice(['139', '186', '158'])}{rng.randrange(10**8):08d}"
        else:
            phone = f"+447{rng.choice(['911', '700', '552'])}{rng.randrange(10**6):06d}"
        try:
            parsed = parse_phone(phone)
        except InvalidPhoneNumberError:
            continue
        if parsed.region in ("CN", "GB"):
            return parsed.e164


if __name__ == "__main__":
    main()
