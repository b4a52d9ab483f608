"""GET /1.1/sms/messages: status, segments and cost of an app's messages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sms_service.models import Message
from sms_service.services import billing
from tests.billing_support import set_price

pytestmark = pytest.mark.django_db
URL = "/1.1/sms/messages"


@pytest.fixture
def sent(lc, signature):
    set_price("0.0500")
    billing.top_up(app=lc.app, amount="1", reason="test")
    for number in ["+8613800138000", "+8613900139000"]:
        assert (
            lc.post("/1.1/requestSmsCode", {"mobilePhoneNumber": number}).status_code
            == 200
        )
    return lc


def test_lists_status_segments_and_cost_with_the_master_key(sent):
    response = sent.get(URL, master=True)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["mobilePhoneNumber"] for r in results] == [
        "+8613900139000",
        "+8613800138000",
    ]
    first = results[0]
    assert first["status"] == "delivered"  # locmem is final at once
    assert (first["segments"], Decimal(first["cost"])) == (1, Decimal("0.05"))
    assert first["createdAt"].endswith("Z")


def test_filters_by_phone_and_date_and_pages(sent):
    one = sent.get(URL + "?mobilePhoneNumber=13800138000", master=True).json()[
        "results"
    ]
    assert [r["mobilePhoneNumber"] for r in one] == ["+8613800138000"]
    today = timezone.localdate()
    assert (
        len(
            sent.get(f"{URL}?since={today}&until={today}", master=True).json()[
                "results"
            ]
        )
        == 2
    )
    tomorrow = today + timedelta(days=1)
    assert sent.get(f"{URL}?since={tomorrow}", master=True).json()["results"] == []
    page = sent.get(URL + "?limit=1&skip=1", master=True).json()["results"]
    assert [r["mobilePhoneNumber"] for r in page] == ["+8613800138000"]


def test_needs_the_master_key_and_valid_parameters(sent):
    assert sent.get(URL).status_code == 403
    bad = sent.get(URL + "?limit=0", master=True)
    assert (bad.status_code, bad.json()["code"]) == (400, 1)
    assert sent.get(URL + "?since=yesterday", master=True).status_code == 400
    assert sent.get(URL + "?mobilePhoneNumber=12", master=True).json()["code"] == 127
    assert sent.get(URL + "?status=lost", master=True).json()["code"] == 1


def test_filters_by_status(sent):
    rows = sent.get(URL + "?status=delivered", master=True).json()["results"]
    assert rows and {r["status"] for r in rows} == {"delivered"}
    assert sent.get(URL + "?status=failed", master=True).json()["results"] == []


def test_other_apps_messages_are_never_listed(sent):
    from sms_service.models import App

    other = App.objects.create(name="Other")
    Message.objects.create(app=other, phone="+8613700137000", body="x")
    phones = [
        r["mobilePhoneNumber"] for r in sent.get(URL, master=True).json()["results"]
    ]
    assert "+8613700137000" not in phones


def test_documented_in_the_openapi_schema(client):
    schema = client.get("/sms_service/schema", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/1.1/sms/messages"]["get"]
    assert operation["operationId"] == "listSmsMessages"
    assert {p["name"] for p in operation["parameters"]} >= {
        "mobilePhoneNumber",
        "since",
        "until",
        "limit",
        "skip",
    }
