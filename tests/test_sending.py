"""POST /1.1/requestSmsCode: codes, voice, switches, bad input."""

from __future__ import annotations

import re

import pytest

from sms_service.models import FixedCodeNumber, Message, VerificationCode

SEND = "/1.1/requestSmsCode"
PHONE = "18612345678"
E164 = "+8618612345678"

pytestmark = pytest.mark.django_db


def sent_code(outbox, index=-1) -> str:
    return re.search(r"\d{6}", outbox[index].body).group()


def send(lc, **body):
    return lc.post(SEND, {"mobilePhoneNumber": PHONE, **body})


def verify(lc, code, phone=PHONE):
    return lc.post(f"/1.1/verifySmsCode/{code}", {"mobilePhoneNumber": phone})


class TestVerificationSms:
    def test_default_text_in_chinese_with_signature(self, lc, app, signature, outbox):
        assert send(lc).json() == {}
        (sms,) = outbox
        assert sms.to == E164 and sms.channel == "sms"
        code = sent_code(outbox)
        assert sms.body == (
            f"【LeanCloud】您正在使用Demo服务进行短信验证操作，您的验证码是：{code}，"
            "请在10分钟内完成验证。"
        )

    def test_name_op_and_ttl_fill_the_default_text(self, lc, signature, outbox):
        send(lc, name="BuyBuyBuy", op="付款", ttl=5)
        assert "您正在使用BuyBuyBuy服务进行付款操作" in outbox[0].body
        assert "请在5分钟内完成验证" in outbox[0].body

    def test_english_default_text_per_app(self, lc, app, signature, outbox):
        app.default_language = "en"
        app.save()
        send(lc, op="log in")
        code = sent_code(outbox)
        assert outbox[0].body == (
            f"【LeanCloud】You are using Demo to log in. Your verification code is {code}, "
            "valid for 10 minutes."
        )

    def test_request_then_verify(self, lc, signature, outbox):
        send(lc)
        assert verify(lc, sent_code(outbox)).json() == {}

    def test_verify_accepts_the_number_in_the_query_string(self, lc, signature, outbox):
        send(lc)
        code = sent_code(outbox)
        response = lc.post(f"/1.1/verifySmsCode/{code}?mobilePhoneNumber={PHONE}", {})
        assert response.json() == {}

    def test_plus86_and_bare_numbers_are_the_same_number(self, lc, signature, outbox):
        send(lc)
        assert verify(lc, sent_code(outbox), phone=E164).json() == {}

    def test_verify_without_a_number_is_212(self, lc, signature, outbox):
        send(lc)
        response = lc.post(f"/1.1/verifySmsCode/{sent_code(outbox)}", {})
        assert response.json()["code"] == 212

    def test_message_log_hides_the_code(self, lc, signature, outbox):
        send(lc)
        code = sent_code(outbox)
        message = Message.objects.get()
        assert code not in message.body
        assert "******" in message.body
        assert message.payload is None  # wiped once the provider took it
        assert message.status == "delivered"


class TestVoice:
    def test_voice_call_reads_only_the_digits(self, lc, signature, outbox):
        send(lc, smsType="voice")
        (call,) = outbox
        assert call.channel == "voice"
        assert re.fullmatch(r"\d \d \d \d \d \d", call.body)
        assert verify(lc, call.digits).json() == {}

    def test_voice_needs_no_signature(self, lc, outbox):
        assert send(lc, smsType="voice").json() == {}

    def test_voice_cannot_use_a_template(self, lc, signature):
        response = send(lc, smsType="voice", template="Register_Notice")
        assert response.json()["code"] == 1
        assert Message.objects.count() == 0


class TestSwitches:
    def test_sms_service_off_is_119(self, lc, app, signature):
        app.sms_enabled = False
        app.save()
        assert send(lc).json()["code"] == 119
        assert lc.post(SEND, {"mobilePhoneNumber": PHONE}, master=True).json()["code"] == 119

    def test_generic_api_off_refuses_client_keys_only(self, lc, app, signature, outbox):
        app.sms_api_enabled = False
        app.save()
        assert send(lc).json() == {
            "code": 119, "error": "That operation isn't allowed for clients."
        }
        assert verify(lc, "123456").json()["code"] == 119
        assert lc.post(SEND, {"mobilePhoneNumber": PHONE}, master=True).json() == {}
        assert lc.post(f"/1.1/verifySmsCode/{sent_code(outbox)}",
                       {"mobilePhoneNumber": PHONE}, master=True).json() == {}

    def test_require_captcha_without_token_is_608(self, lc, app, signature):
        app.require_captcha = True
        app.save()
        assert send(lc).json() == {"code": 608, "error": "Missing validate token."}
        assert Message.objects.count() == 0

    def test_international_numbers_need_the_switch(self, lc, app, signature, outbox):
        response = lc.post(SEND, {"mobilePhoneNumber": "+14155552671"})
        assert response.json() == {
            "code": 1, "error": "International SMS is disabled, please enable it in console."
        }
        app.allow_international = True
        app.save()
        assert lc.post(SEND, {"mobilePhoneNumber": "+14155552671"}).json() == {}
        assert outbox[0].to == "+14155552671"


class TestBadInput:
    @pytest.mark.parametrize(
        "body, code",
        [
            ({}, 212),
            ({"mobilePhoneNumber": ""}, 212),
            ({"mobilePhoneNumber": "1861234567a"}, 127),
            ({"mobilePhoneNumber": 18612345678}, 127),
            ({"mobilePhoneNumber": PHONE, "smsType": "fax"}, 1),
            ({"mobilePhoneNumber": PHONE, "smsType": 1}, 1),
            ({"mobilePhoneNumber": PHONE, "ttl": 0}, 1),
            ({"mobilePhoneNumber": PHONE, "ttl": 31}, 1),
            ({"mobilePhoneNumber": PHONE, "ttl": 10**12}, 1),
            ({"mobilePhoneNumber": PHONE, "ttl": "ten"}, 1),
            ({"mobilePhoneNumber": PHONE, "ttl": 2.5}, 1),
            ({"mobilePhoneNumber": PHONE, "ttl": True}, 1),
            ({"mobilePhoneNumber": PHONE, "template": ["x"]}, 1),
            ({"mobilePhoneNumber": PHONE, "sign": {"a": 1}}, 1),
            ({"mobilePhoneNumber": PHONE, "order_id": "x" * 201}, 1),
            ({"mobilePhoneNumber": PHONE, "order_id": {"nested": 1}}, 1),
            ({"mobilePhoneNumber": PHONE, "order_id": "【fake】"}, 1),
            ({"mobilePhoneNumber": PHONE, "bad-name": "x"}, 1),
            ({"mobilePhoneNumber": PHONE, "sign": "NoSuchSign"}, 600),
            ({"mobilePhoneNumber": PHONE, "template": "NoSuchTemplate"}, 604),
        ],
    )
    def test_refused_with_a_leancloud_error_and_nothing_queued(
        self, lc, signature, outbox, body, code
    ):
        response = lc.post(SEND, body)
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert set(response.json()) == {"code", "error"}
        assert Message.objects.count() == 0
        assert VerificationCode.objects.count() == 0
        assert outbox == []

    def test_ttl_as_a_numeric_string_is_accepted(self, lc, signature, outbox):
        assert send(lc, ttl="30").json() == {}
        assert "请在30分钟内完成验证" in outbox[0].body

    def test_no_approved_default_signature_is_605(self, lc, signature):
        signature.status = "pending"
        signature.save()
        assert send(lc).json() == {"code": 605, "error": "SMS sign not verified"}


class TestFixedCodeNumbers:
    def test_fixed_code_never_sent_never_billed(self, lc, app, signature, outbox):
        FixedCodeNumber.objects.create(app=app, phone=E164, code="246810")
        assert send(lc).json() == {}
        assert outbox == []
        message = Message.objects.get()
        assert message.is_test and message.cost == 0 and message.provider == "test-number"
        assert verify(lc, "246810").json() == {}
        assert verify(lc, "246810").json()["code"] == 603  # still single use

    def test_test_numbers_are_rate_limited(self, lc, app, signature):
        FixedCodeNumber.objects.create(app=app, phone=E164, code="246810")
        send(lc)
        assert send(lc).json()["code"] == 1

    def test_the_fixed_code_follows_code_length(self, lc, app, signature, outbox, settings):
        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "CODE_LENGTH": 8}
        number = FixedCodeNumber(app=app, phone=E164, code="24681012")
        number.full_clean()
        number.save()
        assert send(lc).json() == {}
        assert Message.objects.get().body.count("********") == 1
        assert verify(lc, "24681012").json() == {}

    def test_a_fixed_code_of_another_length_is_refused(self, app, settings):
        from django.core.exceptions import ValidationError

        settings.SMS_SERVICE = {**settings.SMS_SERVICE, "CODE_LENGTH": 8}
        with pytest.raises(ValidationError, match="8 digits"):
            FixedCodeNumber(app=app, phone=E164, code="246810").full_clean()


def test_codes_are_unreadable_in_the_database(lc, signature, outbox):
    """Codes are stored only as keyed hashes: no table holds the plaintext code."""
    from django.db import connection

    send(lc)
    code = sent_code(outbox)
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if not table.startswith("sms_service"):
                continue
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                assert code not in " ".join(str(v) for v in row), table


def test_a_new_send_replaces_the_old_code(lc, signature, outbox, clock, draw_codes):
    draw_codes("111111", "222222")
    send(lc)
    clock.shift(61)
    send(lc)
    assert [sent_code(outbox, 0), sent_code(outbox)] == ["111111", "222222"]
    assert VerificationCode.objects.count() == 1
    assert verify(lc, "111111").json()["code"] == 603
    assert verify(lc, "222222").json() == {}


@pytest.mark.parametrize("process_seconds", [2, 0])
def test_a_change_made_by_another_process_arrives_within_process_cache_seconds(
    lc, app, signature, outbox, clock, settings, process_seconds
):
    """Each process keeps apps PROCESS_CACHE_SECONDS in front of the shared cache.
    Another process's save leaves the row changed and the shared entry dropped;
    this process serves its own copy until the bound, then reads the change."""
    from django.core.cache import cache

    from sms_service.models import App
    from sms_service.services import tenants

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "PROCESS_CACHE_SECONDS": process_seconds}
    assert send(lc).json() == {}
    App.objects.filter(pk=app.pk).update(sms_enabled=False)
    cache.delete(tenants._api_app_key(app.app_id))
    within = lc.post(SEND, {"mobilePhoneNumber": "18612345670"}).json()
    assert within.get("code") == (None if process_seconds else 119)
    clock.shift(process_seconds + 1)
    assert lc.post(SEND, {"mobilePhoneNumber": "18612345671"}).json()["code"] == 119


def test_switches_and_reviews_take_effect_immediately(lc, app, signature, outbox, clock):
    """The API keeps apps in the process and shared caches; every save drops the
    entry in both (other processes follow within PROCESS_CACHE_SECONDS)."""
    assert send(lc).json() == {}
    app.sms_enabled = False
    app.save()
    assert lc.post(SEND, {"mobilePhoneNumber": "18612345670"}).json()["code"] == 119
    app.sms_enabled = True
    app.save()
    signature.status = "rejected"
    signature.save()
    assert lc.post(SEND, {"mobilePhoneNumber": "18612345671"}).json()["code"] == 605
    from sms_service.services import tenants

    tenants.update_app(app=app, changes={"allow_international": "true"})
    signature.status = "approved"
    signature.save()
    assert lc.post(SEND, {"mobilePhoneNumber": "+14155552671"}).json() == {}
