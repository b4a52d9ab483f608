"""Rendering: Handlebars as plain text, system variables, the final text."""

from __future__ import annotations

import pytest

from sms_service import templating
from sms_service.exceptions import InvalidParameterError, TemplateRenderError
from sms_service.services import content
from tests.content_fixtures import approved_signature, approved_template

pytestmark = pytest.mark.django_db


def _send_text(app, template, variables, *, sign=None, code="", ttl=10):
    resolved = content.resolve_content(app=app, template_name=template, sign_name=sign)
    system = {"name": app.name, "code": code, "ttl": ttl, "sign": resolved.signature.text,
              "template": template}
    return content.render_message(content=resolved, variables=variables, system=system)


# LeanCloud's documented examples: what the recipient's phone shows.
DOCUMENTED_EXAMPLES = [
    pytest.param(
        "sign_BuyBuyBuy", "BuyBuyBuy", "Order_Notice", "notification",
        "Your package for the order {{order_id}} will be delivered by the end of today.",
        {"order_id": "7623432424540"}, "",
        "【BuyBuyBuy】Your package for the order 7623432424540 will be delivered by the "
        "end of today.",
        id="Order_Notice",
    ),
    pytest.param(
        "LeanCloud", "LeanCloud", "Register_Notice", "notification",
        "Thanks for joining {{name}}, the leading backend-as-a-service provider.",
        {}, "",
        "【LeanCloud】Thanks for joining LeanCloud, the leading backend-as-a-service provider.",
        id="Register_Notice",
    ),
    pytest.param(
        "LeanCloud", "LeanCloud", "Welcome_Code", "verification",
        "Welcome to {{name}}! Your verification code is {{code}}. Please complete "
        "signing up in {{ttl}} minutes.",
        {}, "123456",
        "【LeanCloud】Welcome to LeanCloud! Your verification code is 123456. Please "
        "complete signing up in 10 minutes.",
        id="system-variables",
    ),
    pytest.param(
        "sign_app", "应用A", "Register", "verification",
        "歡迎注冊{{name}}應用!請使用驗證碼 {{code}} 來完成注冊。該驗證碼將在{{ttl}}分鐘后失效,請盡快使用。",
        {}, "654321",
        "【应用A】歡迎注冊LeanCloud應用!請使用驗證碼 654321 來完成注冊。該驗證碼將在10分鐘后失效,請盡快使用。",
        id="system-variables-chinese",
    ),
    pytest.param(
        "sign_sf", "顺丰速运", "Express", "notification",
        "親,您的寶貝已上路,快遞信息可以通過以下鏈接查詢:http://www.sf-express.com/cn/#search/{{bill_number}}",
        {"bill_number": "SF1234567890"}, "",
        "【顺丰速运】親,您的寶貝已上路,快遞信息可以通過以下鏈接查詢:"
        "http://www.sf-express.com/cn/#search/SF1234567890",
        id="url-with-variable",
    ),
    pytest.param(
        "sign_xx", "XX租房", "Rent_Paid", "notification",
        "XX房东您好，租客{{guest_name}}(手机号码：{{guest_phone}})于{{payment_create_time}}"
        "向您支付了房租。租金为{{rent_price}}元。",
        {"guest_name": "张三", "guest_phone": "186xxxxxxxx",
         "payment_create_time": "2016-06-01", "rent_price": "3000"}, "",
        "【XX租房】XX房东您好，租客张三(手机号码：186xxxxxxxx)于2016-06-01向您支付了房租。租金为3000元。",
        id="rent-notice",
    ),
]


@pytest.mark.parametrize(
    ("sign_name", "sign_text", "template", "kind", "body", "variables", "code", "expected"),
    DOCUMENTED_EXAMPLES,
)
def test_documented_examples_render_as_shown(app, sign_name, sign_text, template, kind, body, variables, code,
                       expected):
    app.name = "LeanCloud"
    app.save()
    signature = approved_signature(app, sign_name, sign_text)
    approved_template(app, template, body, kind=kind, signature=signature)
    assert _send_text(app, template, variables, sign=sign_name, code=code) == expected


@pytest.fixture
def signature(app):
    return approved_signature(app)


def test_no_html_escaping(app, signature):
    approved_template(app, "T", "A & B <{{x}}> \"{{y}}\" '{{{z}}}'")
    text = _send_text(app, "T", {"x": "<b>&amp;</b>", "y": "Tom & \"Jerry\"", "z": "it's"})
    assert text == "【BuyBuyBuy】A & B <<b>&amp;</b>> \"Tom & \"Jerry\"\" 'it's'"


def test_system_variables_cannot_be_overridden(app, signature):
    approved_template(app, "T", "{{name}} {{code}} {{ttl}} {{sign}} {{template}}",
                      kind="verification")
    text = _send_text(app, "T", {"name": "Evil", "code": "000000", "ttl": 99, "sign": "X",
                                 "template": "Y"}, code="123456")
    assert text == "【BuyBuyBuy】Demo 123456 10 BuyBuyBuy T"


def test_caller_values_with_square_brackets_are_refused(app, signature):
    approved_template(app, "T", "Hi {{who}}")
    with pytest.raises(InvalidParameterError):
        _send_text(app, "T", {"who": "【假冒】"})


def test_missing_variable_is_606(app, signature):
    approved_template(app, "Order_Notice", "Order {{order_id}}")
    with pytest.raises(TemplateRenderError) as exc:
        _send_text(app, "Order_Notice", {})
    assert exc.value.code == 606
    assert exc.value.message == "Fails to render SMS template."


def test_optional_sections_may_be_left_out(app, signature):
    approved_template(app, "T", "Order {{id}}{{#if coupon}}, coupon {{coupon}}{{/if}}.")
    assert _send_text(app, "T", {"id": "1"}) == "【BuyBuyBuy】Order 1."
    assert _send_text(app, "T", {"id": "1", "coupon": "C9"}) == "【BuyBuyBuy】Order 1, coupon C9."


def test_marketing_messages_end_with_unsubscribe(app, signature):
    approved_template(app, "Sale", "春装上市，凭短信可享 9 折优惠。", kind="marketing")
    assert _send_text(app, "Sale", {}) == "【BuyBuyBuy】春装上市，凭短信可享 9 折优惠。回复TD退订"


def test_each_version_is_compiled_once(app, signature):
    template = approved_template(app, "Order_Notice", "Order {{order_id}}")
    templating.cache.clear()
    for n in range(20):
        _send_text(app, "Order_Notice", {"order_id": str(n)})
    assert templating.cache.compiles == 1
    v2 = content.submit_template_version(template=template, body="Order #{{order_id}}",
                                         signature=signature)
    content.approve(item=v2, reviewer=None)  # its lint compiles the body too
    compiled = templating.cache.compiles
    for n in range(5):
        assert _send_text(app, "Order_Notice", {"order_id": str(n)}).endswith(f"#{n}")
    assert templating.cache.compiles == compiled + 1


def test_cache_is_bounded(settings):
    settings.SMS_SERVICE = {"TEMPLATE_CACHE_SIZE": 3}
    templating.cache.clear()
    for n in range(10):
        templating.get_compiled(f"body {n} {{{{x}}}}", key=n)
    assert len(templating.cache) == 3


def test_template_features_that_are_refused():
    for body in ("{{> partial}}", "{{x.__class__}}", "{{#if a}}open", "{{/if}}"):
        with pytest.raises(templating.TemplateSyntaxError):
            templating.compile_template(body)


def test_template_variables():
    body = "{{name}} {{order_id}} {{#if coupon}}{{coupon.code}}{{/if}} {{lookup m 'k'}} {{! note}}"
    assert templating.template_variables(body) == ["name", "order_id", "coupon", "m"]


def test_end_to_end_through_request_sms(app, signature, outbox):
    """requestSmsCode with a template: the message row holds the rendered text."""
    from sms_service.services import sending

    template = approved_template(
        app, "Order_Notice",
        "Your package for the order {{order_id}} will be delivered by the end of today.",
    )
    message = sending.request_sms(
        app=app,
        request=sending.SmsRequest(phone="+8618612345678", template="Order_Notice",
                                   sign="sign_BuyBuyBuy",
                                   variables={"order_id": "7623432424540"}),
        is_master=True,
    )
    assert message.template_version == template.versions.get()
    assert message.body == ("【BuyBuyBuy】Your package for the order 7623432424540 will be "
                            "delivered by the end of today.")
