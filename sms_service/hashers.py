"""A Django password hasher for passwords exported from LeanCloud's ``_User``.

LeanCloud stores ``salt`` and ``password`` per user, where ``password`` is
base64(h) with h = SHA-512(salt + password), then 512 more rounds of
h = SHA-512(h). ``sms_service_import_users`` stores them as
``leancloud_sha512$<salt>$<first 32 bytes of h, base64 without padding>``: the
whole 64-byte digest with a 48-character salt would not fit Django's
128-character password column, and 256 bits of the digest decide a match just
as surely. With this hasher listed in
``PASSWORD_HASHERS`` (after the default one) imported users log in with their old
passwords, and Django re-hashes each password with the default hasher on the
first successful login (``must_update`` is always true).

Only for imported hashes: SHA-512 rounds are far cheaper to attack than Django's
default, so nothing new is ever hashed this way (keep it out of first place in
``PASSWORD_HASHERS``).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_noop as _

from ._types import StrOrPromise

#: Extra SHA-512 rounds after the first (LeanCloud's scheme).
ROUNDS = 512
#: Bytes of the digest kept in the encoded password.
KEPT_BYTES = 32
#: Django's ``AbstractBaseUser.password`` column.
MAX_ENCODED_LENGTH = 128


def leancloud_digest(password: str, salt: str) -> str:
    """base64 of LeanCloud's salted, iterated SHA-512 of ``password`` (what its
    export holds in ``password``)."""
    return base64.b64encode(_digest(password, salt)).decode("ascii")


def _digest(password: str, salt: str) -> bytes:
    digest = hashlib.sha512(salt.encode() + password.encode()).digest()
    for _round in range(ROUNDS):
        digest = hashlib.sha512(digest).digest()
    return digest


def _kept(digest: bytes) -> str:
    return base64.b64encode(digest[:KEPT_BYTES]).decode("ascii").rstrip("=")


class LeanCloudPasswordHasher(BasePasswordHasher):
    """Checks LeanCloud ``_User`` password hashes; always asks to be replaced."""

    algorithm = "leancloud_sha512"

    def encode(self, password: str, salt: str) -> str:
        self._check_encode_args(password, salt)  # type: ignore[attr-defined]  # not in the stubs
        return f"{self.algorithm}${salt}${_kept(_digest(password, salt))}"

    @classmethod
    def from_export(cls, *, salt: str, password: str) -> str:
        """The encoded string for an exported (salt, password hash) pair."""
        if "$" in salt:
            raise ValueError("a LeanCloud salt cannot contain '$'")
        try:
            digest = base64.b64decode(password, validate=True)
        except ValueError as exc:
            raise ValueError("password is not base64: not a LeanCloud password hash") from exc
        if len(digest) != hashlib.sha512().digest_size:
            raise ValueError("password is not 64 bytes: not a LeanCloud password hash")
        encoded = f"{cls.algorithm}${salt}${_kept(digest)}"
        if len(encoded) > MAX_ENCODED_LENGTH:
            raise ValueError(f"the salt is too long to store ({len(salt)} characters)")
        return encoded

    def decode(self, encoded: str) -> dict[str, str]:
        algorithm, salt, hash_ = encoded.split("$", 2)
        if algorithm != self.algorithm:
            raise ValueError(f"not a {self.algorithm} hash")
        return {"algorithm": algorithm, "hash": hash_, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        return constant_time_compare(_kept(_digest(password, decoded["salt"])),
                                     decoded["hash"])

    def safe_summary(self, encoded: str) -> dict[StrOrPromise, Any]:
        decoded = self.decode(encoded)
        return {
            _("algorithm"): decoded["algorithm"],
            _("salt"): mask_hash(decoded["salt"], show=2),
            _("hash"): mask_hash(decoded["hash"]),
        }

    def must_update(self, encoded: str) -> bool:
        return True

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass
