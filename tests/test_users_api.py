"""Phone users over the LeanCloud wire: sign-up, log-in, sessions, account options."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in

from sms_service import signals
from sms_service.models import App, AppUser, LoginLockout, UserSession

PHONE = "18612345678"
E164 = "+8618612345678"
OTHER = "18687654321"
OTHER_E164 = "+8618687654321"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CODE_IN_TEXT = re.compile(r"验证码是：(\d{6})，")

pytestmark = pytest.mark.django_db


def code_sent_to(outbox, phone: str) -> str:
    """The code of the last message sent to ``phone``."""
    [*_, message] = [m for m in outbox if m.to == phone]
    return CODE_IN_TEXT.search(message.body).group(1)


def session(token: str) -> dict:
    return {"HTTP_X_LC_SESSION": token}


def signup(lc, **fields):
    body = {"username": "alice", "password": "s3cret!", **fields}
    return lc.post("/1.1/users", body)


@pytest.fixture
def sms_login(app):
    app.allow_sms_login = True
    app.save()
    return app


@pytest.fixture
def other_app(db) -> App:
    return App.objects.create(name="Other", company_name="Other Ltd")


class TestSignUp:
    def test_sign_up_answers_the_user_with_a_session(self, lc, signature, outbox):
        response = signup(lc, email="alice@example.com", mobilePhoneNumber=PHONE,
                          nickname="Al", age=30)

        assert response.status_code == 201
        data = response.json()
        assert "password" not in data
        assert data["username"] == "alice"
        assert data["email"] == "alice@example.com"
        assert data["mobilePhoneNumber"] == E164
        assert data["mobilePhoneVerified"] is False
        assert data["emailVerified"] is False
        assert data["nickname"] == "Al" and data["age"] == 30
        assert re.fullmatch(r"[a-z0-9]{24}", data["objectId"])
        assert ISO_MS.match(data["createdAt"]) and ISO_MS.match(data["updatedAt"])
        assert re.fullmatch(r"[a-z0-9]{32}", data["sessionToken"])
        member = AppUser.objects.get(object_id=data["objectId"])
        assert member.user.check_password("s3cret!")
        # The session token itself is never stored.
        assert not UserSession.objects.filter(token_hash=data["sessionToken"]).exists()
        # "Send verification SMS on sign-up" is on by default.
        assert [m.to for m in outbox] == [E164]
        assert "验证手机号" in outbox[0].body

    def test_no_verification_sms_when_the_option_is_off(self, lc, app, signature, outbox):
        app.signup_sends_verification = False
        app.save()
        assert signup(lc, mobilePhoneNumber=PHONE).status_code == 201
        assert outbox == []

    def test_a_failed_verification_send_keeps_the_sign_up(self, lc, app, outbox):
        # No signature: the send fails (605), the sign-up stands.
        response = signup(lc, mobilePhoneNumber=PHONE)
        assert response.status_code == 201
        assert AppUser.objects.filter(app=app, phone=E164).exists()
        assert outbox == []

    def test_usernames_are_per_app_on_one_host_user_table(self, lc, app, other_app):
        assert signup(lc).status_code == 201
        lc.app = other_app
        assert signup(lc).status_code == 201
        names = set(get_user_model().objects.values_list("username", flat=True))
        assert names == {f"app{app.pk}.alice", f"app{other_app.pk}.alice"}

    @pytest.mark.parametrize("fields, code", [
        ({"username": None}, 200),
        ({"password": None}, 201),
        ({"username": "  "}, 217),
        ({"username": 42}, 217),
        ({"password": ""}, 218),
        ({"email": "not-an-email"}, 125),
        ({"mobilePhoneNumber": "12345"}, 127),
        ({"bad key": 1}, 1),
    ])
    def test_bad_input_is_refused_and_nothing_is_written(self, lc, fields, code):
        body = {"username": "alice", "password": "pw", **fields}
        body = {k: v for k, v in body.items() if v is not None}
        response = lc.post("/1.1/users", body)
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert AppUser.objects.count() == 0
        assert get_user_model().objects.count() == 0

    @pytest.mark.parametrize("fields, code", [
        ({"username": "alice"}, 202),
        ({"username": "bob", "email": "a@example.com"}, 203),
        ({"username": "bob", "mobilePhoneNumber": "+86" + PHONE}, 214),
    ])
    def test_taken_values(self, lc, app, fields, code):
        app.signup_sends_verification = False
        app.save()
        assert signup(lc, email="a@example.com", mobilePhoneNumber=PHONE).status_code == 201
        response = signup(lc, **fields)
        assert response.json()["code"] == code
        assert AppUser.objects.count() == 1
        assert get_user_model().objects.count() == 1


class TestPasswordLogin:
    @pytest.fixture
    def alice(self, lc, app):
        app.signup_sends_verification = False
        app.save()
        return signup(lc, email="alice@example.com", mobilePhoneNumber=PHONE).json()

    @pytest.mark.parametrize("identity", [
        {"username": "alice"}, {"email": "alice@example.com"},
        {"mobilePhoneNumber": PHONE}, {"mobilePhoneNumber": E164},
    ])
    def test_login_with_each_identity(self, lc, alice, identity):
        response = lc.post("/1.1/login", {**identity, "password": "s3cret!"})
        assert response.status_code == 200
        data = response.json()
        assert data["objectId"] == alice["objectId"]
        assert data["sessionToken"] != alice["sessionToken"]
        me = lc.get("/1.1/users/me", **session(data["sessionToken"]))
        assert me.json()["objectId"] == alice["objectId"]

    def test_wrong_password_and_unknown_user(self, lc, alice):
        wrong = lc.post("/1.1/login", {"username": "alice", "password": "nope"})
        assert wrong.status_code == 400
        assert wrong.json() == {"code": 210, "error": "The username and password mismatch."}
        unknown = lc.post("/1.1/login", {"username": "zed", "password": "nope"})
        assert unknown.json() == {"code": 211, "error": "Could not find user."}

    def test_missing_fields(self, lc, alice):
        assert lc.post("/1.1/login", {"password": "x"}).json()["code"] == 200
        assert lc.post("/1.1/login", {"username": "alice"}).json()["code"] == 201

    def test_inactive_host_user_cannot_log_in(self, lc, alice):
        AppUser.objects.filter(object_id=alice["objectId"]).get().user.__class__.objects.update(
            is_active=False)
        response = lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"})
        assert response.json()["code"] == 211
        assert lc.get("/1.1/users/me", **session(alice["sessionToken"])).json()["code"] == 211

    def test_forbid_unverified_login_covers_phone_logins_only(self, lc, app, alice):
        app.forbid_unverified_login = True
        app.save()
        by_phone = lc.post("/1.1/login", {"mobilePhoneNumber": PHONE, "password": "s3cret!"})
        assert by_phone.json() == {"code": 215, "error": "Mobile phone number isn't verified."}
        by_name = lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"})
        assert by_name.status_code == 200

    def test_password_of_one_app_does_not_open_another(self, lc, alice, other_app):
        lc.app = other_app
        response = lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"})
        assert response.json()["code"] == 211

    def test_legacy_get_login(self, lc, alice):
        response = lc.get("/1.1/login?username=alice&password=s3cret!")
        assert response.status_code == 200
        assert response.json()["objectId"] == alice["objectId"]

    def test_django_user_logged_in_and_our_signal(self, lc, alice):
        seen, ours = [], []

        def receiver(sender, request, user, **kwargs):
            seen.append((user.pk, request.path))

        def member_receiver(sender, app, member, method, **kwargs):
            ours.append((member.object_id, method))

        user_logged_in.connect(receiver)
        signals.member_logged_in.connect(member_receiver)
        try:
            lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"})
        finally:
            user_logged_in.disconnect(receiver)
            signals.member_logged_in.disconnect(member_receiver)
        member = AppUser.objects.get(object_id=alice["objectId"])
        assert seen == [(member.user_id, "/1.1/login")]
        assert ours == [(alice["objectId"], "password")]
        member.user.refresh_from_db()
        assert member.user.last_login is not None  # Django's update_last_login ran


class TestSessions:
    @pytest.fixture
    def alice(self, lc):
        return signup(lc).json()

    def test_session_header_or_query(self, lc, alice):
        token = alice["sessionToken"]
        by_header = lc.get("/1.1/users/me", **session(token))
        by_query = lc.get(f"/1.1/users/me?session_token={token}")
        assert by_header.status_code == by_query.status_code == 200
        assert by_header.json() == by_query.json()
        assert by_header.json()["sessionToken"] == token

    def test_missing_and_wrong_sessions(self, lc, alice):
        missing = lc.get("/1.1/users/me")
        assert missing.status_code == 403
        assert missing.json()["code"] == 206
        wrong = lc.get("/1.1/users/me", **session("x" * 32))
        assert wrong.status_code == 400
        assert wrong.json() == {"code": 211, "error": "Could not find user."}

    def test_session_of_one_app_does_not_open_another(self, lc, alice, other_app):
        lc.app = other_app
        response = lc.get("/1.1/users/me", **session(alice["sessionToken"]))
        assert response.json()["code"] == 211

    def test_revoked_session_is_refused(self, lc, alice):
        UserSession.objects.update(revoked_at="2020-01-01T00:00:00Z")
        assert lc.get("/1.1/users/me", **session(alice["sessionToken"])).json()["code"] == 211


class TestUsersByMobilePhone:
    def _generic_code(self, lc, outbox, phone=PHONE):
        assert lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": phone}).status_code == 200
        return code_sent_to(outbox, "+86" + phone)

    def test_sign_up_then_log_in(self, lc, app, signature, sms_login, outbox, clock):
        code = self._generic_code(lc, outbox)
        first = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE, "smsCode": code})
        assert first.status_code == 201
        data = first.json()
        assert data["username"] == E164
        assert data["mobilePhoneNumber"] == E164
        assert data["mobilePhoneVerified"] is True
        member = AppUser.objects.get(app=app, phone=E164)
        assert not member.user.has_usable_password()

        clock.shift(timedelta(seconds=61))
        code = self._generic_code(lc, outbox)
        again = lc.post("/1.1/usersByMobilePhone",
                        {"mobilePhoneNumber": E164, "smsCode": code, "password": "ignored"})
        assert again.status_code == 200
        assert again.json()["objectId"] == data["objectId"]
        assert again.json()["sessionToken"] != data["sessionToken"]
        member.user.refresh_from_db()
        assert not member.user.has_usable_password()  # password only counts on sign-up
        assert AppUser.objects.count() == 1

    def test_sign_up_with_username_password_and_fields(self, lc, signature, outbox):
        code = self._generic_code(lc, outbox)
        response = lc.post("/1.1/usersByMobilePhone", {
            "mobilePhoneNumber": PHONE, "smsCode": code, "username": "bob",
            "password": "pw", "city": "Beijing",
        })
        assert response.status_code == 201
        assert response.json()["username"] == "bob"
        assert response.json()["city"] == "Beijing"
        login = lc.post("/1.1/login", {"username": "bob", "password": "pw"})
        assert login.status_code == 200

    def test_wrong_or_reused_code_creates_nobody(self, lc, signature, sms_login, outbox):
        code = self._generic_code(lc, outbox)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        response = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE,
                                                       "smsCode": wrong})
        assert response.json() == {"code": 603, "error": "Invalid SMS code."}
        assert AppUser.objects.count() == 0
        assert lc.post("/1.1/usersByMobilePhone",
                       {"mobilePhoneNumber": PHONE, "smsCode": code}).status_code == 201
        reused = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE,
                                                     "smsCode": code})
        assert reused.json()["code"] == 603
        assert AppUser.objects.count() == 1

    def test_a_code_for_another_number_is_refused(self, lc, signature, outbox):
        code = self._generic_code(lc, outbox)
        response = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": OTHER,
                                                       "smsCode": code})
        assert response.json()["code"] == 603
        assert AppUser.objects.count() == 0

    def test_taken_username_keeps_the_code(self, lc, app, signature, outbox):
        app.signup_sends_verification = False
        app.save()
        signup(lc, username="bob")
        code = self._generic_code(lc, outbox)
        taken = lc.post("/1.1/usersByMobilePhone",
                        {"mobilePhoneNumber": PHONE, "smsCode": code, "username": "bob"})
        assert taken.json()["code"] == 202
        ok = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE, "smsCode": code})
        assert ok.status_code == 201

    def test_existing_member_needs_sms_login_enabled(self, lc, app, signature, outbox, clock):
        code = self._generic_code(lc, outbox)
        lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE, "smsCode": code})
        clock.shift(timedelta(seconds=61))
        code = self._generic_code(lc, outbox)
        response = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE,
                                                       "smsCode": code})
        assert response.json()["code"] == 119


class TestSmsCodeLogin:
    @pytest.fixture
    def member(self, lc, app, signature, sms_login):
        app.signup_sends_verification = False
        app.save()
        data = signup(lc, mobilePhoneNumber=PHONE).json()
        AppUser.objects.filter(object_id=data["objectId"]).update(phone_verified=True)
        return data

    def test_request_and_log_in(self, lc, member, outbox):
        response = lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": PHONE})
        assert response.status_code == 200 and response.json() == {}
        code = code_sent_to(outbox, E164)
        assert "登录" in outbox[-1].body
        login = lc.post("/1.1/login", {"mobilePhoneNumber": PHONE, "smsCode": code})
        assert login.status_code == 200
        assert login.json()["objectId"] == member["objectId"]
        again = lc.post("/1.1/login", {"mobilePhoneNumber": PHONE, "smsCode": code})
        assert again.json()["code"] == 603

    def test_a_login_code_does_not_sign_up_or_verify(self, lc, member, outbox):
        lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": PHONE})
        code = code_sent_to(outbox, E164)
        response = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE,
                                                       "smsCode": code})
        assert response.json()["code"] == 603
        generic = lc.post(f"/1.1/verifySmsCode/{code}", {"mobilePhoneNumber": PHONE})
        assert generic.json()["code"] == 603
        assert lc.post("/1.1/login", {"mobilePhoneNumber": PHONE,
                                      "smsCode": code}).status_code == 200

    def test_unknown_and_unverified_numbers(self, lc, member, outbox):
        unknown = lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": OTHER})
        assert unknown.json() == {
            "code": 213,
            "error": "A user with the specified mobile phone number was not found.",
        }
        AppUser.objects.update(phone_verified=False)
        unverified = lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": PHONE})
        assert unverified.json()["code"] == 215
        assert outbox == []

    def test_option_off(self, lc, app, member, outbox):
        app.allow_sms_login = False
        app.save()
        response = lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": PHONE})
        assert response.json()["code"] == 119
        assert outbox == []

    def test_concealed_accounts_answer_like_success(self, lc, member, outbox, settings):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "CONCEAL_ACCOUNTS": True}
        unknown = lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": OTHER})
        assert unknown.status_code == 200 and unknown.json() == {}
        assert outbox == []
        login = lc.post("/1.1/login", {"username": "nobody", "password": "x"})
        assert login.json()["code"] == 210

    def test_missing_number(self, lc, member):
        assert lc.post("/1.1/requestLoginSmsCode", {}).json()["code"] == 212


class TestLockout:
    @pytest.fixture
    def alice(self, lc):
        return signup(lc, mobilePhoneNumber=PHONE).json()

    def _fail(self, lc, times):
        for _ in range(times):
            response = lc.post("/1.1/login", {"username": "alice", "password": "wrong"})
            assert response.json()["code"] == 210

    def test_six_failures_lock_the_account_for_fifteen_minutes(self, lc, app, alice, clock):
        locked = []
        signals.member_locked_out.connect(
            receiver := lambda sender, **kw: locked.append(kw["account"]))
        try:
            self._fail(lc, 6)
        finally:
            signals.member_locked_out.disconnect(receiver)
        assert locked == [f"member:{alice['objectId']}"]
        response = lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"})
        assert response.status_code == 400
        assert response.json()["code"] == 219
        assert int(response["Retry-After"]) == 900
        # The account is locked whichever identity names it.
        phone_login = lc.post("/1.1/login", {"mobilePhoneNumber": PHONE, "password": "s3cret!"})
        assert phone_login.json()["code"] == 219

        clock.shift(timedelta(minutes=15, seconds=1))
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).status_code == 200
        assert not LoginLockout.objects.exists()

    def test_success_resets_the_count(self, lc, alice, clock):
        self._fail(lc, 5)
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).status_code == 200
        self._fail(lc, 5)
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).status_code == 200

    def test_failures_outside_the_window_do_not_add_up(self, lc, alice, clock):
        self._fail(lc, 5)
        clock.shift(timedelta(minutes=16))
        self._fail(lc, 5)
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).status_code == 200

    def test_lockout_is_per_app(self, lc, app, alice, other_app, clock):
        self._fail(lc, 6)
        lc.app = other_app
        signup(lc)
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).status_code == 200


class TestIpLimits:
    def test_login_and_code_endpoints_share_a_per_ip_window(self, lc, settings, clock):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "USER_IP_LIMITS": [(60, 3)]}
        for _ in range(2):
            assert lc.post("/1.1/login", {"username": "x", "password": "y"}).json()["code"] == 211
        assert lc.post("/1.1/requestLoginSmsCode",
                       {"mobilePhoneNumber": PHONE}).json()["code"] == 119
        refused = lc.post("/1.1/usersByMobilePhone", {"mobilePhoneNumber": PHONE,
                                                      "smsCode": "123456"})
        assert refused.status_code == 429
        assert refused.json() == {"code": 429, "error": "Too many requests."}
        assert int(refused["Retry-After"]) >= 1
        clock.shift(timedelta(seconds=61))
        assert lc.post("/1.1/login", {"username": "x", "password": "y"}).json()["code"] == 211


class TestCodeLoginLockout:
    def test_wrong_login_codes_count_towards_the_lockout(self, lc, app, signature, sms_login,
                                                         outbox, clock):
        app.signup_sends_verification = False
        app.save()
        data = signup(lc, mobilePhoneNumber=PHONE).json()
        AppUser.objects.filter(object_id=data["objectId"]).update(phone_verified=True)
        for _ in range(6):
            clock.shift(timedelta(seconds=61))
            lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": PHONE})
            code = code_sent_to(outbox, E164)
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            assert lc.post("/1.1/login", {"mobilePhoneNumber": PHONE,
                                          "smsCode": wrong}).json()["code"] == 603
        clock.shift(timedelta(seconds=61))
        lc.post("/1.1/requestLoginSmsCode", {"mobilePhoneNumber": PHONE})
        code = code_sent_to(outbox, E164)
        locked = lc.post("/1.1/login", {"mobilePhoneNumber": PHONE, "smsCode": code})
        assert locked.json()["code"] == 219
        by_password = lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"})
        assert by_password.json()["code"] == 219


class TestQueryCounts:
    def test_session_lookup_and_login(self, lc, django_assert_max_num_queries):
        alice = signup(lc).json()
        lc.get("/1.1/users/me", **session(alice["sessionToken"]))  # the app is cached now
        with django_assert_max_num_queries(1):
            assert lc.get("/1.1/users/me", **session(alice["sessionToken"])).status_code == 200
        # member, lockout check, new session, Django's update_last_login
        with django_assert_max_num_queries(4):
            assert lc.post("/1.1/login", {"username": "alice",
                                          "password": "s3cret!"}).status_code == 200
