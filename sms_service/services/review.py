"""Review of signatures and template versions: approve, reject, the queue, and
the owner's notification of each decision.

Reviewers hold ``sms_service.review_content``; approving content whose lint
reports errors also needs ``sms_service.override_lint`` and a kept reason.
A decision emails the app owner (after commit) and fires the ``content_*``
signals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals
from .._types import User
from ..models import App, Signature, TemplateVersion
from ..models.content import OVERRIDE_PERMISSION, REVIEW_PERMISSION, ReviewStatus
from . import lint, notifications

Reviewable = Signature | TemplateVersion


def can_review(user: User | None) -> bool:
    """Whether ``user`` may approve and reject content."""
    return bool(user and user.is_active and user.has_perm(REVIEW_PERMISSION))


def can_override(user: User | None) -> bool:
    """Whether ``user`` may approve content whose lint reports errors."""
    return user is not None and can_review(user) and bool(user.has_perm(OVERRIDE_PERMISSION))


def lint_errors(item: Reviewable) -> list[str]:
    """The lint errors (not warnings) of a signature or template version."""
    findings = (
        lint.lint_signature(item) if isinstance(item, Signature) else lint.lint_version(item)
    )
    return [f.message for f in findings if f.is_error]


def approve(
    *, item: Reviewable, reviewer: User | None, override_reason: str = ""
) -> Reviewable:
    """Approve a pending signature or template version.

    ``reviewer`` None is a system approval (demo seed). A template version
    needs an approved signature first. An item whose lint reports errors is
    refused unless the reviewer holds ``sms_service.override_lint`` and writes
    an ``override_reason``, which is kept on the item. Raises ValidationError
    or PermissionDenied.
    """
    _check_reviewer(reviewer)
    override_reason = (override_reason or "").strip()
    with transaction.atomic():
        locked = _lock_pending(item)
        if isinstance(locked, TemplateVersion) and not locked.signature.is_approved:
            raise ValidationError(
                _("Approve the signature 【%s】 before this template.")
                % locked.signature.text
            )
        errors = lint_errors(locked)
        if errors and not override_reason:
            raise ValidationError(
                _("The lint reports errors, so it cannot be approved: %s")
                % " ".join(errors)
            )
        if errors and reviewer is not None and not can_override(reviewer):
            raise PermissionDenied(
                _("Approving despite lint errors needs the override permission.")
            )
        locked.override_reason = override_reason if errors else ""
        _decide(locked, ReviewStatus.APPROVED, reviewer, reason="")
        _notify_owner_on_commit(locked)
    _copy_review(locked, item)
    signals.content_approved.send_robust(
        sender=type(item), item=item, app=_app_of(item), reviewer=reviewer
    )
    return item


def reject(
    *, item: Reviewable, reviewer: User | None, reason: str
) -> Reviewable:
    """Reject a pending signature or template version; ``reason`` is required."""
    _check_reviewer(reviewer)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Give the author a reason for the rejection.")})
    with transaction.atomic():
        locked = _lock_pending(item)
        locked.override_reason = ""
        _decide(locked, ReviewStatus.REJECTED, reviewer, reason=reason)
        _notify_owner_on_commit(locked)
    _copy_review(locked, item)
    signals.content_rejected.send_robust(
        sender=type(item), item=item, app=_app_of(item), reviewer=reviewer, reason=reason
    )
    return item


def _check_reviewer(reviewer: User | None) -> None:
    if reviewer is not None and not can_review(reviewer):
        raise PermissionDenied(_("You are not allowed to review signatures and templates."))


def _lock_pending(item: Reviewable) -> Reviewable:
    queryset = type(item).objects.select_for_update()
    locked = queryset.filter(pk=item.pk).first()
    if locked is None:
        raise ValidationError(_("It no longer exists."))
    if locked.status != ReviewStatus.PENDING:
        raise ValidationError(
            _("%(item)s was already %(status)s.")
            % {"item": locked, "status": locked.get_status_display().lower()}
        )
    return locked


def _decide(item: Reviewable, status: str, reviewer: Any, *, reason: str) -> None:
    item.status = status
    item.rejection_reason = reason
    item.reviewed_by = reviewer
    item.reviewed_at = timezone.now()
    item.save(
        update_fields=[
            "status", "rejection_reason", "reviewed_by", "reviewed_at", "override_reason"
        ]
    )


def _copy_review(source: Reviewable, target: Reviewable) -> None:
    for field in (
        "status", "rejection_reason", "reviewed_by_id", "reviewed_at", "override_reason"
    ):
        setattr(target, field, getattr(source, field))


def _reset_review(item: Reviewable, submitted_by: Any) -> None:
    item.status = ReviewStatus.PENDING
    item.rejection_reason = ""
    item.override_reason = ""
    item.reviewed_by = None
    item.reviewed_at = None
    item.submitted_by = submitted_by
    item.created_at = timezone.now()


def _app_of(item: Reviewable) -> App:
    return item.app if isinstance(item, Signature) else item.template.app


def _send_submitted(item: Reviewable) -> None:
    signals.content_submitted.send_robust(sender=type(item), item=item, app=_app_of(item))


@dataclass(frozen=True)
class ReviewQueue:
    signatures: list[Signature]
    versions: list[TemplateVersion]

    def __len__(self) -> int:
        return len(self.signatures) + len(self.versions)


def review_queue(*, app: App | None = None) -> ReviewQueue:
    """Everything waiting for a reviewer, oldest first."""
    signatures = Signature.objects.pending().select_related("app", "submitted_by")
    versions = TemplateVersion.objects.pending().select_related(
        "template__app", "signature", "submitted_by"
    )
    if app is not None:
        signatures = signatures.filter(app=app)
        versions = versions.filter(template__app=app)
    return ReviewQueue(
        signatures=list(signatures.order_by("created_at", "pk")),
        versions=list(versions.order_by("created_at", "pk")),
    )


def recent_overrides(*, limit: int = 20) -> list[Reviewable]:
    """Items approved despite lint errors, newest decision first, with their reasons."""
    signatures = Signature.objects.exclude(override_reason="").select_related(
        "app", "reviewed_by"
    ).order_by("-reviewed_at")[:limit]
    versions = TemplateVersion.objects.exclude(override_reason="").select_related(
        "template__app", "reviewed_by"
    ).order_by("-reviewed_at")[:limit]
    items: list[Reviewable] = [*signatures, *versions]
    items.sort(key=lambda item: item.reviewed_at or item.created_at, reverse=True)
    return items[:limit]


# --- Owner notification -----------------------------------------------------------


def _notify_owner_on_commit(item: Reviewable) -> None:
    # After commit: a rolled-back decision must not be announced.
    transaction.on_commit(lambda: notify_decision(item=item))


def notify_decision(*, item: Reviewable) -> bool:
    """Tell the app owner about a review decision (through the adapter)."""
    app = _app_of(item)
    subject, body = _decision_text(item, app)
    event = (notifications.CONTENT_APPROVED if item.is_approved
             else notifications.CONTENT_REJECTED)
    return notifications.notify_owner(app=app, subject=subject, body=body, event=event,
                                      context={"item": item})


def _decision_text(item: Reviewable, app: App) -> tuple[str, str]:
    if isinstance(item, Signature):
        what = _("Signature %(name)s 【%(text)s】") % {"name": item.name, "text": item.text}
    else:
        what = _("Template %(name)s version %(number)d") % {
            "name": item.template.name,
            "number": item.number,
        }
    if item.is_approved:
        subject = _("[%(app)s] %(what)s approved") % {"app": app.name, "what": what}
        body = _("%(what)s of app %(app)s was approved and can be used now.")
    else:
        subject = _("[%(app)s] %(what)s rejected") % {"app": app.name, "what": what}
        body = _("%(what)s of app %(app)s was rejected.\n\nReason: %(reason)s")
    return subject, body % {"what": what, "app": app.name, "reason": item.rejection_reason}


def pending_count(*, apps: Iterable[App] | None = None) -> int:
    """How many signatures and template versions wait for review."""
    signatures = Signature.objects.pending()
    versions = TemplateVersion.objects.pending()
    if apps is not None:
        signatures = signatures.filter(app__in=apps)
        versions = versions.filter(template__app__in=apps)
    return signatures.count() + versions.count()
