"""Signatures and templates as the sending pipeline sees them (R-SIG, R-TPL).

Placeholder interface: the content issue implements review, lint and rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..exceptions import (
    InvalidSignatureError,
    SignatureNotVerifiedError,
    TemplateNotFoundError,
    TemplateNotVerifiedError,
)
from ..models import App, Signature, TemplateVersion
from ..models.content import ReviewStatus


@dataclass(frozen=True)
class ResolvedContent:
    signature: Signature | None  # None only for voice codes
    version: TemplateVersion | None
    kind: str  # MessageKind value


def resolve_content(
    *, app: App, template_name: str | None, sign_name: str | None
) -> ResolvedContent:
    """The approved template version and signature to send with.

    604 unknown template, 605 template without an approved version or no approved
    default signature, 600 unknown or unapproved named signature.
    """
    signature = _resolve_signature(app=app, sign_name=sign_name)
    if not template_name:
        return ResolvedContent(signature=signature, version=None, kind="verification")
    template = app.templates.filter(name=template_name).first()
    if template is None:
        raise TemplateNotFoundError()
    version = (
        template.versions.filter(status=ReviewStatus.APPROVED).order_by("-number").first()
    )
    if version is None:
        raise TemplateNotVerifiedError()
    if not sign_name:
        signature = version.signature
    return ResolvedContent(signature=signature, version=version, kind=template.kind)


def _resolve_signature(*, app: App, sign_name: str | None) -> Signature:
    if sign_name:
        signature = app.signatures.filter(name=sign_name).first()
        if signature is None or signature.status != ReviewStatus.APPROVED:
            raise InvalidSignatureError()
        return signature
    signature = app.signatures.filter(is_default=True, status=ReviewStatus.APPROVED).first()
    if signature is None:
        raise SignatureNotVerifiedError()
    return signature


def render_message(
    *, content: ResolvedContent, variables: dict[str, Any], system: dict[str, Any]
) -> str:
    """Final text: 【signature】 + rendered body (+ 回复TD退订 for marketing)."""
    import pybars

    from ..exceptions import TemplateRenderError

    assert content.version is not None
    context = {**variables, **system}
    try:
        body = pybars.Compiler().compile(content.version.body)(context)
    except Exception as exc:
        raise TemplateRenderError() from exc
    text = f"【{content.signature.text}】{body}"
    if content.kind == "marketing":
        text += "回复TD退订"
    return text
