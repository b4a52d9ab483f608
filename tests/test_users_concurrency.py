"""Phone users under real concurrency, on PostgreSQL (SQLite serialises writers).

Twenty requests race to spend one sign-up code: exactly one signs the number up;
the others get 603 (the code is spent) or, when they looked before the winner's
commit and checked after it, 214 (the number is taken); one member (one host
user, one session) exists afterwards.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from sms_service.models import AppUser, CodePurpose, UserSession
from sms_service.services import codes
from tests.billing_support import is_postgresql, requires_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+8618612345678"
RACERS = 20


@pytest.fixture(autouse=True)
def _postgresql_only():
    if not is_postgresql():
        pytest.skip(requires_postgresql)


def _headers(app) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    sign = hashlib.md5((ts + app.app_key).encode()).hexdigest()
    return {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_SIGN": f"{sign},{ts}"}


def test_twenty_parallel_sign_ups_with_one_code_make_one_user(app):
    from django.db import transaction

    app.allow_sms_login = True  # a late racer meets the member, then the spent code
    app.save()
    with transaction.atomic():
        code = codes.issue_code(app=app, phone=PHONE, purpose=CodePurpose.SIGNUP,
                                ttl_minutes=10).code
    barrier = threading.Barrier(RACERS)
    results: list = [None] * RACERS

    def race(index: int) -> None:
        try:
            client = Client(REMOTE_ADDR=f"10.0.0.{index + 1}")  # one IP each: no IP limit
            body = json.dumps({"mobilePhoneNumber": PHONE, "smsCode": code,
                               "username": f"racer{index}"})
            barrier.wait()
            response = client.post("/1.1/usersByMobilePhone", data=body,
                                   content_type="application/json", **_headers(app))
            results[index] = (response.status_code, response.json())
        except BaseException as exc:  # reported to the test, never swallowed
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outcomes = Counter(
        r[0] if r[0] != 400 else r[1]["code"] for r in results if isinstance(r, tuple)
    )
    assert sum(outcomes.values()) == RACERS, results  # no exception, no 5xx
    assert outcomes[201] == 1, results
    assert set(outcomes) <= {201, 603, 214}, results
    assert outcomes[603] >= 1, results
    [member] = AppUser.objects.filter(app=app)
    [winner] = [r[1] for r in results if r[0] == 201]
    assert member.object_id == winner["objectId"]
    assert member.username == winner["username"]
    assert get_user_model().objects.count() == 1
    assert UserSession.objects.count() == 1
