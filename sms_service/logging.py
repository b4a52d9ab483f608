"""A logging filter that keeps verification codes out of logs.

LeanCloud's protocol puts codes in URL paths (``/1.1/verifySmsCode/123456``), and
Django logs the path of every 4xx/5xx response (``django.request``) and every
request of the development server (``django.server``). Attach the filter to the
handlers that write those loggers::

    LOGGING = {
        "filters": {"redact_codes": {"()": "sms_service.logging.RedactCodesFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler",
                                 "filters": ["redact_codes"]}},
        ...
    }
"""

from __future__ import annotations

import logging
import re

_CODE_IN_PATH = re.compile(
    r"(/1\.1/(?:verifySmsCode|verifyMobilePhone|resetPasswordBySmsCode)/)[^/?\s\"']+"
)


def redact(text: str) -> str:
    return _CODE_IN_PATH.sub(r"\1******", text)


class RedactCodesFilter(logging.Filter):
    """Masks codes in the message and its arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        return True
