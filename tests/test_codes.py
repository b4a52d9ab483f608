"""Verification codes at the service level."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone

from sms_service.exceptions import InvalidCodeError
from sms_service.models import App, CodePurpose, CodeStatus, VerificationCode
from sms_service.services import codes

PHONE = "+8618612345678"
OTHER = "+8618612345679"

pytestmark = pytest.mark.django_db


def issue(app, phone=PHONE, purpose=CodePurpose.GENERIC, ttl=10):
    return codes.issue_code(app=app, phone=phone, purpose=purpose, ttl_minutes=ttl)


def check(app, code, phone=PHONE, purpose=CodePurpose.GENERIC):
    codes.verify_code(app=app, phone=phone, purpose=purpose, code=code)


def status_of(issued):
    return VerificationCode.objects.get(pk=issued.row.pk).status


def test_six_digits_from_secrets(monkeypatch):
    drawn = []
    real = secrets.randbelow

    def spy(n):
        drawn.append(n)
        return real(n)

    monkeypatch.setattr("sms_service.adapter.secrets.randbelow", spy)
    code = codes.generate_code(app=App(), phone="+8618612345678", purpose=CodePurpose.GENERIC)
    assert len(code) == 6 and code.isdigit()
    assert drawn == [10**6]  # one uniform draw among every six-digit code


def test_codes_with_leading_zeros_keep_them(monkeypatch):
    monkeypatch.setattr("sms_service.adapter.secrets.randbelow", lambda n: 42)
    code = codes.generate_code(app=App(), phone="+8618612345678", purpose=CodePurpose.GENERIC)
    assert code == "000042"


def test_ttl_boundary(app):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        issued = issue(app, ttl=10)
        clock.shift(timedelta(minutes=10) - timedelta(seconds=1))
        check(app, issued.code)
        assert status_of(issued) == CodeStatus.USED
        issued = issue(app, ttl=10)
        clock.shift(timedelta(minutes=10) + timedelta(seconds=1))
        with pytest.raises(InvalidCodeError):
            check(app, issued.code)


def test_single_use(app):
    issued = issue(app)
    check(app, issued.code)
    with pytest.raises(InvalidCodeError) as exc:
        check(app, issued.code)
    assert exc.value.code == 603


def test_only_keyed_hashes_are_stored(app):
    issued = issue(app)
    row = VerificationCode.objects.get()
    values = [str(v) for v in VerificationCode.objects.values_list().get()]
    assert issued.code not in " ".join(values)
    assert len(row.digest) == 64 and len(row.lookup) == 64


def test_every_check_compares_digests_in_constant_time(app, monkeypatch):
    compared = []

    real = codes.matches_any

    def spy(stored, submitted):
        (candidate,) = submitted  # one key configured: one candidate digest
        compared.append((stored, candidate))
        return real(stored, submitted)

    monkeypatch.setattr(codes, "matches_any", spy)
    issued = issue(app)
    wrong = f"{(int(issued.code) + 1) % 10**6:06d}"
    with pytest.raises(InvalidCodeError):
        check(app, wrong)
    check(app, issued.code)
    assert status_of(issued) == CodeStatus.USED
    stored = VerificationCode.objects.get().digest
    assert [s for s, _ in compared] == [stored, stored]
    assert compared[0][1] != stored and compared[1][1] == stored


def _statements(app, code, phone, compared):
    """The SQL a wrong verify runs (values stripped) and the digests it compares."""
    from django.test.utils import CaptureQueriesContext

    compared.clear()
    with CaptureQueriesContext(connection) as queries, pytest.raises(InvalidCodeError):
        check(app, code, phone=phone)
    return [q["sql"].split(" VALUES ")[0].split(" WHERE ")[0] for q in queries], len(compared)


def test_verify_does_the_same_work_with_or_without_a_live_code(app, monkeypatch):
    compared = []
    real = codes.matches_any

    def spy(stored, candidates):
        compared.append(stored)
        return real(stored, candidates)

    monkeypatch.setattr(codes, "matches_any", spy)
    issued = issue(app)
    wrong = f"{(int(issued.code) + 1) % 10**6:06d}"
    live = _statements(app, wrong, PHONE, compared)
    never_sent = _statements(app, wrong, OTHER, compared)  # inserts the counting row
    tried_before = _statements(app, wrong, OTHER, compared)
    assert live == never_sent == tried_before
    statements, digests = live
    assert digests == 1 and len(statements) == 2 and statements[1].startswith("INSERT")
    # The live code counted one wrong attempt; the other number's row is no code.
    assert VerificationCode.objects.get(pk=issued.row.pk).attempts == 1
    other = VerificationCode.objects.get(phone=OTHER)
    assert (other.status, other.digest, other.attempts) == (CodeStatus.EXPIRED, "", 2)


def test_wrong_attempts_at_a_number_without_a_code_change_nothing_for_later_codes(app):
    for _ in range(7):
        with pytest.raises(InvalidCodeError):
            check(app, "123456")
    assert VerificationCode.objects.get().attempts == 5  # counted up to the limit
    issued = issue(app)  # the send overwrites the row: a fresh code, no attempts
    assert VerificationCode.objects.get().attempts == 0
    check(app, issued.code)
    assert status_of(issued) == CodeStatus.USED


def test_counting_rows_of_numbers_without_a_code_are_dropped_after_a_day(app):
    with pytest.raises(InvalidCodeError):
        check(app, "123456", phone=OTHER)
    issued = issue(app)
    codes.expire_codes()
    assert VerificationCode.objects.count() == 2
    codes.expire_codes(now=timezone.now() + timedelta(days=1, seconds=1))
    assert list(VerificationCode.objects.values_list("pk", flat=True)) == [issued.row.pk]


def test_hash_depends_on_the_server_secret(app, settings):
    issued = issue(app)
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": ["another-secret" * 3]}
    with pytest.raises(InvalidCodeError):
        check(app, issued.code)


OLD_KEY, NEW_KEY = "old-secret-" * 4, "new-secret-" * 4


def test_rotated_keys_still_verify_codes_issued_under_the_old_key(app, settings):
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": [OLD_KEY]}
    before = issue(app)
    other = issue(app, phone=OTHER, purpose=CodePurpose.VERIFY_PHONE)
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": [NEW_KEY, OLD_KEY]}
    check(app, before.code)
    assert codes.verify_code_only(app=app, purpose=CodePurpose.VERIFY_PHONE,
                                  code=other.code).phone == OTHER
    # New codes are signed with the new key: dropping the old key keeps them valid.
    after = issue(app)
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": [NEW_KEY]}
    check(app, after.code)


def test_rotated_keys_decrypt_payloads_encrypted_under_the_old_key(settings):
    from sms_service.crypto import decrypt, encrypt

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": [OLD_KEY]}
    old = encrypt("【Demo】code 123456")
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": [NEW_KEY, OLD_KEY]}
    new = encrypt("【Demo】code 654321")
    assert (decrypt(old), decrypt(new)) == ("【Demo】code 123456", "【Demo】code 654321")
    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "SECRET_KEYS": [NEW_KEY]}
    assert decrypt(new) == "【Demo】code 654321"
    with pytest.raises(ValueError, match="any of the secret keys"):
        decrypt(old)


def test_five_wrong_attempts_kill_the_code(app):
    issued = issue(app)
    wrong = f"{(int(issued.code) + 1) % 10**6:06d}"
    for _ in range(5):
        with pytest.raises(InvalidCodeError):
            check(app, wrong)
    assert VerificationCode.objects.get().status == CodeStatus.DEAD
    with pytest.raises(InvalidCodeError):
        check(app, issued.code)  # even the right code is refused now


def test_four_wrong_attempts_still_allow_the_right_code(app):
    issued = issue(app)
    wrong = f"{(int(issued.code) + 1) % 10**6:06d}"
    for _ in range(4):
        with pytest.raises(InvalidCodeError):
            check(app, wrong)
    check(app, issued.code)
    assert status_of(issued) == CodeStatus.USED


@pytest.mark.parametrize(
    "phone, purpose",
    [
        (PHONE, CodePurpose.RESET_PASSWORD),
        (PHONE, CodePurpose.LOGIN),
        (PHONE, CodePurpose.VERIFY_PHONE),
        (OTHER, CodePurpose.SIGNUP),
    ],
)
def test_codes_are_bound_to_number_and_purpose(app, phone, purpose, draw_codes):
    draw_codes("111111", "222222")
    issued = issue(app, purpose=CodePurpose.SIGNUP)
    # An active code exists for the other (number, purpose) too: the signup code
    # still must not pass there.
    issue(app, phone=phone, purpose=purpose)
    with pytest.raises(InvalidCodeError):
        check(app, issued.code, phone=phone, purpose=purpose)


def test_login_code_does_not_pass_generic_verify(app):
    issued = issue(app, purpose=CodePurpose.LOGIN)
    with pytest.raises(InvalidCodeError):
        check(app, issued.code, purpose=CodePurpose.GENERIC)


def test_new_send_invalidates_earlier_codes(app, draw_codes):
    draw_codes("111111", "222222")
    first = issue(app)
    second = issue(app)
    # One row per number and purpose: the new code overwrote the old one.
    assert VerificationCode.objects.count() == 1 and first.row.pk == second.row.pk
    with pytest.raises(InvalidCodeError):
        check(app, "111111")
    check(app, "222222")
    assert status_of(second) == CodeStatus.USED


def test_a_code_carries_its_flow_data_until_the_next_send(app):
    first = codes.issue_code(app=app, phone=PHONE, purpose=CodePurpose.SIGNUP, ttl_minutes=10,
                             data={"username": "李雷", "step": 2})
    assert VerificationCode.objects.get(pk=first.row.pk).data == {"username": "李雷", "step": 2}
    again = issue(app, purpose=CodePurpose.SIGNUP)
    assert again.row.pk == first.row.pk
    assert VerificationCode.objects.get(pk=first.row.pk).data == {}


def test_a_new_send_after_a_dead_code_starts_afresh(app, draw_codes):
    draw_codes("111111", "222222")
    first = issue(app)
    for _ in range(5):
        with pytest.raises(InvalidCodeError):
            check(app, "999999")
    assert status_of(first) == CodeStatus.DEAD
    second = issue(app)
    row = VerificationCode.objects.get(pk=second.row.pk)
    assert (row.status, row.attempts, row.used_at) == (CodeStatus.ACTIVE, 0, None)
    check(app, "222222")
    assert status_of(second) == CodeStatus.USED


def test_codes_never_cross_apps(app):
    from sms_service.models import App

    other = App.objects.create(name="Other")
    issued = issue(app)
    with pytest.raises(InvalidCodeError):
        check(other, issued.code)


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "", None, 123456, "12 345"])
def test_malformed_codes_are_603(app, code):
    issue(app)
    with pytest.raises(InvalidCodeError):
        check(app, code)


class TestCodeOnlyLookup:
    """Calls that carry only the code: one active code matches, lookups are scarce."""

    def test_finds_the_one_active_code(self, app):
        issued = issue(app, purpose=CodePurpose.VERIFY_PHONE)
        issue(app, phone=OTHER, purpose=CodePurpose.VERIFY_PHONE)
        row = codes.verify_code_only(app=app, purpose=CodePurpose.VERIFY_PHONE, code=issued.code)
        assert row.phone == PHONE

    def test_a_code_live_for_another_number_is_drawn_again(self, lc, signature, outbox,
                                                           draw_codes):
        draw_codes("111111", "111111", "222222")
        for phone in ("18612345678", "18612345679"):
            assert lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone}).json() == {}
        assert [m.body[-30:].count("111111") for m in outbox] == [1, 0]
        assert "222222" in outbox[1].body
        assert VerificationCode.objects.filter(status=CodeStatus.ACTIVE).count() == 2

    def test_an_expired_code_gives_way_to_the_same_draw(self, lc, signature, outbox,
                                                         draw_codes):
        draw_codes("111111", "111111", "111111")
        lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "18612345678"})
        first = VerificationCode.objects.get()
        VerificationCode.objects.filter(pk=first.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": "18612345679"}).json() == {}
        assert "111111" in outbox[-1].body
        assert VerificationCode.objects.get(pk=first.pk).status == CodeStatus.EXPIRED

    def test_periodic_expiry_retires_old_codes(self, app):
        issued = issue(app)
        VerificationCode.objects.filter(pk=issued.row.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert codes.expire_codes() == 1
        assert VerificationCode.objects.get().status == CodeStatus.EXPIRED

    def test_lookups_are_rate_limited(self, app, clock):
        # The clock stands still: 31 lookups on a slow machine could otherwise
        # straddle the minute's boundary, where the window starts afresh.
        from sms_service.exceptions import TooManyRequestsError

        with pytest.raises(TooManyRequestsError):
            for _ in range(31):
                with pytest.raises(InvalidCodeError):
                    codes.verify_code_only(app=app, purpose=CodePurpose.RESET_PASSWORD,
                                           code="000000")


needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locking is only meaningful on PostgreSQL"
)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_correct_submissions_exactly_one_wins(app):
    for _ in range(5):
        assert _race_one_code(app, submitters=10) == ["603"] * 9 + ["ok"]


def _race_one_code(app, *, submitters: int) -> list[str]:
    issued = issue(app)
    barrier = threading.Barrier(submitters)
    results: list[str] = []

    def submit():
        try:
            barrier.wait()
            check(app, issued.code)
            results.append("ok")
        except InvalidCodeError:
            results.append("603")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)
