"""Phone numbers."""

from __future__ import annotations

import pytest

from sms_service.exceptions import (
    InternationalDisabledError,
    InvalidPhoneNumberError,
    PhoneNumberMissingError,
)
from sms_service.phone import parse_destination, parse_phone


@pytest.mark.parametrize(
    "raw, e164, region",
    [
        ("18612345678", "+8618612345678", "CN"),  # no "+" means +86
        ("+8618612345678", "+8618612345678", "CN"),
        ("186 1234 5678", "+8618612345678", "CN"),
        ("186-1234-5678", "+8618612345678", "CN"),
        ("+1 415 555 2671", "+14155552671", "US"),
        ("+447400123456", "+447400123456", "GB"),
        ("+85291234567", "+85291234567", "HK"),
    ],
)
def test_numbers_are_stored_as_e164(raw, e164, region):
    phone = parse_phone(raw)
    assert (phone.e164, phone.region) == (e164, region)


@pytest.mark.parametrize("raw", [None, ""])
def test_missing_number_is_212(raw):
    with pytest.raises(PhoneNumberMissingError) as exc:
        parse_phone(raw)
    assert exc.value.code == 212


@pytest.mark.parametrize(
    "raw",
    ["186123", "1861234567a", "abc", "+", "++8618612345678", "1" * 40, 18612345678,
     ["18612345678"], "１８６１２３４５６７８", "+86186\x0012345678", "186😀12345678"],
)
def test_invalid_numbers_are_127(raw):
    with pytest.raises(InvalidPhoneNumberError) as exc:
        parse_phone(raw)
    assert exc.value.code == 127


def test_international_needs_the_app_switch():
    with pytest.raises(InternationalDisabledError) as exc:
        parse_destination("+14155552671", allow_international=False)
    assert exc.value.code == 1
    assert exc.value.message == "International SMS is disabled, please enable it in console."
    assert parse_destination("+14155552671", allow_international=True).region == "US"


def test_countries_outside_the_coverage_list_are_refused():
    # Nigeria is not in the default coverage list: refused even when international is on.
    with pytest.raises(InvalidPhoneNumberError):
        parse_destination("+2348031234567", allow_international=True)


def test_prefix_drops_the_last_four_digits():
    assert parse_phone("18612345678").prefix == "+861861234"


@pytest.mark.parametrize(
    "raw, channel, landline_voice, refused",
    [
        ("+8618612345678", "sms", False, False),
        ("+14155552671", "sms", False, False),  # fixed line or mobile: cannot tell
        ("+861012345678", "sms", True, True),  # a landline never gets an SMS
        ("+861012345678", "voice", False, True),
        ("+861012345678", "voice", True, False),
        ("+19002345678", "voice", True, True),
        ("+15005550006", "sms", False, True),  # personal number
    ],
)
def test_number_types(raw, channel, landline_voice, refused):
    def check():
        return parse_destination(raw, allow_international=True, channel=channel,
                                 allow_landline_voice=landline_voice)

    if refused:
        with pytest.raises(InvalidPhoneNumberError):
            check()
    else:
        assert check().e164 == raw
