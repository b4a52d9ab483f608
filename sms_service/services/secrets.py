"""Keyed hashes for codes and encryption for message payloads (R-CODE-3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from ..conf import app_settings


def _master_secret() -> bytes:
    return (app_settings.SECRET or settings.SECRET_KEY).encode()


@lru_cache(maxsize=8)
def _derive(master: bytes, label: bytes) -> bytes:
    return hmac.new(master, b"sms_service:" + label, hashlib.sha256).digest()


def _key(label: str) -> bytes:
    return _derive(_master_secret(), label.encode())


def code_digest(*, app_id: str, phone: str, purpose: str, code: str) -> str:
    """HMAC binding the code to app, number and purpose."""
    msg = "\x1f".join((app_id, phone, purpose, code)).encode()
    return hmac.new(_key("code-digest"), msg, hashlib.sha256).hexdigest()


def code_lookup(*, app_id: str, purpose: str, code: str, salt: str = "") -> str:
    """HMAC of the code within (app, purpose): finds a code without its number."""
    msg = "\x1f".join((app_id, purpose, code, salt)).encode()
    return hmac.new(_key("code-lookup"), msg, hashlib.sha256).hexdigest()


def token_digest(*, label: str, token: str) -> str:
    """HMAC of a random token (session tokens): what is stored instead of it."""
    return hmac.new(_key(label), token.encode(), hashlib.sha256).hexdigest()


def digests_match(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(a.encode(), b.encode())


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_key("payload")))


def encrypt(text: str) -> bytes:
    return _fernet().encrypt(text.encode())


def decrypt(token: bytes | memoryview) -> str:
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise ValueError("payload cannot be decrypted with the current secret") from exc
