"""The phone-user services and adapter hooks other parts build on (imports, pages)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.hashers import make_password

from sms_service.adapter import DefaultSmsAdapter, get_adapter
from sms_service.exceptions import (
    DuplicateValueError,
    PhoneNumberTakenError,
    SessionRequiredError,
    UsernameTakenError,
    UserNotFoundError,
)
from sms_service.models import App, AppUser
from sms_service.services import users

pytestmark = pytest.mark.django_db

E164 = "+8618612345678"


class TestCreateMember:
    def test_keeps_object_id_dates_and_the_encoded_password(self, app):
        created = datetime(2019, 5, 1, 8, 30, tzinfo=UTC)
        member = users.create_member(
            app=app, username="imported", password_hash=make_password("old-pass"),
            phone="18612345678", phone_verified=True, email="i@example.com",
            email_verified=True, extra={"nickname": "Imp"}, object_id="5cc91c7a0237d7006f0b1c47",
            created_at=created,
        )
        member.refresh_from_db()
        assert member.object_id == "5cc91c7a0237d7006f0b1c47"
        assert member.created_at == created
        assert member.phone == E164 and member.phone_verified and member.email_verified
        assert member.extra == {"nickname": "Imp"}
        logged_in = users.login_with_password(app=app, username="imported", password="old-pass")
        assert logged_in.pk == member.pk

    def test_the_same_object_id_twice_is_refused(self, app):
        users.create_member(app=app, username="a", object_id="abc123")
        with pytest.raises(DuplicateValueError) as error:
            users.create_member(app=app, username="b", object_id="abc123")
        assert error.value.code == 137
        assert AppUser.objects.count() == 1

    def test_taken_username_and_number(self, app):
        users.create_member(app=app, username="a", phone="18612345678")
        with pytest.raises(UsernameTakenError):
            users.create_member(app=app, username="a")
        with pytest.raises(PhoneNumberTakenError):
            users.create_member(app=app, username="b", phone="+8618612345678")

    def test_without_a_password_nobody_can_log_in_with_one(self, app):
        member = users.create_member(app=app, username="a")
        assert not member.user.has_usable_password()


class TestAdapterHooks:
    def test_member_by_phone_stays_inside_the_app(self, app):
        other = App.objects.create(name="Other")
        mine = users.create_member(app=app, username="a", phone=E164)
        users.create_member(app=other, username="a", phone=E164)
        adapter = get_adapter()
        assert adapter.get_member_by_phone(app=app, phone=E164).pk == mine.pk
        assert adapter.get_member_by_phone(app=app, phone="+8618600000000") is None

    def test_set_phone_verified(self, app):
        member = users.create_member(app=app, username="a", phone=E164)
        get_adapter().set_phone_verified(member=member)
        member.refresh_from_db()
        assert member.phone_verified is True
        get_adapter().set_phone_verified(member=member, verified=False)
        member.refresh_from_db()
        assert member.phone_verified is False

    def test_a_project_adapter_names_host_users(self, app, settings):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE,
                                "ADAPTER": "tests.test_users_services.EmailNamedAdapter"}
        member = users.signup(app=app, username="alice", password="pw")
        assert member.user.username == "alice-at-demo"


class EmailNamedAdapter(DefaultSmsAdapter):
    def host_username(self, *, app, username):
        return f"{username}-at-{app.name.lower()}"


class TestSessions:
    def test_start_find_end(self, app):
        member = users.create_member(app=app, username="a")
        token = users.start_session(member=member)
        assert users.member_for_session(app=app, token=token).pk == member.pk
        users.end_sessions(member=member)
        with pytest.raises(UserNotFoundError):
            users.member_for_session(app=app, token=token)

    def test_missing_token(self, app):
        with pytest.raises(SessionRequiredError):
            users.member_for_session(app=app, token=None)

    def test_refresh_ends_the_old_sessions(self, app):
        member = users.create_member(app=app, username="a")
        old = users.start_session(member=member)
        new = users.refresh_session(member=member)
        assert users.member_for_session(app=app, token=new).pk == member.pk
        with pytest.raises(UserNotFoundError):
            users.member_for_session(app=app, token=old)


def test_a_host_user_in_two_apps_outlives_one_membership(app):
    from sms_service.models import AppUser as Member

    other = App.objects.create(name="Other")
    member = users.create_member(app=app, username="a")
    Member.objects.create(app=other, user=member.user, username="a")
    users.delete_member(member=member)
    assert Member.objects.filter(user=member.user).count() == 1
    member.user.refresh_from_db()  # still there


def test_prune_keeps_live_locks_and_recent_sessions(app, clock):
    from datetime import timedelta

    from sms_service.exceptions import PasswordMismatchError
    from sms_service.models import LoginLockout, UserSession
    from sms_service.tasks import prune_phone_users

    member = users.create_member(app=app, username="a", password="pw")
    for name in ("a", "nobody"):
        with pytest.raises((PasswordMismatchError, UserNotFoundError)):
            users.login_with_password(app=app, username=name, password="wrong")
    for _ in range(5):
        with pytest.raises(PasswordMismatchError):
            users.login_with_password(app=app, username="a", password="wrong")
    token = users.start_session(member=member)
    users.end_sessions(member=member)
    users.start_session(member=member)

    clock.shift(timedelta(minutes=16))
    # "a" fails again now (its lock is over: a new window starts); the single
    # failure of "nobody" is over and goes.
    with pytest.raises(PasswordMismatchError):
        users.login_with_password(app=app, username="a", password="wrong")
    assert prune_phone_users() == {"lockouts": 1, "sessions": 0}
    assert list(LoginLockout.objects.values_list("account", flat=True)) == [
        f"member:{member.object_id}"]

    clock.shift(timedelta(days=31))
    assert prune_phone_users() == {"lockouts": 1, "sessions": 1}
    assert UserSession.objects.filter(revoked_at__isnull=True).count() == 1
    with pytest.raises(UserNotFoundError):
        users.member_for_session(app=app, token=token)
