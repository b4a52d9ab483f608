"""Hostile input to the API: spoofed sender text, bodies that are not clean JSON
objects, out-of-range dates and foreign Host headers all get a LeanCloud-shaped
4xx, and nothing is queued or stored."""

from __future__ import annotations

import json

import pytest

from sms_service.models import Message, VerificationCode
from tests.content_fixtures import approved_template

SEND = "/1.1/requestSmsCode"
PHONE = "15200000002"

pytestmark = pytest.mark.django_db


def _refused(response, status=400, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "error"}
    if code is not None:
        assert body["code"] == code
    return body


def _nothing_stored(outbox):
    assert Message.objects.count() == 0
    assert VerificationCode.objects.count() == 0
    assert outbox == []


class TestSenderSpoofing:
    @pytest.mark.parametrize(
        "field, value",
        [
            ("name", "【FakeBank】"),
            ("name", "FakeBank】"),
            ("name", "EvilCorp http://evil.example"),
            ("name", "evil.example"),
            ("name", "www。evil。cn"),
            ("name", "Bank\nYour account is locked"),
            ("name", "Bank\u202eknaB"),
            ("name", "x" * 33),
            ("op", "visit https://evil.example/login"),
            ("op", "login at evil.com"),
            ("op", "【银行】"),
            ("op", "pay\x07"),
            ("op", "o" * 33),
        ],
    )
    def test_name_and_op_are_checked_like_variables(self, lc, signature, outbox, field, value):
        _refused(lc.post(SEND, {"mobilePhoneNumber": PHONE, field: value}), code=1)
        _nothing_stored(outbox)

    def test_a_plain_name_and_op_still_fill_the_default_text(self, lc, signature, outbox):
        assert lc.post(SEND, {"mobilePhoneNumber": PHONE, "name": "Buy Buy 2",
                              "op": "付款"}).json() == {}
        assert "您正在使用Buy Buy 2服务进行付款操作" in outbox[0].body

    def test_an_approved_template_always_gets_the_apps_name(self, lc, app, signature, outbox):
        approved_template(app, "Welcome", "欢迎使用{{name}}，验证码{{code}}，{{ttl}}分钟有效。",
                          kind="verification")
        response = lc.post(SEND, {"mobilePhoneNumber": PHONE, "template": "Welcome",
                                  "name": "EvilCorp"})
        assert response.json() == {}
        assert outbox[0].body.startswith("【LeanCloud】欢迎使用Demo，验证码")
        assert "EvilCorp" not in outbox[0].body


BAD_STRINGS = ["a\x00b", "\ud800", "x\udfffy"]


class TestNotCleanJson:
    def test_deeply_nested_json_is_107(self, lc, signature, outbox):
        for depth in (3000, 30_000):
            raw = '{"mobilePhoneNumber": "' + PHONE + '", "v": ' + "[" * depth + "]" * depth + "}"
            _refused(lc.post(SEND, raw=raw), code=107)
        _nothing_stored(outbox)

    def test_moderately_nested_values_are_refused_where_scalars_are_expected(
        self, lc, signature, outbox
    ):
        nested: object = "x"
        for _ in range(5):
            nested = {"k": [nested]}
        _refused(lc.post(SEND, {"mobilePhoneNumber": PHONE, "order_id": nested}), code=1)
        _refused(lc.post(SEND, {"mobilePhoneNumber": PHONE, "name": ["Bank"]}), code=1)
        _refused(lc.post(SEND, {"mobilePhoneNumber": [PHONE]}), code=127)
        _nothing_stored(outbox)

    @pytest.mark.parametrize("field", ["name", "op", "template", "sign", "validate_token",
                                       "smsType", "mobilePhoneNumber", "order_id"])
    @pytest.mark.parametrize("bad", BAD_STRINGS)
    def test_nul_and_lone_surrogates_are_refused_in_every_field(
        self, lc, signature, outbox, field, bad
    ):
        raw = json.dumps({"mobilePhoneNumber": PHONE, field: bad})  # \u escapes
        _refused(lc.post(SEND, raw=raw), code=107)
        _nothing_stored(outbox)

    @pytest.mark.parametrize("bad", BAD_STRINGS)
    def test_nul_and_lone_surrogates_are_refused_in_keys_and_on_verify(
        self, lc, signature, outbox, bad
    ):
        _refused(lc.post(SEND, raw=json.dumps({"mobilePhoneNumber": PHONE, bad: "1"})),
                 code=107)
        raw = json.dumps({"mobilePhoneNumber": bad})
        _refused(lc.post("/1.1/verifySmsCode/123456", raw=raw), code=107)
        _nothing_stored(outbox)

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_non_json_numbers_are_107(self, lc, signature, outbox, constant):
        raw = '{"mobilePhoneNumber": "' + PHONE + '", "order_id": ' + constant + "}"
        _refused(lc.post(SEND, raw=raw), code=107)
        _nothing_stored(outbox)

    @pytest.mark.parametrize("ttl", ["²", "１０", "٣"])
    def test_non_ascii_digits_are_not_numbers(self, lc, signature, outbox, ttl):
        _refused(lc.post(SEND, {"mobilePhoneNumber": PHONE, "ttl": ttl}), code=1)
        _nothing_stored(outbox)


class TestMessageListDates:
    @pytest.mark.parametrize(
        "query",
        [
            "until=9999-12-31",
            "since=9999-12-31",
            "until=0001-01-01",
            "since=0001-01-01T00:00:00",
            "until=9999-12-31T23:59:59-14:00",
            "since=1999-12-31",
            "limit=²",
            "skip=１",
        ],
    )
    def test_out_of_range_dates_are_400(self, lc, query):
        _refused(lc.get(f"/1.1/sms/messages?{query}", master=True), code=1)

    def test_dates_in_range_still_work(self, lc):
        response = lc.get("/1.1/sms/messages?since=2000-01-01&until=9998-12-31", master=True)
        assert response.json() == {"results": []}


class TestHeaders:
    def test_a_host_outside_allowed_hosts_gets_json_under_the_api(self, lc, settings):
        settings.ALLOWED_HOSTS = ["sms.example.com"]
        response = lc.post(SEND, {"mobilePhoneNumber": PHONE}, HTTP_HOST="evil.example")
        _refused(response, code=1)
        assert response["Content-Type"].startswith("application/json")
        # Elsewhere Django's own page stays.
        page = lc.client.get("/admin/", HTTP_HOST="evil.example")
        assert page.status_code == 400
        assert not page["Content-Type"].startswith("application/json")

    @pytest.mark.parametrize("app_id", ["a\x00b", "a b", "x" * 65, "ü"])
    def test_malformed_app_ids_are_401_without_a_lookup(self, lc, app_id):
        response = lc.post(SEND, {"mobilePhoneNumber": PHONE},
                           headers={"HTTP_X_LC_ID": app_id, "HTTP_X_LC_KEY": "k"})
        _refused(response, status=401, code=401)


class TestNumberTypes:
    @pytest.mark.parametrize(
        "number, international, kind",
        [
            ("+868001234567", False, "toll-free"),
            ("+864001234567", False, "shared-cost"),
            ("+861012345678", False, "landline"),
            ("+19002345678", True, "premium-rate"),
            ("+18002345678", True, "toll-free"),
            ("+449098765432", True, "premium-rate"),
            ("+447012345678", True, "personal"),
        ],
    )
    @pytest.mark.parametrize("sms_type", ["sms", "voice"])
    def test_non_mobile_numbers_are_127_before_any_send_or_charge(
        self, lc, app, signature, outbox, number, international, kind, sms_type
    ):
        from sms_service.models import LedgerEntry

        app.allow_international = international
        app.save()
        response = lc.post(SEND, {"mobilePhoneNumber": number, "smsType": sms_type})
        body = _refused(response, code=127)
        assert kind in body["error"]
        _nothing_stored(outbox)
        assert LedgerEntry.objects.count() == 0

    @pytest.mark.parametrize("number", ["+8618612345678", "+14155552671", "+447400123456"])
    def test_mobile_and_fixed_line_or_mobile_numbers_get_codes(self, lc, app, signature,
                                                               outbox, number):
        app.allow_international = True
        app.save()
        assert lc.post(SEND, {"mobilePhoneNumber": number}).json() == {}
        assert outbox[-1].to == number

    def test_voice_codes_to_landlines_are_a_per_app_choice(self, lc, app, signature, outbox):
        landline = "+861012345678"
        app.allow_voice_to_landlines = True
        app.save()
        _refused(lc.post(SEND, {"mobilePhoneNumber": landline}), code=127)  # never SMS
        assert lc.post(SEND, {"mobilePhoneNumber": landline, "smsType": "voice"}).json() == {}
        assert outbox[-1].to == landline and outbox[-1].channel == "voice"
        # Still no premium-rate or toll-free calls.
        _refused(lc.post(SEND, {"mobilePhoneNumber": "+868001234567", "smsType": "voice"}),
                 code=127)
