"""Screenshots of the console at a phone's and a desktop's width, with the check
that no page scrolls sideways: dashboard, bill, review queue, export, template and
signature pages."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from sms_service.models import App, Message, Signature
from sms_service.services import billing, content
from tests.browser import PHONE_WIDTH

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDE = 1400


@pytest.fixture
def console(live_server, browser):
    """A logged-in superuser's browser over an app with traffic, money and content."""
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    app = App.objects.create(name="A rather long application name", company_name="Demo Ltd")
    billing.top_up(app=app, amount="100", reason="invoice 42")
    for index, status in enumerate(["delivered"] * 6 + ["undelivered", "failed"]):
        Message.objects.create(app=app, phone=f"+861861234{index:04d}", region="CN",
                               body="x", status=status, cost=Decimal("0.05"))
    signature = content.create_signature(app=app, name="sign_Demo", text="演示应用")
    content.approve(item=signature, reviewer=None)
    content.create_signature(app=app, name="sign_Pending", text="待审应用")
    template = content.create_template(
        app=app, name="Order_Notice", kind="notification",
        body="Your order {{order_id}} ships today.", signature=signature)
    content.create_template(app=app, name="Login_Code", kind="verification",
                            body="Welcome back to {{name}}.", signature=signature)
    browser.visit(live_server.url + "/admin/login/")
    browser.fill("#id_username", "root")
    browser.fill("#id_password", "pw")
    browser.find("input[type=submit]").click()
    browser.wait_for_url(r"/admin/$")
    return browser, app, template


def assert_boxes_below_the_form(browser, page):
    """The version and review boxes after a change form start below its Save row:
    a box behind the (floating) form paints its blue heading into the form's gaps."""
    overlaps = browser.driver.execute_script(
        "var row = document.querySelector('.submit-row'); if (!row) { return []; }"
        "var bottom = row.getBoundingClientRect().bottom, out = [];"
        "document.querySelectorAll('.sms-review-item').forEach(function (box) {"
        "  var top = box.getBoundingClientRect().top;"
        "  if (top < bottom) { out.push((box.id || box.className) + ' top=' + top); }"
        "}); return out;")
    assert overlaps == [], f"{page}: boxes behind the form: {overlaps}"


def test_console_pages_fit_a_phone_and_a_desktop(console, live_server):
    browser, app, template = console
    pages = {
        "dashboard": "/admin/sms_service/message/dashboard/?range=30d",
        "bill": f"/admin/sms_service/ledgerentry/apps/{app.pk}/",
        "review-queue": "/admin/sms_service/template/review-queue/",
        "export": "/admin/sms_service/message/export/",
        "template": f"/admin/sms_service/template/{template.pk}/change/",
        "pending-signature": "/admin/sms_service/signature/{}/change/".format(
            Signature.objects.get(name="sign_Pending").pk),
    }
    for name, path in pages.items():
        browser.visit(live_server.url + path)
        assert "Server Error" not in browser.text, name
        shots = browser.capture(name, widths=(PHONE_WIDTH, WIDE))
        browser.assert_no_horizontal_scroll()  # and at 1400 px
        assert all(shot.exists() and shot.stat().st_size > 0 for shot in shots)
        for width in (PHONE_WIDTH, WIDE):
            browser.resize(width)
            assert_boxes_below_the_form(browser, name)
    # Change lists with an app column stay within 1400 px (apps shown by name),
    # and their times stay on one line.
    for path in ("/admin/sms_service/message/", "/admin/sms_service/signature/",
                 "/admin/sms_service/ledgerentry/"):
        browser.visit(live_server.url + path)
        browser.assert_no_horizontal_scroll()
        lines = browser.driver.execute_script(
            "return Array.from(document.querySelectorAll('#result_list .sms-local-time'),"
            " function (time) { return time.getClientRects().length; });")
        assert lines and set(lines) == {1}, f"{path}: times over several lines: {lines}"
    # The index leads to the SMS screens.
    browser.visit(live_server.url + "/admin/")
    assert "Review queue" in browser.text and "Dashboard" in browser.text
