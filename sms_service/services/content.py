"""Signatures and templates: submission, resolution and rendering.

* Authors submit signatures and template versions; both start ``pending``
  and only approved ones send. Editing an approved template adds a new pending
  version while the approved one keeps serving.
* Reviewers approve or reject them (:mod:`sms_service.services.review`; its
  public names are importable from here too).
* The sending pipeline calls :func:`resolve_content` and :func:`render_message`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import templating
from .._types import User
from ..exceptions import (
    InvalidSignatureError,
    SignatureNotVerifiedError,
    TemplateNotFoundError,
    TemplateNotVerifiedError,
)
from ..models import App, MessageKind, Signature, Template, TemplateVersion
from ..models.content import ReviewStatus
from .review import (  # noqa: F401  (public names of the review, importable from here)
    Reviewable,
    ReviewQueue,
    _reset_review,
    _send_submitted,
    approve,
    can_override,
    can_review,
    lint_errors,
    notify_decision,
    pending_count,
    recent_overrides,
    reject,
    review_queue,
)
from .tenants import forget_app

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class ResolvedContent:
    signature: Signature | None  # None only for voice codes
    version: TemplateVersion | None
    kind: str  # MessageKind value


# --- Sending: resolve and render --------------------------------------------------


def resolve_content(
    *, app: App, template_name: str | None, sign_name: str | None
) -> ResolvedContent:
    """The approved template version and signature to send with.

    604 unknown template; 605 template without an approved version, marketing
    template on an app without a company name, or no approved signature to use
    (the default one, or the template's own); 600 unknown or unapproved named
    signature. A named signature overrides the template's only when approved.
    """
    named = _named_signature(app=app, sign_name=sign_name) if sign_name else None
    if not template_name:
        signature = named or _default_signature(app=app)
        return ResolvedContent(
            signature=signature, version=None, kind=MessageKind.VERIFICATION
        )
    # One query on the success path; a second only to tell 604 from 605.
    version = (
        TemplateVersion.objects.approved()
        .filter(template__app=app, template__name=template_name)
        .select_related("template", "signature")
        .order_by("-number")
        .first()
    )
    if version is None:
        if not app.templates.filter(name=template_name).exists():
            raise TemplateNotFoundError()
        raise TemplateNotVerifiedError()
    template = version.template
    if template.kind == MessageKind.MARKETING and not app.company_name.strip():
        raise TemplateNotVerifiedError(
            "Marketing messages need a company name on the app."
        )
    signature = named or version.signature
    if signature.status != ReviewStatus.APPROVED:
        raise SignatureNotVerifiedError()
    return ResolvedContent(signature=signature, version=version, kind=template.kind)


def _named_signature(*, app: App, sign_name: str) -> Signature:
    signature = app.signatures.filter(name=sign_name).first()
    if signature is None or signature.status != ReviewStatus.APPROVED:
        raise InvalidSignatureError()
    return signature


def _default_signature(*, app: App) -> Signature:
    if hasattr(app, "default_signature_pk"):
        # Loaded with the app by App.objects.for_api() (the API's auth query).
        if app.default_signature_pk is None:
            raise SignatureNotVerifiedError()
        return Signature(
            pk=app.default_signature_pk, app=app, name=app.default_signature_name,
            text=app.default_signature_text, is_default=True,
            status=ReviewStatus.APPROVED,
        )
    signature = app.signatures.approved().filter(is_default=True).first()
    if signature is None:
        raise SignatureNotVerifiedError()
    return signature


def voice_signature_id(*, app: App, sign_name: str | None) -> int | None:
    """The signature whose per-number sending budget a voice code counts against.

    A call carries no signature, but LeanCloud's per-signature limits cover every
    message type: the named signature when approved, else the app's default
    (None when it has none).
    """
    if sign_name:
        named = app.signatures.approved().filter(name=sign_name).values_list("pk", flat=True)
        if named:
            return named[0]
    if hasattr(app, "default_signature_pk"):
        return app.default_signature_pk
    return app.signatures.approved().filter(is_default=True).values_list("pk", flat=True).first()


def render_message(
    *, content: ResolvedContent, variables: dict[str, Any], system: dict[str, Any]
) -> str:
    """Final text: 【signature】 + rendered body (+ 回复TD退订 for marketing).

    System variables win over caller variables; caller values with
    【 or 】 raise InvalidParameterError; a missing variable or any
    render failure raises TemplateRenderError (606).
    """
    version = content.version
    if version is None or content.signature is None:
        raise ValueError("render_message needs a template version and a signature")
    body = templating.render_body(
        version.body, variables=variables, system=system, key=version.pk
    )
    return templating.compose(
        signature_text=content.signature.text,
        body=body,
        marketing=content.kind == MessageKind.MARKETING,
    )


# --- Signatures -------------------------------------------------------------------


def submit_signature(
    *, signature: Signature, submitted_by: User | None = None
) -> Signature:
    """Save a new or edited signature, sending it to review when its text changed.

    Validates the text rules (and the carrier rules when the app enforces them)
    and the per-app limit (ValidationError). The app's first
    signature becomes its default.
    """
    with transaction.atomic():
        # Serialises signature changes per app: the count limit and the single
        # default cannot be raced by two concurrent submissions.
        App.objects.select_for_update().filter(pk=signature.app_id).first()
        signature.full_clean()
        # A new text needs a new review; saving a rejected signature resubmits it.
        resubmitted = signature.text_changed or signature.status == ReviewStatus.REJECTED
        if signature._state.adding:
            signature.is_default = not Signature.objects.filter(
                app_id=signature.app_id
            ).exists()
        if resubmitted:
            _reset_review(signature, submitted_by)
        signature.save()
        signature._loaded_text = signature.text
    if resubmitted:
        _send_submitted(signature)
    return signature


def create_signature(
    *,
    app: App,
    name: str,
    text: str,
    source: str = "",
    proof: File | None = None,
    submitted_by: User | None = None,
) -> Signature:
    """Create a pending signature (see :func:`submit_signature`)."""
    signature = Signature(app=app, name=name, text=text, source=source)
    if proof is not None:
        signature.proof = proof
    return submit_signature(signature=signature, submitted_by=submitted_by)


def set_default_signature(*, signature: Signature) -> Signature:
    """Make ``signature`` its app's only default."""
    with transaction.atomic():
        # Unset first: the partial unique constraint allows one default per app.
        Signature.objects.filter(app_id=signature.app_id, is_default=True).exclude(
            pk=signature.pk
        ).update(is_default=False)
        Signature.objects.filter(pk=signature.pk).update(is_default=True)
    signature.is_default = True
    # update() sends no post_save: drop the API's cached view of the app here.
    forget_app(signature.app.app_id)
    return signature


def delete_signature(*, signature: Signature) -> None:
    """Delete a signature; the oldest remaining one inherits the default flag.

    Raises ProtectedError while template versions or messages use it.
    """
    with transaction.atomic():
        App.objects.select_for_update().filter(pk=signature.app_id).first()
        was_default = signature.is_default
        app_id = signature.app_id
        signature.delete()
        if was_default:
            remaining = Signature.objects.filter(app_id=app_id).order_by("created_at", "pk")
            heir = remaining.approved().first() or remaining.first()
            if heir is not None:
                set_default_signature(signature=heir)


# --- Templates --------------------------------------------------------------------


def save_template(
    *,
    template: Template,
    body: str,
    signature: Signature,
    submitted_by: User | None = None,
) -> TemplateVersion:
    """Save a new or edited template and submit ``body``/``signature`` as needed.

    Returns the version that is now pending (or the unchanged latest one).
    """
    with transaction.atomic():
        template.full_clean()
        if (
            template.pk
            and template.has_approved_version
            and Template.objects.filter(pk=template.pk)
            .exclude(kind=template.kind)
            .exists()
        ):
            raise ValidationError(
                {"kind": _("The type of an approved template cannot change.")}
            )
        template.save()
        return submit_template_version(
            template=template, body=body, signature=signature, submitted_by=submitted_by
        )


def create_template(
    *,
    app: App,
    name: str,
    kind: str,
    body: str,
    signature: Signature,
    submitted_by: User | None = None,
) -> Template:
    """Create a template with its first (pending) version."""
    template = Template(app=app, name=name, kind=kind)
    save_template(template=template, body=body, signature=signature,
                  submitted_by=submitted_by)
    return template


def submit_template_version(
    *,
    template: Template,
    body: str,
    signature: Signature,
    submitted_by: User | None = None,
) -> TemplateVersion:
    """Add a pending version, unless it repeats the newest pending/approved one.

    Earlier pending versions are withdrawn (rejected with a note): only the
    newest text waits for review. Raises ValidationError for bad Handlebars, a
    signature of another app or a rejected signature.
    """
    _validate_version_input(template=template, body=body, signature=signature)
    with transaction.atomic():
        Template.objects.select_for_update().filter(pk=template.pk).first()
        latest = (
            template.versions.exclude(status=ReviewStatus.REJECTED)
            .order_by("-number")
            .first()
        )
        if latest and latest.body == body and latest.signature_id == signature.pk:
            return latest
        number = (template.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        template.versions.pending().update(
            status=ReviewStatus.REJECTED,
            rejection_reason=_("Withdrawn: replaced by version %d before review.")
            % number,
            reviewed_at=timezone.now(),
        )
        version = TemplateVersion.objects.create(
            template=template,
            number=number,
            body=body,
            signature=signature,
            submitted_by=submitted_by,
        )
    _send_submitted(version)
    return version


def _validate_version_input(*, template: Template, body: str, signature: Signature) -> None:
    errors: dict[str, list[str]] = {}
    if not body.strip():
        errors["body"] = [_("The body is empty.")]
    else:
        try:
            templating.compile_template(body)
        except templating.TemplateSyntaxError as exc:
            errors["body"] = [_("Not valid Handlebars: %s") % exc]
    if signature.app_id != template.app_id:
        errors["signature"] = [_("The signature belongs to another app.")]
    elif signature.status == ReviewStatus.REJECTED:
        errors["signature"] = [_("The signature was rejected; choose another one.")]
    if errors:
        raise ValidationError(errors)


# --- Templates: the sending versions ----------------------------------------------


def live_versions(template_ids: Iterable[int]) -> dict[int, TemplateVersion]:
    """The sending (newest approved) version of each template, in one query."""
    live: dict[int, TemplateVersion] = {}
    for version in TemplateVersion.objects.approved().filter(
        template_id__in=set(template_ids)
    ).order_by("template_id", "number"):
        live[version.template_id] = version  # ordered: the newest one stays
    return live


# --- Demo content -----------------------------------------------------------------

#: (name, type, body) of the demo templates, in the style of LeanCloud's examples.
DEMO_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    (
        "Register_Code",
        MessageKind.VERIFICATION,
        "欢迎注册{{name}}应用！请使用验证码 {{code}} 来完成注册。"
        "该验证码将在{{ttl}}分钟后失效，请尽快使用。",
    ),
    ("Register_Notice", MessageKind.NOTIFICATION, "Thanks for joining {{name}}."),
    (
        "Order_Notice",
        MessageKind.NOTIFICATION,
        "Your package for the order {{order_id}} will be delivered by the end of today.",
    ),
    (
        "Spring_Sale",
        MessageKind.MARKETING,
        "{{name}}新款春装已经上市！详情请登录 www.example.com 查询门店，凭短信可享 9 折优惠。",
    ),
)


def seed_demo_content(app: App) -> Signature:
    """Give ``app`` an approved default signature and approved demo templates.

    Idempotent: existing rows with the demo names are reused and approved.
    Returns the default signature. Marketing sends still need
    ``app.company_name`` (marketing messages need one).
    """
    signature = _demo_signature(app)
    for name, kind, body in DEMO_TEMPLATES:
        template = app.templates.filter(name=name).first()
        if template is None:
            template = Template(app=app, name=name, kind=kind)
        version = save_template(template=template, body=body, signature=signature)
        if version.is_pending:
            approve(item=version, reviewer=None)
    return signature


def _demo_signature(app: App) -> Signature:
    default = app.signatures.filter(is_default=True).first()
    if default is not None and default.is_approved:
        return default
    text = _demo_signature_text(app.name)
    signature = app.signatures.filter(text=text).exclude(
        status=ReviewStatus.REJECTED
    ).first() or create_signature(
        app=app, name=text, text=text, source=Signature.Source.APP
    )
    if signature.is_pending:
        approve(item=signature, reviewer=None)
    set_default_signature(signature=signature)
    return signature


def _demo_signature_text(app_name: str) -> str:
    from ..conf import app_settings

    text = re.sub(r"[\W_]", "", app_name)[: app_settings.SIGNATURE_MAX_LENGTH]
    return text if len(text) >= app_settings.SIGNATURE_MIN_LENGTH else "Demo"
