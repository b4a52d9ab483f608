"""Counting billed message segments.

Two modes:

``leancloud``
    LeanCloud's rule for every message it bills: characters are counted (CJK,
    letters, digits, punctuation and spaces alike, the 【signature】 included);
    ≤ 70 is one message, longer texts are billed per 67 characters.

``carrier``
    What carriers bill for international SMS. A text that fits the GSM 03.38
    default alphabet is sent as GSM-7: 160 septets in a single message, 153 per
    part once concatenated (the user data header takes the rest). Extension
    characters (form feed and ``^{}\\[~]|€``) are sent as ESC + code, so they
    count 2 septets and are never split across two parts. Any other character
    switches the whole text to UCS-2: 70 UTF-16 units single, 67 per part;
    characters outside the Basic Multilingual Plane are surrogate pairs (2
    units) that are never split either.

Which mode applies is a setting per destination (``SEGMENT_MODE_DOMESTIC`` and
``SEGMENT_MODE_INTERNATIONAL``, see :func:`mode_for`). The length limit (``MAX_MESSAGE_LENGTH``
characters, signature and suffix included) is enforced by the billing quote, before anything is
queued or charged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

LEANCLOUD = "leancloud"
CARRIER = "carrier"
MODES = (LEANCLOUD, CARRIER)

#: GSM 03.38 default alphabet (one septet each). ESC (0x1B) is deliberately left
#: out: it only introduces extension characters and is not text a caller may send.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: sent as ESC + code, so two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67
_LEANCLOUD_SINGLE, _LEANCLOUD_PART = 70, 67


@dataclass(frozen=True)
class SegmentCount:
    length: int  # in the mode's units (characters, septets or UTF-16 units)
    segments: int
    encoding: str  # "chars", "gsm7" or "ucs2"


def count_leancloud(text: str) -> SegmentCount:
    """LeanCloud's rule: ≤ 70 characters is 1 message, then one per 67."""
    n = len(text)
    segments = 1 if n <= _LEANCLOUD_SINGLE else math.ceil(n / _LEANCLOUD_PART)
    return SegmentCount(length=n, segments=segments, encoding="chars")


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` exists in GSM-7 (basic or extension)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def count_carrier(text: str) -> SegmentCount:
    """Carrier segments: GSM-7 when the whole text allows it, otherwise UCS-2."""
    if is_gsm7(text):
        weights = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SegmentCount(
            length=sum(weights),
            segments=_pack(weights, single=_GSM7_SINGLE, part=_GSM7_PART),
            encoding="gsm7",
        )
    weights = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentCount(
        length=sum(weights),
        segments=_pack(weights, single=_UCS2_SINGLE, part=_UCS2_PART),
        encoding="ucs2",
    )


def _pack(weights: Iterable[int], *, single: int, part: int) -> int:
    """Number of parts when units of the given weights are laid out in order.

    A character never straddles two parts (an ESC pair or a surrogate pair is
    moved whole to the next part), so parts may end one unit short and the count
    can exceed ``ceil(total / part)``.
    """
    weights = list(weights)
    if sum(weights) <= single:
        return 1
    parts, used = 1, 0
    for weight in weights:
        if used + weight > part:
            parts, used = parts + 1, 0
        used += weight
    return parts


def count(text: str, mode: str = LEANCLOUD) -> SegmentCount:
    """Count ``text`` (the final text, signature and suffixes included) in ``mode``."""
    if mode == LEANCLOUD:
        return count_leancloud(text)
    if mode == CARRIER:
        return count_carrier(text)
    raise ValueError(f"unknown segment mode {mode!r}")


def mode_for(*, domestic: bool) -> str:
    """The configured segment mode for a domestic or an international number."""
    from .conf import app_settings

    mode = (
        app_settings.SEGMENT_MODE_DOMESTIC
        if domestic
        else app_settings.SEGMENT_MODE_INTERNATIONAL
    )
    if mode not in MODES:
        from .exceptions import SmsServiceConfigurationError

        key = "SEGMENT_MODE_DOMESTIC" if domestic else "SEGMENT_MODE_INTERNATIONAL"
        raise SmsServiceConfigurationError(
            f'SMS_SERVICE["{key}"] must be one of {", ".join(MODES)}, not {mode!r}'
        )
    return mode
