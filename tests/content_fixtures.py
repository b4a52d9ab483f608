"""Helpers for the content tests (signatures, templates, reviewers)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from sms_service.models import App, Signature, Template, TemplateVersion
from sms_service.services import content


def make_reviewer(username: str = "reviewer", *, can_review: bool = True):
    """A staff user (not a superuser) who can view content and, optionally, review."""
    user = get_user_model().objects.create_user(
        username=username, password="pw", email=f"{username}@example.com", is_staff=True
    )
    codenames = ["view_signature", "view_template", "change_template", "change_signature",
                 "add_template", "add_signature"]
    if can_review:
        codenames.append("review_content")
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="sms_service", codename__in=codenames)
    )
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def approved_signature(app: App, name: str = "sign_BuyBuyBuy", text: str = "BuyBuyBuy") -> Signature:
    signature = content.create_signature(app=app, name=name, text=text)
    return content.approve(item=signature, reviewer=None)


def approved_template(
    app: App, name: str, body: str, *, kind: str = "notification",
    signature: Signature | None = None,
) -> Template:
    signature = signature or app.signatures.get(is_default=True)
    template = content.create_template(app=app, name=name, kind=kind, body=body,
                                       signature=signature)
    content.approve(item=template.versions.get(), reviewer=None)
    return template


def latest(template: Template) -> TemplateVersion:
    return template.versions.order_by("-number").first()
