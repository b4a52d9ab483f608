"""The circuit breaker's state is shared by processes through Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from sms_service.services import circuit

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.services

_FAIL = (
    "import django; django.setup()\n"
    "from sms_service.services import circuit\n"
    "for _ in range({n}): print(circuit.record_failure('aliyun'))\n"
)


def _in_another_process(failures: int) -> list[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT),
           "SMS_TEST_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"]}
    done = subprocess.run([sys.executable, "-c", _FAIL.format(n=failures)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split()


def test_failures_in_two_processes_open_the_circuit_for_all() -> None:
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the multi-process tests: needs Redis (CACHE_URL)")
        pytest.skip("needs Redis as the cache (set CACHE_URL)")
    # Five temporary failures within the window open it (the default), counted
    # across processes: three in one worker, two in another.
    assert _in_another_process(3) == ["closed"] * 3
    assert _in_another_process(2) == ["closed", "open"]
    assert circuit.state("aliyun") == circuit.OPEN
    assert circuit.allow("aliyun") is False
    circuit.reset("aliyun")
    assert circuit.state("aliyun") == circuit.CLOSED


def test_a_success_closes_the_circuit_for_all_and_says_so_once() -> None:
    from sms_service import signals

    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the multi-process tests: needs Redis (CACHE_URL)")
        pytest.skip("needs Redis as the cache (set CACHE_URL)")
    changes: list[str] = []

    def on_change(sender, alias, state, **kwargs):
        changes.append(state)

    signals.circuit_changed.connect(on_change)
    try:
        assert _in_another_process(5)[-1] == "open"
        circuit.record_success("aliyun")  # the half-open probe went through
        circuit.record_success("aliyun")  # already closed: nothing to say
        assert changes == [circuit.CLOSED]
        # Closed for every process, its failure count started afresh.
        assert _in_another_process(4) == ["closed"] * 4
        circuit.record_success("aliyun")
        assert _in_another_process(4) == ["closed"] * 4
    finally:
        signals.circuit_changed.disconnect(on_change)
        circuit.reset("aliyun")


def test_a_circuit_another_process_opened_is_seen_within_the_process_cache_seconds(
        settings) -> None:
    from sms_service import caching

    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the multi-process tests: needs Redis (CACHE_URL)")
        pytest.skip("needs Redis as the cache (set CACHE_URL)")
    try:
        # Each delivery asks for the state: this process remembers it for
        # PROCESS_CACHE_SECONDS (2 s by default), as it does apps and prices.
        assert circuit.state("aliyun") == circuit.CLOSED
        assert _in_another_process(5)[-1] == "open"
        assert circuit.state("aliyun") == circuit.CLOSED
        caching.clear_process()  # what those seconds passing does
        assert circuit.state("aliyun") == circuit.OPEN
        # Set to 0, every state is read from the shared cache.
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "PROCESS_CACHE_SECONDS": 0}
        circuit.reset("aliyun")
        assert circuit.state("aliyun") == circuit.CLOSED
        assert _in_another_process(5)[-1] == "open"
        assert circuit.state("aliyun") == circuit.OPEN
    finally:
        circuit.reset("aliyun")
