"""Test-only: passing a CAPTCHA without reading the image.

The answer is read from the database by the challenge's token (the text
django-simple-captcha stored for it). Nothing in sms_service exposes it.
"""

from __future__ import annotations

from sms_service.models import CaptchaChallenge


def captcha_answer(token: str) -> str:
    """The stored (lower-case) answer of the challenge ``token``."""
    return CaptchaChallenge.objects.select_related("store").get(token=token).store.response
