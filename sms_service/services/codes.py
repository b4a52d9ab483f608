"""Issuing and checking verification codes.

A code row holds only keyed hashes. Checking a code is two statements: one
SELECT of the active row's digest for (app, phone, purpose), compared in
constant time, then one write that either consumes it (single use, atomic: of
two concurrent correct submissions exactly one wins) or counts a wrong attempt
(the fifth kills it). A number without a live code gets the same work (a digest
compared, the same counting write), so the response time does not tell whether
a number has a live code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError
from django.utils import timezone

from .. import signals, sql
from ..adapter import get_adapter
from ..conf import app_settings
from ..crypto import code_digest, code_digests, code_lookup, code_lookups, matches_any
from ..exceptions import InvalidCodeError, SmsServiceConfigurationError
from ..models import App, CodeStatus, FixedCodeNumber, VerificationCode
from . import pumping, ratelimit


@dataclass(frozen=True)
class IssuedCode:
    code: str  # plaintext, only ever handed to the message renderer
    row: VerificationCode
    is_test: bool


def fixed_code_for(app: App, phone: str) -> str | None:
    """The fixed code of a test number, or None (never sent, never billed)."""
    if getattr(app, "has_fixed_code_numbers", True) is False:
        return None  # known from the app's own query: no lookup needed
    return FixedCodeNumber.objects.filter(app=app, phone=phone).values_list("code", flat=True).first()


def issue_code(
    *,
    app: App,
    phone: str,
    purpose: str,
    ttl_minutes: int,
    fixed_code: str | None = None,
    data: dict | None = None,
) -> IssuedCode:
    """Issue a code for (app, phone, purpose), replacing the one it had.

    One statement inside the caller's transaction: an INSERT that overwrites the
    number's row for that purpose (``ON CONFLICT ... DO UPDATE``), so the earlier
    code stops working in the same step and the table keeps one row per number
    and purpose. The code is unique among the active codes of (app, purpose) so
    that a code-only lookup finds one row: a clash with another
    number's active row (about one draw in 10^6 / active codes; expired rows
    count until retired) raises :class:`CodeCollisionError`, and the caller
    retries its transaction with a new draw after retiring the row in the way if
    it has expired.
    """
    issued = new_code(app=app, phone=phone, purpose=purpose, ttl_minutes=ttl_minutes,
                      fixed_code=fixed_code, data=data)
    row = issued.row
    try:
        (row.pk,) = sql.run(VerificationCode, _ISSUE, [
            app.pk, phone, purpose, row.digest, row.lookup, row.status, row.expires_at,
            row.created_at, row.data,
        ], fetch=True)
    except IntegrityError as exc:
        raise CodeCollisionError(app=app, purpose=purpose, lookup=row.lookup) from exc
    row._state.adding = False
    return issued


def new_code(*, app: App, phone: str, purpose: str, ttl_minutes: int,
             fixed_code: str | None = None, data: dict | None = None) -> IssuedCode:
    """A drawn code and its unsaved row (see :func:`issue_code`, which stores it;
    the one-statement send stores it with :data:`UPSERT`)."""
    now = timezone.now()
    code = fixed_code or generate_code(app=app, phone=phone, purpose=purpose)
    # A fixed code is shared knowledge: bind its lookup to the number so it never
    # collides with (or is found instead of) a real code.
    lookup = code_lookup(
        app_id=app.app_id, purpose=purpose, code=code, salt=phone if fixed_code else ""
    )
    row = VerificationCode(
        app=app,
        phone=phone,
        purpose=purpose,
        digest=code_digest(app_id=app.app_id, phone=phone, purpose=purpose, code=code),
        lookup=lookup,
        status=CodeStatus.ACTIVE,
        attempts=0,
        expires_at=now + timedelta(minutes=ttl_minutes),
        created_at=now,
        used_at=None,
        data=data or {},
    )
    return IssuedCode(code=code, row=row, is_test=fixed_code is not None)


def generate_code(*, app: App, phone: str, purpose: str) -> str:
    """A fresh code of ``CODE_LENGTH`` digits from the adapter's ``generate_code``."""
    length = app_settings.CODE_LENGTH
    code = get_adapter().generate_code(app=app, phone=phone, purpose=purpose, length=length)
    if not (isinstance(code, str) and len(code) == length and code.isascii()
            and code.isdigit()):
        raise SmsServiceConfigurationError(
            f"The adapter's generate_code() must return {length} digits (CODE_LENGTH)."
        )
    return code


# The send's statement, written out (see sms_service.sql): a new row, or the
# number's row for that purpose overwritten with the new code.
#: What an INSERT of a code row does when the number has one for that purpose.
UPSERT = (
    "ON CONFLICT (app_id, phone, purpose) DO UPDATE SET digest = excluded.digest, "
    "lookup = excluded.lookup, status = excluded.status, attempts = 0, "
    "expires_at = excluded.expires_at, created_at = excluded.created_at, used_at = NULL, "
    "data = excluded.data RETURNING id"
)
_ISSUE = (
    "INSERT INTO {table} (app_id, phone, purpose, digest, lookup, status, attempts, "
    "expires_at, created_at, used_at, data) VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, NULL, %s) "
    + UPSERT
)


class CodeCollisionError(Exception):
    """The drawn code is held by another number's active row: call
    :meth:`retire_if_expired` (outside the failed transaction), then draw again."""

    def __init__(self, *, app: App, purpose: str, lookup: str) -> None:
        super().__init__("verification code collision")
        self.app, self.purpose, self.lookup = app, purpose, lookup

    def retire_if_expired(self) -> None:
        """The row in the way may be a code that expired without being used."""
        VerificationCode.objects.filter(
            app=self.app, purpose=self.purpose, lookup=self.lookup,
            status=CodeStatus.ACTIVE, expires_at__lte=timezone.now(),
        ).update(status=CodeStatus.EXPIRED)


def expire_codes(*, now=None, limit: int = 10000) -> int:
    """Mark codes past their expiry ``expired`` (periodic hygiene: keeps the set of
    active codes, and so code-only lookups and collisions, small), and drop the
    day-old rows that only counted wrong attempts at numbers without a code."""
    now = now or timezone.now()
    ids = list(
        VerificationCode.objects.filter(status=CodeStatus.ACTIVE, expires_at__lte=now)
        .values_list("pk", flat=True)[:limit]
    )
    # Rows that only count attempts at a number that never had a code.
    tried = VerificationCode.objects.filter(digest="", created_at__lte=now - timedelta(days=1))
    VerificationCode.objects.filter(pk__in=list(tried.values_list("pk", flat=True)[:limit]),
                                    digest="").delete()
    return VerificationCode.objects.filter(pk__in=ids, status=CodeStatus.ACTIVE).update(
        status=CodeStatus.EXPIRED
    )


def verify_code(*, app: App, phone: str, purpose: str, code: object,
                region: str | None = None) -> None:
    """Consume the active code of (app, phone, purpose) if ``code`` matches
    (``region``: the number's, when the caller has parsed it).

    Raises :class:`InvalidCodeError` (603) when it is wrong, expired, used, dead or
    was never issued; the response does not say which.

    Two statements: read the number's active row's keyed digest (no model built),
    compare it with the submitted code's in constant time, then one conditional
    UPDATE that consumes the row (single use, atomic: of two concurrent correct
    submissions exactly one wins) or counts the wrong attempt.
    """
    if not _well_formed(code):
        raise InvalidCodeError()
    row = sql.run(VerificationCode, ACTIVE_CODE_SQL, [app.pk, phone, purpose, CodeStatus.ACTIVE],
                  fetch=True)
    # No live code: compare against a digest no code has, and count the attempt
    # all the same (see _count_wrong_attempt), so both cases cost the same.
    pk, digest, _attempts = row if row is not None else (None, _NO_DIGEST, 0)
    expected = code_digests(app_id=app.app_id, phone=phone, purpose=purpose, code=str(code))
    if not matches_any(digest, expected) or pk is None:
        _count_wrong_attempt(app=app, phone=phone, purpose=purpose)
        raise InvalidCodeError()
    now = timezone.now()
    consumed = sql.run(VerificationCode, _CONSUME, [CodeStatus.USED, now, pk, CodeStatus.ACTIVE,
                                                    now, app_settings.CODE_MAX_ATTEMPTS])
    if not consumed:
        raise InvalidCodeError()
    pumping.record_verified(app=app, phone=phone, region=region)
    signals.code_verified.send_robust(
        sender=VerificationCode, app=app, phone=phone, purpose=purpose
    )


# verifySmsCode's two statements, written out (see sms_service.sql); the lookup
# is public for benchmarks/sending_throughput.py, which EXPLAINs it.
ACTIVE_CODE_SQL = (
    "SELECT id, digest, attempts FROM {table} "
    "WHERE app_id = %s AND phone = %s AND purpose = %s AND status = %s"
)
_CONSUME = (
    "UPDATE {table} SET status = %s, used_at = %s "
    "WHERE id = %s AND status = %s AND expires_at > %s AND attempts < %s"
)
# A wrong attempt on the number's row, whatever its state: one more attempt (the
# count stops at the limit) and a live code dies at the limit. A number that has
# no row yet gets one without a code (empty digest, expired), which the next
# send overwrites and expire_codes() removes after a day.
_COUNT_WRONG = (
    "INSERT INTO {table} AS c (app_id, phone, purpose, digest, lookup, status, attempts, "
    "expires_at, created_at, used_at, data) VALUES (%s, %s, %s, '', '', %s, 1, %s, %s, NULL, %s) "
    "ON CONFLICT (app_id, phone, purpose) DO UPDATE SET "
    "attempts = CASE WHEN c.attempts < %s THEN c.attempts + 1 ELSE c.attempts END, "
    "status = CASE WHEN c.status = %s AND c.attempts >= %s THEN %s ELSE c.status END "
    "RETURNING attempts, status"
)
#: Compared with the submitted code's digest when the number has no live code
#: (a real digest is 64 hex digits; this never matches one).
_NO_DIGEST = "-" * 64


def verify_code_only(*, app: App, purpose: str, code: object) -> VerificationCode:
    """Find and consume a code by its value alone, strictly rate limited."""
    ratelimit.take_code_lookup(app=app, purpose=purpose)
    if not _well_formed(code):
        raise InvalidCodeError()
    lookups = code_lookups(app_id=app.app_id, purpose=purpose, code=str(code))
    row = VerificationCode.objects.filter(
        app=app, purpose=purpose, lookup__in=lookups, status=CodeStatus.ACTIVE
    ).first()
    if row is None:
        raise InvalidCodeError()
    row.app = app
    return _consume(row)


def _well_formed(code: object) -> bool:
    return isinstance(code, str) and len(code) == app_settings.CODE_LENGTH and code.isdigit()


def _consume(row: VerificationCode) -> VerificationCode:
    now = timezone.now()
    won = VerificationCode.objects.filter(
        pk=row.pk,
        status=CodeStatus.ACTIVE,
        expires_at__gt=now,
        attempts__lt=app_settings.CODE_MAX_ATTEMPTS,
    ).update(status=CodeStatus.USED, used_at=now)
    if not won:
        raise InvalidCodeError()
    row.status, row.used_at = CodeStatus.USED, now
    pumping.record_verified(app=row.app, phone=row.phone)
    signals.code_verified.send_robust(
        sender=VerificationCode, app=row.app, phone=row.phone, purpose=row.purpose
    )
    return row


def _count_wrong_attempt(*, app: App, phone: str, purpose: str) -> None:
    """One more wrong attempt on the number's row (the fifth kills a live code)."""
    limit = app_settings.CODE_MAX_ATTEMPTS
    now = timezone.now()
    attempts, status = sql.run(VerificationCode, _COUNT_WRONG, [
        app.pk, phone, purpose, CodeStatus.EXPIRED, now, now, {},
        limit, CodeStatus.ACTIVE, limit - 1, CodeStatus.DEAD,
    ], fetch=True)
    signals.code_rejected.send_robust(
        sender=VerificationCode, app=app, phone=phone, purpose=purpose,
        attempts=attempts, dead=status == CodeStatus.DEAD,
    )
