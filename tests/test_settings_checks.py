"""Every setting that can be wrong is refused at start-up by a system check."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from sms_service import checks


def ids(settings, **sms_service: Any) -> list[str]:
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, **sms_service}
    found = checks.check_settings() + checks.check_setting_values()
    return sorted(error.id for error in found if error.is_serious())  # warnings aside


def test_the_test_settings_pass(settings):
    assert ids(settings) == []
    assert checks.check_database() == []


@pytest.mark.parametrize("name, value, error", [
    ("OVERDUE_POLICY", "forgive", "sms_service.E013"),
    ("SEGMENT_MODE_DOMESTIC", "gsm", "sms_service.E013"),
    ("SEGMENT_MODE_INTERNATIONAL", "LeanCloud", "sms_service.E013"),
    ("DEFAULT_UNIT_PRICES", {"sms": "-0.05"}, "sms_service.E014"),
    ("DEFAULT_UNIT_PRICES", {"sms": "five cents"}, "sms_service.E014"),
    ("DEFAULT_UNIT_PRICES", {"sms": 0.05}, "sms_service.E014"),  # floats lose cents
    ("DEFAULT_UNIT_PRICES", {"mms": "0.05"}, "sms_service.E014"),
    ("RATE_LIMITS", {"app_number_interval": "10"}, "sms_service.E015"),
    ("USER_IP_LIMITS", [(60,)], "sms_service.E015"),
    ("SECRET_KEYS", ["short"], "sms_service.E016"),
    ("SECRET", "the old name", "sms_service.E011"),
    ("MAX_RETRIES", "5", "sms_service.E012"),
    ("ASYNC", 1, "sms_service.E012"),
    ("MAX_RETRIES", -1, "sms_service.E012"),
    ("CODE_LENGTH", 13, "sms_service.E006"),
    ("CODE_TTL_MINUTES", 40, "sms_service.E005"),
])
def test_a_wrong_setting_is_refused(settings, name, value, error):
    assert error in ids(settings, **{name: value})


def test_a_complete_rate_limits_setting_of_the_wrong_shape(settings):
    limits = {
        "app_number_interval": 10,
        "signature_number_interval": 60,
        "signature_number_daily": {"verification": 0},
        "voice": [(30, 1), (3600,)],
        "ip": "50 per minute",
        "prefix": [(3600, 20)],
        "typo": 1,
    }
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RATE_LIMITS": limits}
    messages = [e.msg for e in checks.check_setting_values()]
    assert any('["signature_number_daily"]' in m for m in messages)
    assert any('["voice"]' in m for m in messages)
    assert any('["ip"]' in m for m in messages)
    assert any("typo" in m for m in messages)
    assert not any('["prefix"]' in m for m in messages)


def test_a_longer_ttl_is_fine_when_the_maximum_allows_it(settings):
    assert ids(settings, CODE_TTL_MINUTES=40, CODE_MAX_TTL_MINUTES=60) == []


def test_good_values_pass(settings):
    assert ids(settings, OVERDUE_POLICY="release", SEGMENT_MODE_DOMESTIC="carrier",
               DEFAULT_UNIT_PRICES={"sms": "0.05", "voice": "0.1"}, CODE_LENGTH=8,
               SECRET_KEYS=["n" * 50, "o" * 50]) == []


def test_manage_check_refuses_to_start(settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "OVERDUE_POLICY": "forgive"}
    with pytest.raises(SystemCheckError, match="OVERDUE_POLICY"):
        call_command("check")


def test_database_vendor(settings, monkeypatch):
    import sqlite3

    from django.db import connections

    vendor = connections["default"].vendor
    if vendor == "sqlite":
        monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
        monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
        assert [e.id for e in checks.check_database()] == ["sms_service.E017"]
    else:
        assert vendor == "postgresql" and checks.check_database() == []
    monkeypatch.setattr(type(connections["default"]), "vendor", "mysql")
    errors = checks.check_database()
    assert [e.id for e in errors] == ["sms_service.E017"] and "mysql" in errors[0].msg
