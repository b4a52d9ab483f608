"""The one place phone numbers are parsed and normalised."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

from .conf import app_settings
from .exceptions import (
    InternationalDisabledError,
    InvalidPhoneNumberError,
    PhoneNumberMissingError,
)

#: Longest input worth handing to the parser (E.164 is at most 15 digits).
_MAX_INPUT_LENGTH = 32


#: Number types (phonenumbers' classification) that receive codes and messages.
#: FIXED_LINE_OR_MOBILE is where a numbering plan cannot tell (the US, Canada).
RECEIVING_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

#: Why the other types are refused (127), before any provider call or charge:
#: numbers that cost the sender more or pay someone per message, or that are not
#: a subscriber's phone at all.
_REFUSED = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate numbers are not served",
    PhoneNumberType.TOLL_FREE: "toll-free numbers are not served",
    PhoneNumberType.SHARED_COST: "shared-cost numbers are not served",
    PhoneNumberType.PERSONAL_NUMBER: "personal (forwarding) numbers are not served",
    PhoneNumberType.UAN: "universal access numbers are not served",
    PhoneNumberType.VOIP: "VoIP numbers are not served",
    PhoneNumberType.PAGER: "pagers are not served",
    PhoneNumberType.VOICEMAIL: "voicemail numbers are not served",
}


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    region: str  # ISO 3166-1 alpha-2, e.g. "CN"
    country_code: int
    number_type: int = PhoneNumberType.UNKNOWN  # a phonenumbers.PhoneNumberType

    @property
    def is_domestic(self) -> bool:
        return self.region == app_settings.DEFAULT_REGION

    @property
    def prefix(self) -> str:
        """The number without its last four digits (for per-range limits)."""
        return self.e164[:-4]


def parse_phone(raw: object) -> PhoneNumber:
    """Parse user input into E.164. No ``+`` means the default region (+86).

    Raises :class:`PhoneNumberMissingError` (212) for an empty value and
    :class:`InvalidPhoneNumberError` (127) for anything that is not a valid number.
    """
    if raw is None or raw == "":
        raise PhoneNumberMissingError()
    if not isinstance(raw, str) or len(raw) > _MAX_INPUT_LENGTH:
        raise InvalidPhoneNumberError()
    text = raw.strip()
    # Only digits, spaces, dashes, dots, parentheses and one leading "+".
    body = text[1:] if text.startswith("+") else text
    if not body or not all(ch.isdigit() or ch in " -.()" for ch in body):
        raise InvalidPhoneNumberError()
    if not body.replace(" ", "").replace("-", "").isascii():
        raise InvalidPhoneNumberError()
    phone = _parse(text, app_settings.DEFAULT_REGION)
    if phone is None:
        raise InvalidPhoneNumberError()
    return phone


@functools.lru_cache(maxsize=4096)
def _parse(text: str, default_region: str) -> PhoneNumber | None:
    """The number, or None when it is not valid. Remembered per process: a
    number is parsed when its code is sent and again when it is verified, and
    the metadata walk is the costly part."""
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        region=phonenumbers.region_code_for_number(parsed) or "",
        country_code=parsed.country_code or 0,
        number_type=phonenumbers.number_type(parsed),
    )


def check_destination(
    phone: PhoneNumber, *, allow_international: bool, channel: str = "sms",
    allow_landline_voice: bool = False,
) -> None:
    """Refuse numbers the app may not send to, before any provider call.

    Regions outside the coverage list are invalid (127) whatever the app says;
    so are numbers that are not mobile phones (premium-rate, toll-free, shared
    cost, personal, UAN, VoIP, pager, voicemail), and landlines, which cannot
    receive an SMS; a voice code may call a landline when the app allows it.
    Covered foreign regions need the app's international switch (code 1).
    """
    if phone.region not in app_settings.ALLOWED_REGIONS:
        raise InvalidPhoneNumberError(
            "The mobile phone number was invalid: its country is not served."
        )
    if phone.number_type not in RECEIVING_TYPES:
        landline = phone.number_type == PhoneNumberType.FIXED_LINE
        if not (landline and channel == "voice" and allow_landline_voice):
            reason = _REFUSED.get(phone.number_type) or (
                "it is a landline" if landline else "it is not a mobile number"
            )
            raise InvalidPhoneNumberError(f"The mobile phone number was invalid: {reason}.")
    if not phone.is_domestic and not allow_international:
        raise InternationalDisabledError()


def parse_destination(
    raw: object, *, allow_international: bool, channel: str = "sms",
    allow_landline_voice: bool = False,
) -> PhoneNumber:
    phone = parse_phone(raw)
    check_destination(phone, allow_international=allow_international, channel=channel,
                      allow_landline_voice=allow_landline_voice)
    return phone
