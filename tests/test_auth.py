"""X-LC-Id / X-LC-Key / X-LC-Sign authentication, as LeanCloud's REST API defines it."""

from __future__ import annotations

import hashlib
import time

import pytest
import time_machine

from sms_service.api.authentication import sign
from sms_service.models import App

URL = "/1.1/verifySmsCode/123456"
BODY = {"mobilePhoneNumber": "18612345678"}


def test_sign_matches_the_documented_vectors():
    assert sign("1453014943466", "UtOCzqb67d3sN12Kts4URwy8") == "d5bcbb897e19b2f6633c716dfdfaf9be"
    assert sign("1453014943466", "DyJegPlemooo4X1tg94gQkw1") == "e074720658078c898aa0d4b1b82bdf4b"


@pytest.fixture
def doc_app(db) -> App:
    """The app of LeanCloud's worked example, so its signatures verify as written."""
    return App.objects.create(
        name="Doc", app_key="UtOCzqb67d3sN12Kts4URwy8", master_key="DyJegPlemooo4X1tg94gQkw1"
    )


def _post(lc, headers):
    return lc.post(URL, BODY, headers=headers)


@pytest.fixture
def documented_time():
    """The clock at the worked example's timestamp: its signatures are fresh."""
    with time_machine.travel(1453014943.466 + 60, tick=True):
        yield


def _signed(app, timestamp_ms: int, *, master: bool = False) -> dict[str, str]:
    key = app.master_key if master else app.app_key
    value = f"{sign(str(timestamp_ms), key)},{timestamp_ms}" + (",master" if master else "")
    return {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_SIGN": value}


@pytest.mark.parametrize(
    "sign_value, master",
    [
        ("d5bcbb897e19b2f6633c716dfdfaf9be,1453014943466", False),
        ("e074720658078c898aa0d4b1b82bdf4b,1453014943466,master", True),
    ],
)
def test_documented_signatures_authenticate(lc, doc_app, documented_time, sign_value, master):
    headers = {"HTTP_X_LC_ID": doc_app.app_id, "HTTP_X_LC_SIGN": sign_value}
    response = _post(lc, headers)
    # Authenticated: the request reaches the code check (no code was issued).
    assert response.status_code == 400
    assert response.json()["code"] == 603


@pytest.mark.parametrize(
    "sign_value",
    [
        "D5BCBB897E19B2F6633C716DFDFAF9BE,1453014943466",  # upper-case hex is refused
        "d5bcbb897e19b2f6633c716dfdfaf9be,1453014943467",  # another timestamp
        "d5bcbb897e19b2f6633c716dfdfaf9be,1453014943466,master",  # app key as master
        "e074720658078c898aa0d4b1b82bdf4b,1453014943466",  # master digest without flag
        "d5bcbb897e19b2f6633c716dfdfaf9be",
        "d5bcbb897e19b2f6633c716dfdfaf9be,abc",
        "d5bcbb897e19b2f6633c716dfdfaf9be,1453014943466,admin",
    ],
)
def test_bad_signatures_get_401(lc, doc_app, documented_time, sign_value):
    headers = {"HTTP_X_LC_ID": doc_app.app_id, "HTTP_X_LC_SIGN": sign_value}
    response = _post(lc, headers)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "error": "Unauthorized."}
    assert response["Content-Type"].startswith("application/json")


def test_key_header_plain_and_master(lc, app):
    plain = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": app.app_key}
    master = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": f"{app.master_key},master"}
    assert _post(lc, plain).json()["code"] == 603
    assert _post(lc, master).json()["code"] == 603


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_LC_ID": "nope", "HTTP_X_LC_KEY": "nope"},
        {"HTTP_X_LC_KEY": "k"},
    ],
)
def test_missing_or_unknown_credentials_get_401(lc, app, headers):
    response = _post(lc, headers)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "error": "Unauthorized."}


def test_wrong_keys_get_401(lc, app):
    assert _post(lc, {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": "wrong"}).status_code == 401
    master_as_key = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": app.master_key}
    assert _post(lc, master_as_key).status_code == 401
    key_as_master = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": f"{app.app_key},master"}
    assert _post(lc, key_as_master).status_code == 401


def test_keys_of_another_app_get_401(lc, app):
    other = App.objects.create(name="Other")
    headers = {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": other.app_key}
    assert _post(lc, headers).status_code == 401


def test_legacy_avoscloud_headers(lc, app):
    ts = str(int(time.time() * 1000))
    digest = hashlib.md5((ts + app.app_key).encode()).hexdigest()
    headers = {
        "HTTP_X_AVOSCLOUD_APPLICATION_ID": app.app_id,
        "HTTP_X_AVOSCLOUD_REQUEST_SIGN": f"{digest},{ts}",
    }
    assert _post(lc, headers).json()["code"] == 603


DAY_MS = 86400 * 1000


@pytest.mark.parametrize("master", [False, True])
@pytest.mark.parametrize(
    "offset_ms",
    [
        None,  # timestamp 0
        -365 * DAY_MS,  # captured a year ago
        10 * 365 * DAY_MS,  # ten years ahead
        -16 * 60 * 1000,  # just outside the default 15 minutes
        16 * 60 * 1000,
    ],
)
def test_signed_timestamps_outside_the_window_get_401(lc, app, master, offset_ms):
    now_ms = int(time.time() * 1000)
    timestamp = 0 if offset_ms is None else now_ms + offset_ms
    response = _post(lc, _signed(app, timestamp, master=master))
    assert response.status_code == 401
    assert response.json() == {"code": 401, "error": "Unauthorized."}


@pytest.mark.parametrize("offset_ms", [-14 * 60 * 1000, 0, 14 * 60 * 1000])
def test_signed_timestamps_inside_the_window_authenticate(lc, app, offset_ms):
    headers = _signed(app, int(time.time() * 1000) + offset_ms, master=True)
    assert _post(lc, headers).json()["code"] == 603


def test_the_window_is_a_setting(lc, app, settings):
    old = _signed(app, int(time.time() * 1000) - 60 * 1000)
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SIGN_TIMESTAMP_WINDOW_SECONDS": 30}
    assert _post(lc, old).status_code == 401
    # None turns the check off, for devices whose clocks cannot be trusted.
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SIGN_TIMESTAMP_WINDOW_SECONDS": None}
    assert _post(lc, _signed(app, 0)).json()["code"] == 603
    assert _post(lc, _signed(app, 1453014943466, master=True)).json()["code"] == 603


def test_the_window_passes_the_settings_check_as_none_or_seconds(settings):
    from sms_service.checks import check_setting_values

    for value, refused in ((None, False), (60, False), ("15m", True)):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SIGN_TIMESTAMP_WINDOW_SECONDS": value}
        ids = [error.id for error in check_setting_values() if "SIGN_TIMESTAMP" in error.msg]
        assert bool(ids) is refused, (value, ids)
