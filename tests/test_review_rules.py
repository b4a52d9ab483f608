"""Review enforces the lint: errors refuse approval unless overridden with a reason."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from sms_service.services import content
from tests.content_fixtures import approved_signature, make_reviewer

pytestmark = pytest.mark.django_db

QUEUE = "admin:sms_service_review_queue"


def _overrider():
    user = make_reviewer("senior")
    user.user_permissions.add(Permission.objects.get(codename="override_lint"))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def broken_version(app):
    """A verification template without {{code}}: its lint reports an error."""
    signature = approved_signature(app)
    template = content.create_template(
        app=app, name="Login_Code", kind="verification",
        body="Welcome to {{name}}, your login is ready.", signature=signature,
    )
    return template.versions.get()


def _approve(client, version, **extra):
    return client.post(
        reverse(QUEUE),
        {"item_type": "version", "item_id": version.pk, "decision": "approve", **extra},
        follow=True,
    )


def test_a_version_with_lint_errors_cannot_be_approved(client, broken_version):
    client.force_login(make_reviewer())
    response = _approve(client, broken_version)
    broken_version.refresh_from_db()
    assert broken_version.status == "pending"
    text = " ".join(str(m) for m in response.context["messages"])
    assert "cannot be approved" in text and "{{code}} exactly once" in text


def test_a_reviewer_without_the_override_permission_cannot_override(client, broken_version):
    client.force_login(make_reviewer())
    response = _approve(client, broken_version, override_reason="Looks fine to me.")
    broken_version.refresh_from_db()
    assert broken_version.status == "pending"
    assert any("override permission" in str(m) for m in response.context["messages"])


def test_override_needs_a_written_reason(client, broken_version):
    client.force_login(_overrider())
    _approve(client, broken_version, override_reason="   ")
    broken_version.refresh_from_db()
    assert broken_version.status == "pending"


def test_override_with_a_reason_is_kept_and_shown(client, broken_version):
    senior = _overrider()
    client.force_login(senior)
    page = client.get(reverse(QUEUE)).content.decode()
    assert "Approve despite errors" in page and 'name="override_reason"' in page
    _approve(client, broken_version, override_reason="Legal asked for this exact text.")
    broken_version.refresh_from_db()
    assert broken_version.status == "approved" and broken_version.reviewed_by == senior
    assert broken_version.override_reason == "Legal asked for this exact text."
    page = client.get(reverse(QUEUE)).content.decode()
    assert "Approved despite lint errors" in page
    assert "Legal asked for this exact text." in page and "Login_Code v1" in page
    change = client.get(
        reverse("admin:sms_service_template_change", args=[broken_version.template_id])
    ).content.decode()
    assert "Legal asked for this exact text." in change


def test_a_clean_version_is_approved_without_a_reason(client, app):
    signature = approved_signature(app)
    template = content.create_template(
        app=app, name="Login_Code", kind="verification",
        body="Your code is {{code}}, valid {{ttl}} minutes.", signature=signature,
    )
    client.force_login(make_reviewer())
    _approve(client, template.versions.get(), override_reason="not needed")
    version = template.versions.get()
    assert version.status == "approved" and version.override_reason == ""


def test_the_service_refuses_errors_for_every_caller(broken_version):
    with pytest.raises(ValidationError):
        content.approve(item=broken_version, reviewer=make_reviewer())
    with pytest.raises(PermissionDenied):
        content.approve(item=broken_version, reviewer=make_reviewer("r2"),
                        override_reason="because")
    broken_version.refresh_from_db()
    assert broken_version.status == "pending"


def test_bulk_approve_skips_items_with_errors(client, broken_version):
    client.force_login(make_reviewer())
    client.post(reverse("admin:sms_service_template_changelist"), {
        "action": "approve_pending", "_selected_action": [broken_version.template_id]})
    broken_version.refresh_from_db()
    assert broken_version.status == "pending"


def test_the_queue_shows_each_items_own_status(client, app):
    signature = approved_signature(app)
    content.create_template(app=app, name="Order_Notice", kind="notification",
                            body="Order {{order_id}}.", signature=signature)
    client.force_login(make_reviewer())
    page = client.get(reverse(QUEUE)).content.decode()
    # The pending version shows its own state, not its approved signature's.
    assert 'Order_Notice v1 <span class="sms-badge sms-status-pending">Pending review</span>' in page


def test_the_add_page_has_a_working_live_preview(client, app):
    signature = approved_signature(app)
    client.force_login(make_reviewer())
    page = client.get(reverse("admin:sms_service_template_add")).content.decode()
    preview_url = reverse("admin:sms_service_template_preview")
    assert f'data-url="{preview_url}"' in page
    result = client.post(preview_url, {
        "body": "Hi {{name}}", "kind": "verification", "signature": signature.pk,
    }).json()
    assert result["text"].startswith("【BuyBuyBuy】Hi ")
    assert "code-count" in [f["code"] for f in result["findings"]]
