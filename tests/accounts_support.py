"""Shared by the account page tests: the site app, and reading codes the way a
person gets them (from the SMS)."""

from __future__ import annotations

import re

from sms_service.backends import locmem
from sms_service.models import App

PHONE = "18612345678"
PHONE_E164 = "+8618612345678"
OTHER_PHONE = "13912345678"
OTHER_E164 = "+8613912345678"
PASSWORD = "correct horse battery"
PAGES = "/accounts/phone/"

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def last_code(phone_e164: str) -> str:
    """The code in the newest SMS to ``phone_e164``."""
    for message in reversed(locmem.outbox):
        if message.to == phone_e164:
            return _CODE.findall(message.body)[-1]
    raise AssertionError(f"no SMS to {phone_e164}; outbox: {[m.to for m in locmem.outbox]}")


def sent_to(phone_e164: str) -> int:
    return sum(1 for message in locmem.outbox if message.to == phone_e164)


def use_site_app(settings, app: App) -> App:
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SITE_APP_ID": app.app_id}
    settings.LOGIN_REDIRECT_URL = "/tests/base/"
    return app

