"""Pre-review lint (brackets, URL variables, wording, length) and the reviewer's preview."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sms_service.services import lint

pytestmark = pytest.mark.django_db


def _findings(body, kind="notification", app=None, signature_text="BuyBuyBuy"):
    return {f.code: f.level for f in lint.lint_template(
        body=body, kind=kind, signature_text=signature_text, app=app, template_name="T")}


@pytest.mark.parametrize(
    ("body", "kind", "expected"),
    [
        # LeanCloud's and the carriers' correct examples: nothing to report.
        ("Your package for the order {{order_id}} will be delivered by the end of today.",
         "notification", {}),
        ("欢迎注册{{name}}应用！请使用验证码 {{code}} 来完成注册。该验证码将在{{ttl}}分钟后失效。",
         "verification", {}),
        ("恭喜您獲得關注廣州體彩微信送“排列三”的活動彩票,您的號碼是第{{phase}}期的:{{num}}。"
         "開獎時間為{{date}},請關注公眾號—開獎信息查詢中獎狀態。", "notification",
         {"may-be-too-long": "warning"}),  # three variables at 200 characters each
        ("親,您的寶貝已上路,快遞信息可以通過以下鏈接查詢:http://www.sf-express.com/cn/#search/{{bill_number}}",
         "notification", {}),
        ("X牌新款春装已经上市！详情请登录 www.xxxx.com 查询门市店，凭短信可享 9 折优惠。",
         "marketing", {}),
        # The carriers' wrong examples.
        ("尊敬的會員您好,您的訂單已確認支付。5周年慶新品降價!都彭長款錢包僅售499元!{{download_link}} 客服電話400-881-6609",
         "notification", {"marketing-words": "error", "url-variable": "warning"}),
        ("您好,本條短信來自“XX旅游”~恭喜幸運的您,在本次“北海道機票”抽獎活動中,獲得二等獎——定制星巴克杯!",
         "notification", {"marketing-words": "error"}),
        ("業主還在苦苦等待你的反饋,你認領的房源已超過1小時沒有填寫核實結果", "notification",
         {"banned-words": "error"}),
        ("网贷秒批，详询客服", "marketing", {"banned-words": "error"}),
        ("打折啦", "marketing", {}),  # marketing wording is fine in marketing templates
        # Other rules.
        ("【XX网】您的订单已发货", "notification", {"brackets": "error"}),
        ("点击 https://{{host}}/download 下载", "notification", {"url-variable": "error"}),
        ("点击 http://{{link}}", "notification", {"url-variable": "error"}),
        ("您的验证码是123456", "verification", {"code-count": "error"}),
        ("{{code}} 与 {{code}}", "verification", {"code-count": "error"}),
        ("订单 {{code}} 已发货", "notification", {"code-unused": "warning"}),
        ("上新了回复TD退订", "marketing", {"td-suffix": "warning"}),
        ("{{#if x}}unclosed", "notification", {"syntax": "error"}),
    ],
)
def test_template_lint(body, kind, expected, app):
    assert _findings(body, kind, app=app) == expected


def test_marketing_needs_company_name(app):
    app.company_name = ""
    assert _findings("春装上市", "marketing", app=app) == {"company-name": "error"}


@override_settings(SMS_SERVICE={"BANNED_WORDS": ["forbidden"], "MARKETING_WORDS": ["SALE"]})
def test_word_lists_are_settings():
    assert _findings("A Forbidden sale!") == {"banned-words": "error", "marketing-words": "error"}
    assert _findings("房源") == {}


def test_length_over_400_characters():
    assert _findings("字" * 395) == {"too-long": "error"}  # 【BuyBuyBuy】 makes it 406
    # Three variables at the 200-character limit could pass 400.
    assert _findings("{{a}}{{b}}{{c}}") == {"may-be-too-long": "warning"}
    assert _findings("{{a}}") == {}


def test_marketing_suffix_counts_towards_length():
    body = "字" * 385  # 385 + 11 (【BuyBuyBuy】) = 396; + 回复TD退订 (6) = 402
    assert _findings(body, "notification") == {}
    assert _findings(body, "marketing") == {"too-long": "error"}


@pytest.mark.parametrize(
    ("body", "kind", "length", "segments"),
    [
        ("字" * 59, "notification", 70, 1),  # 11 + 59 = 70: one message
        ("字" * 60, "notification", 71, 2),  # 71: ceil(71 / 67) = 2
        ("字" * 53, "marketing", 70, 1),  # 11 + 53 + 6
        ("字" * 190, "notification", 201, 3),
    ],
)
def test_preview_counts_signature_and_suffix(body, kind, length, segments):
    result = lint.preview(body=body, kind=kind, signature_text="BuyBuyBuy")
    assert (result.length, result.segments) == (length, segments)


def test_preview_uses_samples_and_placeholders(app):
    result = lint.preview(body="Order {{order_id}} for {{name}} by {{who}}",
                          kind="notification", signature_text="BuyBuyBuy", app=app,
                          samples={"order_id": "7623432424540"})
    assert result.text == "【BuyBuyBuy】Order 7623432424540 for Demo by <who>"
    assert result.error == ""


def test_preview_of_a_broken_body_reports_the_error():
    result = lint.preview(body="{{#if a}}", kind="notification", signature_text="BuyBuyBuy")
    assert result.text == "" and "Unclosed" in result.error
