"""Segment counting: worked values of LeanCloud's and the carriers' rules and a
differential fuzz against an independent byte-level oracle built on ``gsm0338``."""

from __future__ import annotations

import math
import os

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec used as the oracle)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms_service import segments
from sms_service.segments import CARRIER, LEANCLOUD, count

FUZZ_EXAMPLES = int(os.environ.get("SEGMENT_FUZZ_EXAMPLES", "1500"))

EURO = "€"
EMOJI = "😀"  # outside the BMP: a surrogate pair in UTF-16


# --- worked values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (400, 6)],
)
def test_leancloud_worked_values(length, expected):
    # Chinese characters, letters and punctuation all count as one.
    text = ("验证码A1，." * 100)[:length]
    assert count(text, LEANCLOUD).segments == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 159 + EURO, 2),  # 161 septets
        (EURO * 80, 1),  # 160 septets
        ("{" * 80, 1),
        ("\f" * 81, 2),  # form feed is an extension character too
    ],
)
def test_gsm7_worked_values(text, expected):
    counted = count(text, CARRIER)
    assert counted.encoding == "gsm7"
    assert counted.segments == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        (EMOJI * 35, 1),  # 70 UTF-16 units
        (EMOJI * 36, 2),
        ("a" * 69 + "中", 1),  # one non-GSM character turns everything UCS-2
        ("a" * 70 + "中", 2),
    ],
)
def test_ucs2_worked_values(text, expected):
    counted = count(text, CARRIER)
    assert counted.encoding == "ucs2"
    assert counted.segments == expected


def test_extension_character_is_never_split():
    # 152 + [€ would straddle] -> the € opens part 2, which fills up, part 3 has 1.
    text = "a" * 152 + EURO + "a" * 152
    counted = count(text, CARRIER)
    assert counted.length == 306
    assert counted.segments == 3


def test_surrogate_pair_is_never_split():
    text = "ж" * 66 + EMOJI + "ж" * 66
    counted = count(text, CARRIER)
    assert counted.length == 134
    assert counted.segments == 3


def test_escape_character_alone_is_not_gsm7():
    # ESC only introduces extension characters; a raw one is not sendable text.
    assert count("abc\x1b", CARRIER).encoding == "ucs2"


def test_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError):
        count("x", "sms")


# --- differential fuzz against an independent oracle ---------------------------------


def _oracle_gsm7(text: str) -> tuple[int, int] | None:
    """(septets, parts) from the gsm0338 codec's bytes, or None if not GSM-7."""
    if "\x1b" in text:
        return None
    try:
        data = text.encode("gsm03.38")
    except UnicodeEncodeError:
        return None
    if len(data) <= 160:
        return len(data), 1
    parts, rest = 0, data
    while rest:
        chunk = rest[:153]
        if chunk[-1] == 0x1B and len(rest) > 153:
            chunk = chunk[:-1]  # never end a part on ESC: its code follows it
        rest = rest[len(chunk) :]
        parts += 1
    return len(data), parts


def _oracle_ucs2(text: str) -> tuple[int, int]:
    data = text.encode("utf-16-be")
    units = len(data) // 2
    if units <= 70:
        return units, 1
    parts, rest = 0, data
    while rest:
        chunk = rest[:134]
        high = int.from_bytes(chunk[-2:], "big")
        if 0xD800 <= high <= 0xDBFF and len(rest) > 134:
            chunk = chunk[:-2]  # keep the surrogate pair together
        rest = rest[len(chunk) :]
        parts += 1
    return units, parts


_GSM_ALPHABET = sorted(segments.GSM7_BASIC | segments.GSM7_EXTENSION)
gsm_texts = st.text(alphabet=st.sampled_from(_GSM_ALPHABET), max_size=400)
mixed_texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(_GSM_ALPHABET),
        st.sampled_from("中文验证码жé😀🇨🇳ç\x1b"),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=400,
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(gsm_texts, mixed_texts))
def test_carrier_count_matches_independent_oracle(text):
    counted = count(text, CARRIER)
    gsm = _oracle_gsm7(text)
    if gsm is not None:
        assert counted.encoding == "gsm7"
        assert (counted.length, counted.segments) == gsm
    else:
        assert counted.encoding == "ucs2"
        assert (counted.length, counted.segments) == _oracle_ucs2(text)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.text(max_size=400))
def test_leancloud_count_matches_rule(text):
    n = len(text)
    assert count(text, LEANCLOUD).segments == (1 if n <= 70 else math.ceil(n / 67))
