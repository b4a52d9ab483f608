"""LeanCloud's password scheme as a Django hasher (imported ``_User`` rows)."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher, make_password

from sms_service.hashers import LeanCloudPasswordHasher, leancloud_digest

#: LeanCloud's documented example ("导出用户数据的加密算法").
SALT = "h60d8x797d3oa0naxybxxv9bn7xpt2yiowz68mpiwou7gwr2"
EXPORTED = "tA7BLW+NK0UeARng0693gCaVnljkglCB9snqlpCSUKjx2RgYp8VZZOQt0S5iUtlDrkJXfT3gknS4rRqjYsd/Ug=="

HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",  # the suite's (fast) default
    "sms_service.hashers.LeanCloudPasswordHasher",
]


def test_documented_vector():
    assert leancloud_digest("password", SALT) == EXPORTED


def test_encoded_export_checks_the_old_password(settings):
    settings.PASSWORD_HASHERS = HASHERS
    encoded = LeanCloudPasswordHasher.from_export(salt=SALT, password=EXPORTED)

    # Fits Django's password column: 256 of the 512 bits are kept.
    assert encoded.startswith(f"leancloud_sha512${SALT}$") and len(encoded) <= 128
    assert isinstance(identify_hasher(encoded), LeanCloudPasswordHasher)
    assert check_password("password", encoded)
    assert not check_password("Password", encoded)
    assert not check_password("", encoded)


def test_first_login_upgrades_to_the_default_hasher(settings):
    settings.PASSWORD_HASHERS = HASHERS
    encoded = LeanCloudPasswordHasher.from_export(salt=SALT, password=EXPORTED)
    upgraded = []

    assert check_password("password", encoded, setter=upgraded.append)

    assert upgraded == ["password"]  # Django re-hashes with the first hasher
    assert make_password("password").startswith("md5$")


def test_a_wrong_password_is_not_upgraded(settings):
    settings.PASSWORD_HASHERS = HASHERS
    encoded = LeanCloudPasswordHasher.from_export(salt=SALT, password=EXPORTED)
    upgraded = []
    assert not check_password("wrong", encoded, setter=upgraded.append)
    assert upgraded == []


def test_encode_round_trip_and_summary():
    hasher = LeanCloudPasswordHasher()
    encoded = hasher.encode("secret", "abc123")
    assert hasher.verify("secret", encoded)
    assert not hasher.verify("secret!", encoded)
    summary = hasher.safe_summary(encoded)
    assert "abc123" not in summary.values()
    assert hasher.must_update(encoded)


def test_salt_with_a_dollar_is_refused():
    with pytest.raises(ValueError):
        LeanCloudPasswordHasher.from_export(salt="a$b", password=EXPORTED)


def test_system_check_refuses_it_as_the_default_hasher(settings):
    from sms_service.checks import check_password_hashers

    settings.PASSWORD_HASHERS = list(reversed(HASHERS))
    assert [error.id for error in check_password_hashers()] == ["sms_service.E019"]
    settings.PASSWORD_HASHERS = HASHERS
    assert check_password_hashers() == []
