"""Admin: review queue, decisions, template editing, lint and live preview."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.urls import reverse

from sms_service.models import Signature, Template, TemplateVersion
from sms_service.services import content
from tests.content_fixtures import (
    approved_signature,
    approved_template,
    latest,
    make_reviewer,
)

pytestmark = pytest.mark.django_db

QUEUE = "admin:sms_service_review_queue"


@pytest.fixture
def reviewer():
    return make_reviewer()


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def author_client(client):
    client.force_login(make_reviewer("author", can_review=False))
    return client


@pytest.fixture
def signature(app):
    return approved_signature(app)


def test_queue_lists_pending_signatures_and_versions_with_lint(reviewer_client, app, signature):
    content.create_signature(app=app, name="sign_pending", text="LeanCloud")
    content.create_template(app=app, name="Order_Notice", kind="notification",
                            body="今日降价 {{order_id}}", signature=signature)
    response = reviewer_client.get(reverse(QUEUE))
    assert response.status_code == 200
    page = response.content.decode()
    assert "【LeanCloud】" in page and "sign_pending" in page
    assert "Order_Notice v1" in page
    assert 'data-code="carrier-ascii"' in page  # warning shown, switch off
    assert 'data-code="marketing-words"' in page
    assert "【BuyBuyBuy】今日降价 &lt;order_id&gt;" in page  # sample preview
    assert "billed as 1 message" in page


def test_queue_names_the_version_still_sending_in_a_fixed_number_of_queries(
    reviewer_client, app, signature, django_assert_max_num_queries
):
    def pending_edits(count):
        for i in range(count):
            template = approved_template(app, f"Notice_{i}_{count}", "Order {{order_id}}.")
            content.submit_template_version(
                template=template, body="Order {{order_id}} shipped.", signature=signature
            )

    pending_edits(1)
    with django_assert_max_num_queries(100) as one:
        reviewer_client.get(reverse(QUEUE))
    pending_edits(5)
    with django_assert_max_num_queries(len(one.captured_queries)):
        page = reviewer_client.get(reverse(QUEUE)).content.decode()
    assert page.count("v1 keeps sending until this one is approved") == 6


def test_queue_requires_the_review_permission(author_client):
    assert author_client.get(reverse(QUEUE)).status_code == 403
    assert author_client.post(reverse(QUEUE), {}).status_code == 403


def test_queue_requires_staff_login(client):
    response = client.get(reverse(QUEUE))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_approve_from_the_queue(reviewer_client, reviewer, app):
    pending = content.create_signature(app=app, name="s", text="应用A")
    response = reviewer_client.post(
        reverse(QUEUE),
        {"item_type": "signature", "item_id": pending.pk, "decision": "approve"},
        follow=True,
    )
    pending.refresh_from_db()
    assert pending.status == "approved" and pending.reviewed_by == reviewer
    assert "Approved s 【应用A】." in [str(m) for m in response.context["messages"]]


def test_reject_needs_a_reason(reviewer_client, app, django_capture_on_commit_callbacks):
    app.owner_email = "owner@example.com"
    app.save()
    pending = content.create_signature(app=app, name="s", text="应用A")
    data = {"item_type": "signature", "item_id": pending.pk, "decision": "reject"}
    response = reviewer_client.post(reverse(QUEUE), {**data, "reason": ""}, follow=True)
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert any("reason" in str(m) for m in response.context["messages"])
    with django_capture_on_commit_callbacks(execute=True):
        reviewer_client.post(reverse(QUEUE), {**data, "reason": "Not your brand."})
    pending.refresh_from_db()
    assert (pending.status, pending.rejection_reason) == ("rejected", "Not your brand.")
    assert mail.outbox[0].to == ["owner@example.com"]
    assert "Not your brand." in mail.outbox[0].body


def test_get_never_changes_state(reviewer_client, app):
    pending = content.create_signature(app=app, name="s", text="应用A")
    reviewer_client.get(reverse(QUEUE), {"item_type": "signature", "item_id": pending.pk,
                                         "decision": "approve"})
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_next_must_stay_on_site(reviewer_client, app):
    pending = content.create_signature(app=app, name="s", text="应用A")
    response = reviewer_client.post(reverse(QUEUE), {
        "item_type": "signature", "item_id": pending.pk, "decision": "approve",
        "next": "https://evil.example/"})
    assert response["Location"] == reverse(QUEUE)


def test_approving_a_version_from_the_template_page(reviewer_client, app, signature):
    template = approved_template(app, "Order_Notice", "Order {{order_id}}.")
    v2 = content.submit_template_version(template=template, body="Order {{order_id}} shipped.",
                                         signature=signature)
    change_url = reverse("admin:sms_service_template_change", args=[template.pk])
    page = reviewer_client.get(change_url).content.decode()
    assert "sending now" in page and f'name="item_id" value="{v2.pk}"' in page
    response = reviewer_client.post(reverse(QUEUE), {
        "item_type": "version", "item_id": v2.pk, "decision": "approve", "next": change_url})
    assert response["Location"] == change_url
    assert latest(template).status == "approved"


def test_authors_see_lint_but_no_review_buttons(author_client, app, signature):
    template = content.create_template(app=app, name="T", kind="verification",
                                       body="No code here", signature=signature)
    page = author_client.get(
        reverse("admin:sms_service_template_change", args=[template.pk])).content.decode()
    assert 'data-code="code-count"' in page
    assert 'name="decision"' not in page


def test_adding_a_template_submits_version_one(author_client, app, signature):
    response = author_client.post(reverse("admin:sms_service_template_add"), {
        "app": app.pk, "name": "Order_Notice", "kind": "notification",
        "body": "Order {{order_id}} shipped.", "signature": signature.pk,
        "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    version = Template.objects.get(name="Order_Notice").versions.get()
    assert (version.number, version.status, version.body) == (1, "pending",
                                                              "Order {{order_id}} shipped.")


def test_editing_an_approved_template_adds_a_pending_version(author_client, app, signature):
    template = approved_template(app, "Order_Notice", "Order {{order_id}}.")
    url = reverse("admin:sms_service_template_change", args=[template.pk])
    form = {"name": "Order_Notice", "body": "Order {{order_id}} is on its way.",
            "signature": signature.pk, "versions-TOTAL_FORMS": 1,
            "versions-INITIAL_FORMS": 1}
    response = author_client.post(url, form, follow=True)
    assert response.status_code == 200
    assert [(v.number, v.status) for v in template.versions.order_by("number")] == [
        (1, "approved"), (2, "pending")]
    assert any("keeps sending" in str(m) for m in response.context["messages"])
    resolved = content.resolve_content(app=app, template_name="Order_Notice", sign_name=None)
    assert resolved.version.number == 1


def test_bad_handlebars_is_a_form_error(author_client, app, signature):
    response = author_client.post(reverse("admin:sms_service_template_add"), {
        "app": app.pk, "name": "T", "kind": "notification", "body": "{{#if x}}",
        "signature": signature.pk, "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0,
    })
    assert response.status_code == 200
    assert "Not valid Handlebars" in response.content.decode()
    assert not Template.objects.exists()


def test_live_preview_endpoint(author_client, app, signature):
    url = reverse("admin:sms_service_template_preview")
    assert author_client.get(url).status_code == 405
    response = author_client.post(url, {
        "body": "Order {{order_id}} & more", "kind": "marketing", "signature": signature.pk,
        "samples": json.dumps({"order_id": "7623432424540"}),
    })
    data = response.json()
    assert data["text"] == "【BuyBuyBuy】Order 7623432424540 & more回复TD退订"
    assert (data["length"], data["segments"]) == (len(data["text"]), 1)
    assert data["findings"] == []


def test_signature_admin_add_validates_and_defaults(author_client, app):
    url = reverse("admin:sms_service_signature_add")
    response = author_client.post(url, {"app": app.pk, "name": "bad", "text": "【应用A】"})
    assert response.status_code == 200 and not Signature.objects.exists()
    response = author_client.post(url, {"app": app.pk, "name": "LeanCloud", "text": "LeanCloud"})
    assert response.status_code == 302
    signature = Signature.objects.get()
    assert signature.is_default and signature.status == "pending"
    page = author_client.get(
        reverse("admin:sms_service_signature_change", args=[signature.pk])).content.decode()
    assert 'data-code="carrier-ascii"' in page


def test_bulk_reject_asks_for_a_reason(reviewer_client, app):
    one = content.create_signature(app=app, name="one", text="应用一")
    two = content.create_signature(app=app, name="two", text="应用二")
    url = reverse("admin:sms_service_signature_changelist")
    data = {"action": "reject_selected", "_selected_action": [one.pk, two.pk]}
    response = reviewer_client.post(url, data)
    assert response.status_code == 200 and b'name="reason"' in response.content
    assert Signature.objects.pending().count() == 2
    reviewer_client.post(url, {**data, "post": "yes", "reason": "Unclear brand."})
    assert set(Signature.objects.values_list("status", flat=True)) == {"rejected"}


def test_bulk_approve_versions(reviewer_client, app, signature):
    template = content.create_template(app=app, name="T", kind="notification", body="hi",
                                       signature=signature)
    reviewer_client.post(reverse("admin:sms_service_template_changelist"), {
        "action": "approve_pending", "_selected_action": [template.pk]})
    assert latest(template).status == "approved"


def test_review_actions_hidden_from_authors(author_client, app):
    page = author_client.get(reverse("admin:sms_service_signature_changelist")).content.decode()
    assert "approve_selected" not in page and "Review queue" not in page


def test_changelist_links_to_the_queue(reviewer_client, app):
    content.create_signature(app=app, name="s", text="应用A")
    page = reviewer_client.get(reverse("admin:sms_service_template_changelist")).content.decode()
    assert reverse(QUEUE) in page and "Review queue (1 pending)" in page


def test_versions_cannot_be_edited_in_the_admin(author_client, app, signature):
    template = approved_template(app, "T", "hi")
    url = reverse("admin:sms_service_template_change", args=[template.pk])
    page = author_client.get(url).content.decode()
    assert 'name="versions-0-body"' not in page
    assert TemplateVersion.objects.get().body == "hi"
