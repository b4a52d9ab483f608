"""The admin of phone users: members per app, sessions with revoke, lockouts."""

from __future__ import annotations

import pytest

from sms_service.exceptions import (
    LoginLockedError,
    PasswordMismatchError,
    UserNotFoundError,
)
from sms_service.models import App, LoginLockout, UserSession
from sms_service.services import users

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(app):
    return users.create_member(app=app, username="alice", password="pw",
                               phone="18612345678", phone_verified=True)


def test_members_listed_with_number_verified_flag_and_sessions(admin_client, app, member):
    users.start_session(member=member)
    other = App.objects.create(name="Other")
    users.create_member(app=other, username="bob")
    response = admin_client.get(f"/admin/sms_service/appuser/?app__id__exact={app.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "alice" in html and "+8618612345678" in html and "bob" not in html
    [row] = response.context["cl"].result_list
    assert row.pk == member.pk
    change = admin_client.get(f"/admin/sms_service/appuser/{member.pk}/change/")
    assert change.status_code == 200
    assert f"/admin/auth/user/{member.user_id}/change/" in change.content.decode()
    assert "token_hash" not in change.content.decode()


def test_revoking_sessions_from_the_admin_logs_the_member_out(admin_client, app, member):
    token = users.start_session(member=member)
    session = UserSession.objects.get(member=member)
    response = admin_client.post("/admin/sms_service/usersession/", {
        "action": "revoke", "_selected_action": [session.pk]})
    assert response.status_code == 302
    with pytest.raises(UserNotFoundError):
        users.member_for_session(app=app, token=token)


def test_ending_all_sessions_of_a_member(admin_client, app, member):
    tokens = [users.start_session(member=member) for _ in range(2)]
    admin_client.post("/admin/sms_service/appuser/", {
        "action": "end_sessions", "_selected_action": [member.pk]})
    assert not UserSession.objects.filter(revoked_at__isnull=True).exists()
    for token in tokens:
        with pytest.raises(UserNotFoundError):
            users.member_for_session(app=app, token=token)


def test_lifting_a_lockout(admin_client, app, member):
    for _ in range(6):
        with pytest.raises(PasswordMismatchError):
            users.login_with_password(app=app, username="alice", password="wrong")
    with pytest.raises(LoginLockedError):
        users.login_with_password(app=app, username="alice", password="pw")
    listing = admin_client.get("/admin/sms_service/loginlockout/")
    assert f"member:{member.object_id}" in listing.content.decode()
    lockout = LoginLockout.objects.get()
    admin_client.post("/admin/sms_service/loginlockout/", {
        "action": "lift", "_selected_action": [lockout.pk]})
    assert users.login_with_password(app=app, username="alice", password="pw").pk == member.pk


def test_account_settings_group_the_four_options_as_the_console(admin_client, app):
    response = admin_client.get(f"/admin/sms_service/app/{app.pk}/change/")
    fieldsets = {fieldset.name: list(fieldset.fields)
                 for fieldset in response.context["adminform"]}
    assert fieldsets["Account settings"] == [
        "signup_sends_verification", "forbid_unverified_login", "allow_unverified_reset",
        "allow_sms_login",
    ]
    page = response.content.decode()
    for label in (
        "Send verification SMS when users register or change phone numbers from clients",
        "Do not allow users with unverified phone numbers to log in",
        "Allow users with unverified phone numbers to reset passwords with SMS",
        "Allow users with verified phone numbers to login with SMS",
    ):
        assert label in page


def test_deleting_a_member_frees_its_username(admin_client, app, member):
    from django.contrib.auth import get_user_model

    response = admin_client.post("/admin/sms_service/appuser/", {
        "action": "delete_selected", "_selected_action": [member.pk], "post": "yes"})
    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=member.user_id).exists()
    again = users.signup(app=app, username="alice", password="pw")
    assert again.username == "alice"
