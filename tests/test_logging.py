"""Codes never reach the logs, even though the protocol puts them in URLs."""

from __future__ import annotations

import logging
import re

import pytest

from sms_service.logging import RedactCodesFilter, redact


def test_paths_with_codes_are_masked():
    assert redact("Bad Request: /1.1/verifySmsCode/123456") == (
        "Bad Request: /1.1/verifySmsCode/******"
    )
    assert redact('"POST /1.1/resetPasswordBySmsCode/654321 HTTP/1.1" 400') == (
        '"POST /1.1/resetPasswordBySmsCode/****** HTTP/1.1" 400'
    )
    assert redact("/1.1/requestSmsCode") == "/1.1/requestSmsCode"


@pytest.mark.django_db
def test_django_request_log_of_a_wrong_code_is_masked(lc, signature, outbox, caplog):
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda record: records.append(handler.format(record))
    handler.addFilter(RedactCodesFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "18612345678"})
        code = re.search(r"\d{6}", outbox[0].body).group()
        for attempt in (code, code):  # the second use is refused and logged
            lc.post(f"/1.1/verifySmsCode/{attempt}", {"mobilePhoneNumber": "18612345678"})
    finally:
        logger.removeHandler(handler)
    assert any("verifySmsCode/******" in line for line in records)
    assert not any(code in line for line in records)
