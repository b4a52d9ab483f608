"""Phone-user flows over the wire: own record, passwords, sessions, verifying,
resetting and changing numbers by SMS code, and the options that gate them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sms_service import signals
from sms_service.models import AppUser, LoginLockout, UserSession, VerificationCode
from tests.test_users_api import (
    E164,
    OTHER,
    OTHER_E164,
    PHONE,
    code_sent_to,
    session,
    signup,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(lc, signature, outbox):
    """alice, signed up with a number (which got a verification code)."""
    data = signup(lc, mobilePhoneNumber=PHONE, email="alice@example.com").json()
    data["verify_code"] = code_sent_to(outbox, E164)
    return data


@pytest.fixture
def verified(alice):
    AppUser.objects.filter(object_id=alice["objectId"]).update(phone_verified=True)
    return alice


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


class TestOwnRecord:
    def test_get_with_its_session(self, lc, alice):
        response = lc.get(f"/1.1/users/{alice['objectId']}", **session(alice["sessionToken"]))
        assert response.status_code == 200
        assert response.json()["username"] == "alice"
        assert "password" not in response.json()

    def test_another_members_record_is_refused(self, lc, alice, app):
        bob = signup(lc, username="bob").json()
        for method in ("get", "put"):
            response = lc.request(method.upper(), f"/1.1/users/{bob['objectId']}",
                                  {"nickname": "x"}, **session(alice["sessionToken"]))
            assert response.status_code == 403
            assert response.json()["code"] == 206
        assert AppUser.objects.get(object_id=bob["objectId"]).extra == {}

    def test_without_a_session(self, lc, alice):
        response = lc.request("PUT", f"/1.1/users/{alice['objectId']}", {"nickname": "x"})
        assert response.status_code == 403
        assert response.json()["code"] == 206
        unknown = lc.get("/1.1/users/nosuchid", **session(alice["sessionToken"]))
        assert unknown.json()["code"] == 211

    def test_master_key_reads_any_member(self, lc, alice):
        response = lc.get(f"/1.1/users/{alice['objectId']}", master=True)
        assert response.status_code == 200
        assert "sessionToken" not in response.json()

    def test_put_changes_fields_username_and_deletes(self, lc, app, alice):
        path = f"/1.1/classes/_User/{alice['objectId']}"
        response = lc.request("PUT", path, {"nickname": "Al", "city": "Shanghai",
                                            "username": "alice2"},
                              **session(alice["sessionToken"]))
        assert response.status_code == 200
        assert set(response.json()) == {"objectId", "updatedAt"}
        lc.request("PUT", path, {"city": {"__op": "Delete"}}, **session(alice["sessionToken"]))
        member = AppUser.objects.get(object_id=alice["objectId"])
        assert member.username == "alice2"
        assert member.extra == {"nickname": "Al"}
        assert member.user.username == f"app{app.pk}.alice2"
        login = lc.post("/1.1/login", {"username": "alice2", "password": "s3cret!"})
        assert login.status_code == 200

    def test_put_an_email_reaches_the_host_user(self, lc, alice):
        response = lc.request("PUT", f"/1.1/users/{alice['objectId']}",
                              {"email": "new@example.com"}, **session(alice["sessionToken"]))
        assert response.status_code == 200
        member = AppUser.objects.select_related("user").get(object_id=alice["objectId"])
        assert member.email == member.user.email == "new@example.com"
        assert lc.post("/1.1/login", {"email": "new@example.com",
                                      "password": "s3cret!"}).status_code == 200

    def test_put_a_new_number_unverifies_it_and_sends_a_code(self, lc, verified, outbox,
                                                              clock):
        response = lc.request("PUT", f"/1.1/users/{verified['objectId']}",
                              {"mobilePhoneNumber": OTHER}, **session(verified["sessionToken"]))
        assert response.status_code == 200
        member = AppUser.objects.get(object_id=verified["objectId"])
        assert (member.phone, member.phone_verified) == (OTHER_E164, False)
        assert [m.to for m in outbox][-1] == OTHER_E164

    def test_put_a_taken_number_changes_nothing(self, lc, app, alice):
        bob = signup(lc, username="bob").json()
        response = lc.request("PUT", f"/1.1/users/{bob['objectId']}",
                              {"mobilePhoneNumber": PHONE, "nickname": "B"},
                              **session(bob["sessionToken"]))
        assert response.json()["code"] == 214
        bob_row = AppUser.objects.get(object_id=bob["objectId"])
        assert bob_row.phone is None and bob_row.extra == {}


class TestPasswordsAndSessions:
    def test_update_password(self, lc, alice):
        path = f"/1.1/users/{alice['objectId']}/updatePassword"
        wrong = lc.request("PUT", path, {"old_password": "nope", "new_password": "n3w"},
                           **session(alice["sessionToken"]))
        assert wrong.json()["code"] == 210
        ok = lc.request("PUT", path, {"old_password": "s3cret!", "new_password": "n3w"},
                        **session(alice["sessionToken"]))
        assert ok.status_code == 200
        assert ok.json()["sessionToken"] == alice["sessionToken"]
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "n3w"}).status_code == 200
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).json()["code"] == 210

    def test_refresh_session_token_ends_the_old_ones(self, lc, alice):
        second = lc.post("/1.1/login", {"username": "alice", "password": "s3cret!"}).json()
        response = lc.request("PUT", f"/1.1/users/{alice['objectId']}/refreshSessionToken",
                              **session(alice["sessionToken"]))
        assert response.status_code == 200
        new = response.json()["sessionToken"]
        assert new not in (alice["sessionToken"], second["sessionToken"])
        for old in (alice["sessionToken"], second["sessionToken"]):
            assert lc.get("/1.1/users/me", **session(old)).json()["code"] == 211
        assert lc.get("/1.1/users/me", **session(new)).status_code == 200


class TestVerifyPhone:
    def test_verify_with_the_number(self, lc, alice):
        response = lc.post(f"/1.1/verifyMobilePhone/{alice['verify_code']}",
                           {"mobilePhoneNumber": PHONE})
        assert response.status_code == 200
        assert set(response.json()) == {"objectId", "updatedAt"}
        assert response.json()["objectId"] == alice["objectId"]
        assert AppUser.objects.get(object_id=alice["objectId"]).phone_verified is True

    def test_verify_with_a_null_body_and_no_session(self, lc, alice):
        response = lc.post(f"/1.1/verifyMobilePhone/{alice['verify_code']}", raw="null")
        assert response.status_code == 200
        assert response.json()["objectId"] == alice["objectId"]
        assert AppUser.objects.get(object_id=alice["objectId"]).phone_verified is True

    def test_a_session_narrows_to_its_number(self, lc, app, alice, outbox, clock):
        bob = signup(lc, username="bob", mobilePhoneNumber=OTHER).json()
        bob_code = code_sent_to(outbox, OTHER_E164)
        # alice's session with bob's code: refused, bob's code still works.
        refused = lc.post(f"/1.1/verifyMobilePhone/{bob_code}", raw="null",
                          **session(alice["sessionToken"]))
        assert refused.json()["code"] == 603
        ok = lc.post(f"/1.1/verifyMobilePhone/{bob_code}", raw="null",
                     **session(bob["sessionToken"]))
        assert ok.json()["objectId"] == bob["objectId"]
        assert AppUser.objects.get(object_id=alice["objectId"]).phone_verified is False

    def test_a_code_of_another_purpose_or_app_is_refused(self, lc, app, alice, outbox,
                                                         clock):
        clock.shift(timedelta(seconds=61))
        lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": PHONE})
        generic = code_sent_to(outbox, E164)
        assert lc.post(f"/1.1/verifyMobilePhone/{generic}",
                       {"mobilePhoneNumber": PHONE}).json()["code"] == 603
        assert lc.post(f"/1.1/verifyMobilePhone/{generic}", raw="null").json()["code"] == 603

    def test_request_sends_nothing_to_a_verified_number(self, lc, verified, outbox, clock):
        clock.shift(timedelta(seconds=61))
        before = len(outbox)
        response = lc.post("/1.1/requestMobilePhoneVerify", {"mobilePhoneNumber": PHONE})
        assert response.status_code == 200 and response.json() == {}
        assert len(outbox) == before

    def test_request_for_an_unverified_number(self, lc, alice, outbox, clock):
        clock.shift(timedelta(seconds=61))
        response = lc.post("/1.1/requestMobilePhoneVerify", {"mobilePhoneNumber": PHONE})
        assert response.json() == {}
        code = code_sent_to(outbox, E164)
        assert code != alice["verify_code"]
        assert lc.post(f"/1.1/verifyMobilePhone/{alice['verify_code']}",
                       raw="null").json()["code"] == 603  # the new code replaced it
        assert lc.post(f"/1.1/verifyMobilePhone/{code}", raw="null").status_code == 200

    def test_unknown_number(self, lc, alice, settings):
        response = lc.post("/1.1/requestMobilePhoneVerify", {"mobilePhoneNumber": OTHER})
        assert response.json()["code"] == 213
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "CONCEAL_ACCOUNTS": True}
        concealed = lc.post("/1.1/requestMobilePhoneVerify", {"mobilePhoneNumber": OTHER})
        assert concealed.status_code == 200 and concealed.json() == {}

    def test_signal(self, lc, alice):
        seen = []
        signals.member_phone_verified.connect(
            receiver := lambda sender, **kw: seen.append((kw["member"].object_id, kw["phone"])))
        try:
            lc.post(f"/1.1/verifyMobilePhone/{alice['verify_code']}", raw="null")
        finally:
            signals.member_phone_verified.disconnect(receiver)
        assert seen == [(alice["objectId"], E164)]


class TestPasswordReset:
    def _request(self, lc, outbox, clock):
        clock.shift(timedelta(seconds=61))
        response = lc.post("/1.1/requestPasswordResetBySmsCode", {"mobilePhoneNumber": PHONE})
        assert response.status_code == 200, response.json()
        assert "重置密码" in outbox[-1].body
        return code_sent_to(outbox, E164)

    @pytest.mark.parametrize("method", ["PUT", "POST"])
    def test_reset_with_the_password_only(self, lc, verified, outbox, clock, method):
        code = self._request(lc, outbox, clock)
        response = lc.request(method, f"/1.1/resetPasswordBySmsCode/{code}",
                              {"password": "n3w-pass"})
        assert response.status_code == 200 and response.json() == {}
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "n3w-pass"}).status_code == 200
        # The old sessions ended.
        assert lc.get("/1.1/users/me",
                      **session(verified["sessionToken"])).json()["code"] == 211

    def test_reset_with_the_number_and_a_wrong_code(self, lc, verified, outbox, clock):
        code = self._request(lc, outbox, clock)
        wrong = lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{other_code(code)}",
                           {"password": "n3w", "mobilePhoneNumber": PHONE})
        assert wrong.json()["code"] == 603
        assert AppUser.objects.get().user.check_password("s3cret!")
        ok = lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{code}",
                        {"password": "n3w", "mobilePhoneNumber": PHONE})
        assert ok.status_code == 200

    def test_blank_password_keeps_the_code(self, lc, verified, outbox, clock):
        code = self._request(lc, outbox, clock)
        blank = lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{code}", {"password": " "})
        assert blank.json()["code"] == 218
        missing = lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{code}", raw="null")
        assert missing.json()["code"] == 201
        assert lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{code}",
                          {"password": "ok"}).status_code == 200

    def test_a_verification_code_does_not_reset(self, lc, alice):
        response = lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{alice['verify_code']}",
                              {"password": "n3w"})
        assert response.json()["code"] == 603

    def test_unverified_numbers_need_the_option(self, lc, app, alice, outbox, clock):
        clock.shift(timedelta(seconds=61))
        refused = lc.post("/1.1/requestPasswordResetBySmsCode", {"mobilePhoneNumber": PHONE})
        assert refused.json() == {"code": 215, "error": "Mobile phone number isn't verified."}
        app.allow_unverified_reset = True
        app.save()
        code = self._request(lc, outbox, clock)
        assert lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{code}",
                          {"password": "n3w"}).status_code == 200

    def test_reset_lifts_the_lockout(self, lc, verified, outbox, clock):
        for _ in range(6):
            lc.post("/1.1/login", {"username": "alice", "password": "wrong"})
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "s3cret!"}).json()["code"] == 219
        code = self._request(lc, outbox, clock)
        lc.request("PUT", f"/1.1/resetPasswordBySmsCode/{code}", {"password": "n3w"})
        assert not LoginLockout.objects.exists()
        assert lc.post("/1.1/login", {"username": "alice",
                                      "password": "n3w"}).status_code == 200

    def test_unknown_number(self, lc, verified):
        response = lc.post("/1.1/requestPasswordResetBySmsCode", {"mobilePhoneNumber": OTHER})
        assert response.json()["code"] == 213


class TestChangeNumber:
    def _request(self, lc, member, outbox, phone=OTHER, **body):
        response = lc.post("/1.1/requestChangePhoneNumber", {"mobilePhoneNumber": phone, **body},
                           **session(member["sessionToken"]))
        assert response.status_code == 200, response.json()
        assert "修改手机号" in outbox[-1].body
        return code_sent_to(outbox, "+86" + phone)

    def test_change_with_the_code(self, lc, alice, outbox):
        code = self._request(lc, alice, outbox)
        row = VerificationCode.objects.get(phone=OTHER_E164, purpose="change_phone")
        assert row.expires_at - row.created_at == timedelta(minutes=6)
        response = lc.post("/1.1/changePhoneNumber", {"mobilePhoneNumber": OTHER, "code": code},
                           **session(alice["sessionToken"]))
        assert response.status_code == 200 and response.json() == {}
        member = AppUser.objects.get(object_id=alice["objectId"])
        assert (member.phone, member.phone_verified) == (OTHER_E164, True)

    def test_ttl_is_honoured(self, lc, alice, outbox):
        self._request(lc, alice, outbox, ttl=15)
        row = VerificationCode.objects.get(phone=OTHER_E164, purpose="change_phone")
        assert row.expires_at - row.created_at == timedelta(minutes=15)

    def test_session_required(self, lc, alice):
        response = lc.post("/1.1/requestChangePhoneNumber", {"mobilePhoneNumber": OTHER})
        assert response.status_code == 403
        assert response.json()["code"] == 206
        change = lc.post("/1.1/changePhoneNumber", {"mobilePhoneNumber": OTHER,
                                                    "code": "123456"})
        assert change.json()["code"] == 206

    def test_another_number_than_requested_is_refused(self, lc, alice, outbox):
        code = self._request(lc, alice, outbox)
        response = lc.post("/1.1/changePhoneNumber",
                           {"mobilePhoneNumber": "18611112222", "code": code},
                           **session(alice["sessionToken"]))
        assert response.json()["code"] == 603
        assert AppUser.objects.get(object_id=alice["objectId"]).phone == E164

    def test_another_members_code_is_refused(self, lc, alice, outbox):
        code = self._request(lc, alice, outbox)
        bob = signup(lc, username="bob").json()
        response = lc.post("/1.1/changePhoneNumber", {"mobilePhoneNumber": OTHER, "code": code},
                           **session(bob["sessionToken"]))
        assert response.json()["code"] == 603
        ok = lc.post("/1.1/changePhoneNumber", {"mobilePhoneNumber": OTHER, "code": code},
                     **session(alice["sessionToken"]))
        assert ok.status_code == 200

    def test_taken_number(self, lc, app, alice, outbox):
        app.signup_sends_verification = False
        app.save()
        bob = signup(lc, username="bob", mobilePhoneNumber=OTHER).json()
        response = lc.post("/1.1/requestChangePhoneNumber", {"mobilePhoneNumber": PHONE},
                           **session(bob["sessionToken"]))
        assert response.json()["code"] == 214


class TestCaptchaPassThrough:
    @pytest.mark.parametrize("path", ["/1.1/requestMobilePhoneVerify",
                                      "/1.1/requestPasswordResetBySmsCode",
                                      "/1.1/requestLoginSmsCode"])
    def test_required_captcha_without_a_token_is_608(self, lc, app, path, outbox, clock):
        app.require_captcha = True
        app.allow_sms_login = app.allow_unverified_reset = True
        app.signup_sends_verification = False
        app.save()
        data = signup(lc, mobilePhoneNumber=PHONE).json()
        AppUser.objects.filter(object_id=data["objectId"]).update(phone_verified=path.endswith(
            "LoginSmsCode"))
        response = lc.post(path, {"mobilePhoneNumber": PHONE})
        assert response.json()["code"] == 608
        assert outbox == []

    def test_sign_up_sends_no_code_when_captcha_is_required(self, lc, app, signature, outbox):
        app.require_captcha = True
        app.save()
        assert signup(lc, mobilePhoneNumber=PHONE).status_code == 201
        assert outbox == []


def test_sessions_are_stored_per_app_and_member(lc, alice):
    [row] = UserSession.objects.all()
    assert row.member.object_id == alice["objectId"]
    assert row.app_id == row.member.app_id
    assert alice["sessionToken"] not in row.token_hash
