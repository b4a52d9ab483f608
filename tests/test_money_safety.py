"""Money safety: an unpriced region is refused (or priced by the default), never free."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from sms_service.models import LedgerEntry, Message
from sms_service.services import billing
from tests.billing_support import set_price

pytestmark = pytest.mark.django_db

SEND = "/1.1/requestSmsCode"
US = "+14155552671"
NO_DEFAULT = {
    "BACKENDS": {"default": {"BACKEND": "sms_service.backends.locmem.LocmemBackend"}},
    "DEFAULT_UNIT_PRICES": {},
}


@pytest.fixture
def funded(app, signature):
    app.allow_international = True
    app.save()
    billing.top_up(app=app, amount="10", reason="test funds")
    return app


@override_settings(SMS_SERVICE=NO_DEFAULT)
def test_a_send_to_an_unpriced_region_is_refused_clearly(lc, funded, outbox):
    set_price("0.05", region="CN")
    response = lc.post(SEND, {"mobilePhoneNumber": US})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 119 and "region US is not priced" in body["error"]
    # Nothing was sent, queued or charged.
    assert outbox == [] and Message.objects.count() == 0
    assert not LedgerEntry.objects.filter(kind="hold").exists()
    # A priced region still goes out.
    assert lc.post(SEND, {"mobilePhoneNumber": "+8618612345678"}).json() == {}


@override_settings(SMS_SERVICE=NO_DEFAULT)
def test_voice_needs_its_own_price(lc, funded, outbox):
    set_price("0.05", region="CN", channel="sms")
    response = lc.post(SEND, {"mobilePhoneNumber": "+8618612345678", "smsType": "voice"})
    assert response.json()["code"] == 119 and outbox == []


@override_settings(SMS_SERVICE={**NO_DEFAULT, "DEFAULT_UNIT_PRICES": {"sms": "0.30"}})
def test_the_default_prices_unlisted_regions_and_counts_against_the_cap(lc, funded, outbox):
    funded.daily_spend_cap = Decimal("0.50")
    funded.save()
    assert lc.post(SEND, {"mobilePhoneNumber": US}).json() == {}
    message = Message.objects.get()
    assert message.cost == Decimal("0.3000")
    # The second international send would pass 0.50 spent today: 154.
    response = lc.post(SEND, {"mobilePhoneNumber": "+14155552672"})
    assert response.json()["code"] == 154
    assert len(outbox) == 1


@override_settings(SMS_SERVICE={**NO_DEFAULT, "BILLING_ENABLED": False})
def test_with_billing_off_unpriced_regions_send(lc, funded, outbox):
    assert lc.post(SEND, {"mobilePhoneNumber": US}).json() == {}
    assert Message.objects.get().cost == 0
