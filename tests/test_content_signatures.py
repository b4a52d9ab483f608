"""Signatures: validation, carrier rules, limits, the default flag, review."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.test import override_settings

from sms_service.exceptions import InvalidSignatureError, SignatureNotVerifiedError
from sms_service.models import App, Signature
from sms_service.services import content, lint
from tests.content_fixtures import approved_signature, approved_template

pytestmark = pytest.mark.django_db


def _codes(text: str, *, enforce: bool = False) -> dict[str, str]:
    return {f.code: f.level for f in lint.lint_signature_text(text, enforce_carrier_rules=enforce)}


# The carrier rules, applied to the carriers' own examples and to obvious breaches.
@pytest.mark.parametrize(
    ("text", "valid", "valid_for_carriers"),
    [
        ("應用A", True, True),  # the carriers' example: 3 characters
        ("应用A", True, True),
        ("BuyBuyBuy", True, False),  # all English: carriers refuse
        ("LeanCloud", True, False),  # LeanCloud's own example
        ("XX租房", True, True),  # a brand
        ("广州体彩", True, True),
        ("12306", True, False),  # all digits
        ("找同学App", True, True),
        ("【应用A】", False, False),  # brackets are added by the system
        ("{{name}}", False, False),  # may not be a variable
        ("XX-网", False, False),  # punctuation
        ("Buy Buy", False, False),  # space
        ("应用！", False, False),  # full-width punctuation
        ("A", False, False),  # shorter than 2
        ("一二三四五六七八九十一二三", False, False),  # longer than 12
        ("一二三四五六七八九", True, False),  # 9: fine by default, too long for carriers
    ],
)
def test_signature_text_rules(text, valid, valid_for_carriers):
    errors = [c for c, level in _codes(text).items() if level == "error"]
    assert (not errors) is valid
    carrier_errors = [c for c, level in _codes(text, enforce=True).items() if level == "error"]
    assert (not carrier_errors) is valid_for_carriers


def test_carrier_rules_are_warnings_when_the_switch_is_off():
    # LeanCloud's own example: valid, but 9 English letters break two carrier rules.
    assert _codes("LeanCloud") == {"carrier-length": "warning", "carrier-ascii": "warning"}
    assert _codes("12306") == {"carrier-digits": "warning"}
    assert _codes("BuyBuy", enforce=True) == {"carrier-ascii": "error"}


def test_leancloud_example_signatures_work_as_written(app):
    leancloud = content.create_signature(app=app, name="LeanCloud", text="LeanCloud")
    buy = content.create_signature(app=app, name="sign_BuyBuyBuy", text="BuyBuyBuy")
    assert str(buy) == "sign_BuyBuyBuy 【BuyBuyBuy】"
    assert leancloud.is_default and not buy.is_default
    assert leancloud.status == buy.status == "pending"


def test_switch_on_refuses_all_english_signature(app):
    app.enforce_carrier_signature_rules = True
    app.save()
    with pytest.raises(ValidationError) as exc:
        content.create_signature(app=app, name="LeanCloud", text="LeanCloud")
    assert "text" in exc.value.message_dict
    assert content.create_signature(app=app, name="sign_a", text="应用A").pk


def test_invalid_text_and_name_are_refused(app):
    with pytest.raises(ValidationError) as exc:
        content.create_signature(app=app, name="has space", text="【应用A】")
    assert set(exc.value.message_dict) == {"name", "text"}
    assert not Signature.objects.exists()


def test_at_most_three_signatures_including_rejected(app):
    first = content.create_signature(app=app, name="s1", text="应用一")
    content.reject(item=first, reviewer=None, reason="Not your brand.")
    content.create_signature(app=app, name="s2", text="应用二")
    content.create_signature(app=app, name="s3", text="应用三")
    with pytest.raises(ValidationError, match="at most 3"):
        content.create_signature(app=app, name="s4", text="应用四")
    other = App.objects.create(name="Other")
    assert content.create_signature(app=other, name="s4", text="应用四").pk  # per app


@override_settings(SMS_SERVICE={"MAX_SIGNATURES_PER_APP": 1, "SIGNATURE_MIN_LENGTH": 4})
def test_limits_are_settings(app):
    with pytest.raises(ValidationError):
        content.create_signature(app=app, name="s1", text="应用A")  # 3 < 4
    content.create_signature(app=app, name="s1", text="应用AB")
    with pytest.raises(ValidationError):
        content.create_signature(app=app, name="s2", text="应用CD")


def test_first_signature_is_default_and_default_stays_unique(app):
    one = content.create_signature(app=app, name="one", text="应用一")
    two = content.create_signature(app=app, name="two", text="应用二")
    content.set_default_signature(signature=two)
    assert list(app.signatures.filter(is_default=True)) == [two]
    one.refresh_from_db()
    assert not one.is_default


def test_deleting_the_default_hands_it_on(app):
    one = approved_signature(app, "one", "应用一")
    content.create_signature(app=app, name="two", text="应用二")
    three = approved_signature(app, "three", "应用三")
    content.delete_signature(signature=one)
    assert list(app.signatures.filter(is_default=True)) == [three]  # approved preferred


def test_signature_in_use_cannot_be_deleted(app):
    signature = approved_signature(app)
    approved_template(app, "Order_Notice", "Order {{order_id}}.")
    with pytest.raises(ProtectedError):
        content.delete_signature(signature=signature)


def test_pending_and_rejected_signatures_never_send(app):
    signature = content.create_signature(app=app, name="sign_BuyBuyBuy", text="BuyBuyBuy")
    with pytest.raises(InvalidSignatureError):
        content.resolve_content(app=app, template_name=None, sign_name="sign_BuyBuyBuy")
    with pytest.raises(SignatureNotVerifiedError):  # no approved default
        content.resolve_content(app=app, template_name=None, sign_name=None)
    content.reject(item=signature, reviewer=None, reason="Unknown brand.")
    with pytest.raises(InvalidSignatureError) as exc:
        content.resolve_content(app=app, template_name=None, sign_name="sign_BuyBuyBuy")
    assert exc.value.code == 600


def test_approved_default_signature_is_used_without_sign(app):
    signature = approved_signature(app)
    resolved = content.resolve_content(app=app, template_name=None, sign_name=None)
    assert resolved.signature == signature and resolved.version is None


def test_unknown_sign_is_600(app):
    approved_signature(app)
    with pytest.raises(InvalidSignatureError):
        content.resolve_content(app=app, template_name=None, sign_name="nope")


def test_changing_the_text_sends_it_back_to_review(app):
    signature = approved_signature(app)
    signature = Signature.objects.get(pk=signature.pk)
    signature.source = Signature.Source.BRAND
    content.submit_signature(signature=signature)
    assert signature.status == "approved"  # no text change: still approved
    signature.text = "BuyMore"
    content.submit_signature(signature=signature)
    signature.refresh_from_db()
    assert signature.status == "pending" and signature.reviewed_at is None


def test_saving_a_rejected_signature_resubmits_it(app):
    signature = content.create_signature(app=app, name="s", text="应用A")
    content.reject(item=signature, reviewer=None, reason="Proof missing.")
    signature = Signature.objects.get(pk=signature.pk)
    content.submit_signature(signature=signature)
    signature.refresh_from_db()
    assert signature.status == "pending" and signature.rejection_reason == ""


def test_proof_document_upload(app, tmp_path, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path
    proof = SimpleUploadedFile("licence.pdf", b"%PDF-1.4 proof")
    signature = content.create_signature(app=app, name="s", text="应用A", proof=proof)
    signature.refresh_from_db()
    assert signature.proof.name.endswith(".pdf")
    assert signature.proof.read() == b"%PDF-1.4 proof"
