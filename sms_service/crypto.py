"""Keyed hashes of codes and tokens, and encryption of message payloads, with key
rotation.

The keys come from ``SMS_SERVICE["SECRET_KEYS"]``, a list of secrets: the first
signs and encrypts, every one verifies and decrypts. To rotate, put the new
secret first and keep the old ones after it until nothing they protect is alive
(codes live minutes; payloads until the message is sent). Empty, the list is
Django's ``SECRET_KEY`` followed by ``SECRET_KEY_FALLBACKS``.

Each secret yields one key per purpose (code digest, code lookup, payload,
tokens) through HMAC-SHA256, so no two purposes share a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from .conf import app_settings


def secrets_in_use() -> list[str]:
    """The secrets, newest (signing) first."""
    configured = app_settings.SECRET_KEYS
    if configured:
        return list(configured)
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


@lru_cache(maxsize=64)
def _derive(secret: str, label: str) -> bytes:
    return hmac.new(secret.encode(), b"sms_service:" + label.encode(), hashlib.sha256).digest()


def _keys(label: str) -> list[bytes]:
    return [_derive(secret, label) for secret in secrets_in_use()]


def _hmac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def code_digest(*, app_id: str, phone: str, purpose: str, code: str) -> str:
    """HMAC binding the code to app, number and purpose (the signing key)."""
    return _hmac(_keys("code-digest")[0], app_id, phone, purpose, code)


def code_digests(*, app_id: str, phone: str, purpose: str, code: str) -> list[str]:
    """:func:`code_digest` under every key, the signing key's first."""
    return [_hmac(key, app_id, phone, purpose, code) for key in _keys("code-digest")]


def code_lookup(*, app_id: str, purpose: str, code: str, salt: str = "") -> str:
    """HMAC of the code within (app, purpose): finds a code without its number."""
    return _hmac(_keys("code-lookup")[0], app_id, purpose, code, salt)


def code_lookups(*, app_id: str, purpose: str, code: str, salt: str = "") -> list[str]:
    """:func:`code_lookup` under every key."""
    return [_hmac(key, app_id, purpose, code, salt) for key in _keys("code-lookup")]


def token_digest(*, label: str, token: str) -> str:
    """HMAC of a random token (session tokens): what is stored instead of it."""
    return _hmac(_keys(label)[0], token)


def token_digests(*, label: str, token: str) -> list[str]:
    """:func:`token_digest` under every key."""
    return [_hmac(key, token) for key in _keys(label)]


def matches_any(stored: str, candidates: list[str]) -> bool:
    """Whether ``stored`` equals one of ``candidates``, each compared in constant
    time and all of them compared (no early exit)."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(stored.encode(), candidate.encode())
    return found


def _fernet() -> MultiFernet:
    return _fernet_of(tuple(_keys("payload")))


@lru_cache(maxsize=8)
def _fernet_of(keys: tuple[bytes, ...]) -> MultiFernet:
    """One MultiFernet per set of payload keys (it holds no state between
    calls): built once, not on every message."""
    return MultiFernet([Fernet(base64.urlsafe_b64encode(key)) for key in keys])


def encrypt(text: str) -> bytes:
    """Encrypt with the signing key."""
    return _fernet().encrypt(text.encode())


def decrypt(token: bytes | memoryview) -> str:
    """Decrypt with whichever key encrypted it."""
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise ValueError("payload cannot be decrypted with any of the secret keys") from exc


#: Marks a payload holding the text and the values of template parameters.
_WITH_VALUES = "\x00v1:"


def encrypt_message(text: str, values: dict[str, str] | None = None) -> bytes:
    """The encrypted payload of a message: its text, plus the values a
    template-based provider fills its own template with (when given)."""
    if not values:
        return encrypt(text)
    return encrypt(_WITH_VALUES + json.dumps({"text": text, "values": values}))


def decrypt_message(token: bytes | memoryview) -> tuple[str, dict[str, str]]:
    """(text, template values) of a payload written by :func:`encrypt_message`."""
    plain = decrypt(token)
    if not plain.startswith(_WITH_VALUES):
        return plain, {}
    data = json.loads(plain[len(_WITH_VALUES):])
    return data["text"], data["values"]
