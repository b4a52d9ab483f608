"""The one place phone numbers are parsed and normalised (R-PHONE)."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from .conf import app_settings
from .exceptions import (
    InternationalDisabledError,
    InvalidPhoneNumberError,
    PhoneNumberMissingError,
)

#: Longest input worth handing to the parser (E.164 is at most 15 digits).
_MAX_INPUT_LENGTH = 32


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    region: str  # ISO 3166-1 alpha-2, e.g. "CN"
    country_code: int

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
    try:
        parsed = phonenumbers.parse(text, app_settings.DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumberError() from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumberError()
    region = phonenumbers.region_code_for_number(parsed) or ""
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        region=region,
        country_code=parsed.country_code,
    )


def check_destination(phone: PhoneNumber, *, allow_international: bool) -> None:
    """Refuse numbers the app may not send to, before any provider call.

    Regions outside the coverage list are invalid (127) whatever the app says;
    covered foreign regions need the app's international switch (code 1).
    """
    if phone.region not in app_settings.ALLOWED_REGIONS:
        raise InvalidPhoneNumberError(
            "The mobile phone number was invalid: its country is not served."
        )
    if not phone.is_domestic and not allow_international:
        raise InternationalDisabledError()


def parse_destination(raw: object, *, allow_international: bool) -> PhoneNumber:
    phone = parse_phone(raw)
    check_destination(phone, allow_international=allow_international)
    return phone
