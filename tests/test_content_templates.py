"""Templates: versions, review workflow, resolution (604/605/600)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError

from sms_service import signals
from sms_service.exceptions import (
    InvalidSignatureError,
    SignatureNotVerifiedError,
    TemplateNotFoundError,
    TemplateNotVerifiedError,
)
from sms_service.models import Template, TemplateVersion
from sms_service.services import content
from tests.content_fixtures import (
    approved_signature,
    approved_template,
    latest,
    make_reviewer,
)

pytestmark = pytest.mark.django_db

ORDER_NOTICE = "Your package for the order {{order_id}} will be delivered by the end of today."


@pytest.fixture
def signature(app):
    return approved_signature(app)


def test_new_template_waits_for_review(app, signature):
    template = content.create_template(app=app, name="Order_Notice", kind="notification",
                                       body=ORDER_NOTICE, signature=signature)
    version = template.versions.get()
    assert (version.number, version.status) == (1, "pending")
    with pytest.raises(TemplateNotVerifiedError) as exc:
        content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert exc.value.code == 605


def test_unknown_template_is_604(app, signature):
    with pytest.raises(TemplateNotFoundError) as exc:
        content.resolve_content(app=app, template_name="Nope", sign_name=None)
    assert exc.value.code == 604


def test_template_names_are_unique_per_app(app, signature):
    approved_template(app, "Order_Notice", ORDER_NOTICE)
    with pytest.raises(ValidationError):
        content.create_template(app=app, name="Order_Notice", kind="notification",
                                body="x", signature=signature)


def test_editing_an_approved_template_keeps_the_approved_version_serving(app, signature):
    template = approved_template(app, "Order_Notice", ORDER_NOTICE)
    v2 = content.submit_template_version(template=template, body="Order {{order_id}} shipped.",
                                         signature=signature)
    assert (v2.number, v2.status) == (2, "pending")
    resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert resolved.version.number == 1
    content.approve(item=v2, reviewer=None)
    resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert resolved.version.number == 2


def test_rejected_edit_leaves_the_approved_version_serving(app, signature):
    template = approved_template(app, "Order_Notice", ORDER_NOTICE)
    v2 = content.submit_template_version(template=template, body="降价！{{order_id}}",
                                         signature=signature)
    content.reject(item=v2, reviewer=None, reason="Marketing wording: use a marketing template.")
    resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert resolved.version.number == 1
    v2.refresh_from_db()
    assert v2.rejection_reason.startswith("Marketing wording")


def test_resubmitting_the_same_text_adds_no_version(app, signature):
    template = approved_template(app, "Order_Notice", ORDER_NOTICE)
    again = content.submit_template_version(template=template, body=ORDER_NOTICE,
                                            signature=signature)
    assert again.number == 1 and template.versions.count() == 1


def test_a_newer_submission_withdraws_the_older_pending_one(app, signature):
    template = approved_template(app, "Order_Notice", ORDER_NOTICE)
    v2 = content.submit_template_version(template=template, body="v2 {{order_id}}",
                                         signature=signature)
    v3 = content.submit_template_version(template=template, body="v3 {{order_id}}",
                                         signature=signature)
    v2.refresh_from_db()
    assert v2.status == "rejected" and "version 3" in v2.rejection_reason
    assert list(TemplateVersion.objects.pending()) == [v3]


def test_versions_are_immutable_once_submitted(app, signature):
    template = approved_template(app, "Order_Notice", ORDER_NOTICE)
    version = TemplateVersion.objects.get(template=template)
    version.body = "Something else"
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    version = TemplateVersion.objects.get(template=template)
    version.rejection_reason = "review fields may change"
    version.save()


def test_template_type_is_fixed_once_approved(app, signature):
    template = approved_template(app, "Order_Notice", ORDER_NOTICE)
    template = Template.objects.get(pk=template.pk)
    template.kind = "marketing"
    with pytest.raises(ValidationError):
        content.save_template(template=template, body=ORDER_NOTICE, signature=signature)


def test_bad_handlebars_is_refused_at_submission(app, signature):
    with pytest.raises(ValidationError) as exc:
        content.create_template(app=app, name="Broken", kind="notification",
                                body="{{#if x}}unclosed", signature=signature)
    assert "body" in exc.value.message_dict
    assert not Template.objects.filter(name="Broken").exists()


def test_signature_of_another_app_is_refused(app, signature):
    from sms_service.models import App

    other = App.objects.create(name="Other")
    foreign = approved_signature(other, "foreign", "别家应用")
    with pytest.raises(ValidationError) as exc:
        content.create_template(app=app, name="T", kind="notification", body="hi",
                                signature=foreign)
    assert "signature" in exc.value.message_dict


def test_template_cannot_be_approved_before_its_signature(app):
    pending_sig = content.create_signature(app=app, name="sign_BuyBuyBuy", text="BuyBuyBuy")
    template = content.create_template(app=app, name="Order_Notice", kind="notification",
                                       body=ORDER_NOTICE, signature=pending_sig)
    with pytest.raises(ValidationError, match="signature"):
        content.approve(item=latest(template), reviewer=None)
    content.approve(item=pending_sig, reviewer=None)
    content.approve(item=latest(template), reviewer=None)
    assert latest(template).status == "approved"


def test_named_sign_overrides_only_when_approved(app, signature):
    approved_template(app, "Order_Notice", ORDER_NOTICE)
    other = approved_signature(app, "LeanCloud", "LeanCloud")
    pending = content.create_signature(app=app, name="pending_sig", text="应用A")
    resolved = content.resolve_content(app=app, template_name="Order_Notice",
                                       sign_name="LeanCloud")
    assert resolved.signature == other
    with pytest.raises(InvalidSignatureError):
        content.resolve_content(app=app, template_name="Order_Notice", sign_name="pending_sig")
    assert pending.status == "pending"
    resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert resolved.signature == signature


def test_template_with_its_own_signature_needs_no_default(app):
    default = content.create_signature(app=app, name="default", text="默认应用")  # pending
    own = approved_signature(app, "own", "自有品牌")
    approved_template(app, "Order_Notice", ORDER_NOTICE, signature=own)
    assert default.is_default
    resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert resolved.signature == own


def test_template_whose_signature_went_back_to_review_does_not_send(app, signature):
    approved_template(app, "Order_Notice", ORDER_NOTICE)
    signature.text = "BuyMore"
    content.submit_signature(signature=signature)
    with pytest.raises(SignatureNotVerifiedError):
        content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)


def test_marketing_needs_a_company_name(app, signature):
    approved_template(app, "Sale", "春装上市，凭短信可享 9 折。", kind="marketing")
    assert content.resolve_content(app=app, template_name="Sale", sign_name=None).kind == "marketing"
    app.company_name = ""
    app.save()
    with pytest.raises(TemplateNotVerifiedError, match="company"):
        content.resolve_content(app=app, template_name="Sale", sign_name=None)


def test_resolution_query_count(app, signature, django_assert_max_num_queries):
    approved_template(app, "Order_Notice", ORDER_NOTICE)
    with django_assert_max_num_queries(2):
        resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
        content.render_message(content=resolved, variables={"order_id": "1"},
                               system={"name": "x", "code": "", "ttl": 10,
                                       "sign": "BuyBuyBuy", "template": "Order_Notice"})


# --- Review: permissions, signals, email -------------------------------------------


def test_only_reviewers_decide(app):
    signature = content.create_signature(app=app, name="s", text="应用A")
    author = make_reviewer("author", can_review=False)
    with pytest.raises(PermissionDenied):
        content.approve(item=signature, reviewer=author)
    reviewer = make_reviewer()
    content.approve(item=signature, reviewer=reviewer)
    signature.refresh_from_db()
    assert signature.status == "approved" and signature.reviewed_by == reviewer
    assert signature.reviewed_at is not None


def test_rejection_needs_a_reason_and_decisions_are_final(app):
    signature = content.create_signature(app=app, name="s", text="应用A")
    with pytest.raises(ValidationError):
        content.reject(item=signature, reviewer=None, reason="  ")
    content.reject(item=signature, reviewer=None, reason="Not a brand.")
    with pytest.raises(ValidationError, match="already"):
        content.approve(item=signature, reviewer=None)


def test_review_signals(app):
    submitted, approved, rejected = mock.Mock(), mock.Mock(), mock.Mock()
    signals.content_submitted.connect(submitted)
    signals.content_approved.connect(approved)
    signals.content_rejected.connect(rejected)
    try:
        signature = content.create_signature(app=app, name="s", text="应用A")
        content.approve(item=signature, reviewer=None)
        template = content.create_template(app=app, name="T", kind="notification",
                                           body="hi", signature=signature)
        content.reject(item=latest(template), reviewer=None, reason="Too short.")
    finally:
        signals.content_submitted.disconnect(submitted)
        signals.content_approved.disconnect(approved)
        signals.content_rejected.disconnect(rejected)
    assert submitted.call_count == 2
    assert approved.call_args.kwargs["item"] == signature
    assert approved.call_args.kwargs["app"] == app
    assert rejected.call_args.kwargs["reason"] == "Too short."
    assert rejected.call_args.kwargs["sender"] is TemplateVersion


def test_owner_is_emailed_on_decisions(app, django_capture_on_commit_callbacks):
    app.owner_email = "owner@example.com"
    app.save()
    signature = content.create_signature(app=app, name="s", text="应用A")
    with django_capture_on_commit_callbacks(execute=True):
        content.reject(item=signature, reviewer=None, reason="Show a trademark.")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@example.com"]
    assert "rejected" in mail.outbox[0].subject
    assert "Show a trademark." in mail.outbox[0].body


def test_owner_email_falls_back_to_the_owner_account(app, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    app.owner = get_user_model().objects.create_user("boss", email="boss@example.com")
    app.save()
    signature = content.create_signature(app=app, name="s", text="应用A")
    with django_capture_on_commit_callbacks(execute=True):
        content.approve(item=signature, reviewer=None)
    assert mail.outbox[0].to == ["boss@example.com"]
    assert "approved" in mail.outbox[0].subject


def test_no_email_when_the_app_has_no_owner(app, django_capture_on_commit_callbacks):
    signature = content.create_signature(app=app, name="s", text="应用A")
    with django_capture_on_commit_callbacks(execute=True):
        content.approve(item=signature, reviewer=None)
    assert mail.outbox == []


def test_review_queue_lists_pending_items_oldest_first(app, signature):
    pending_sig = content.create_signature(app=app, name="s2", text="应用二")
    template = content.create_template(app=app, name="T", kind="notification", body="hi",
                                       signature=signature)
    queue = content.review_queue()
    assert queue.signatures == [pending_sig]
    assert queue.versions == [latest(template)]
    assert len(queue) == 2 == content.pending_count()


# --- Demo content -------------------------------------------------------------------


def test_seed_demo_content(app):
    signature = content.seed_demo_content(app)
    assert signature.is_default and signature.status == "approved"
    kinds = {t.name: t.kind for t in app.templates.all()}
    assert kinds == {"Register_Code": "verification", "Register_Notice": "notification",
                     "Order_Notice": "notification", "Spring_Sale": "marketing"}
    for name in kinds:
        resolved = content.resolve_content(app=app, template_name=name, sign_name=None)
        assert resolved.version.status == "approved"
    content.seed_demo_content(app)  # idempotent
    assert app.templates.count() == 4 and TemplateVersion.objects.count() == 4
    assert app.signatures.count() == 1
