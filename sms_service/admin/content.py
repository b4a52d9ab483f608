"""Admin for signatures and templates, with the review queue.

Authors (change permission) submit; reviewers (``sms_service.review_content``)
approve or reject from the review queue, the change pages or changelist
actions. Every state change is a POST and goes through
:mod:`sms_service.services.content`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from ..models import Signature, Template, TemplateVersion
from ..models.content import ReviewStatus, SignatureQuerySet
from ..services import content, lint, review
from .localtime import LocalTimesMixin

_ITEM_MODELS = {"signature": Signature, "version": TemplateVersion}


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _findings_context(findings: list[lint.Finding]) -> dict[str, Any]:
    return {"findings": findings, "has_errors": any(f.is_error for f in findings)}


if TYPE_CHECKING:  # what the mixin relies on: it is mixed into ModelAdmin subclasses
    _ModelAdmin = admin.ModelAdmin
else:
    _ModelAdmin = object


class ReviewActionsMixin(_ModelAdmin):
    """Shared review plumbing: permission, decisions, bulk actions."""

    def has_review_permission(self, request: HttpRequest) -> bool:
        return review.can_review(request.user)

    def has_override_permission(self, request: HttpRequest) -> bool:
        return review.can_override(request.user)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        if self.has_review_permission(request):
            extra["review_queue_url"] = reverse("admin:sms_service_review_queue")
            extra["pending_total"] = review.pending_count()
        return super().changelist_view(request, extra)

    def _decide(
        self, request: HttpRequest, item: Any, decision: str, reason: str = "",
        override_reason: str = "",
    ) -> bool:
        try:
            if decision == "approve":
                review.approve(
                    item=item, reviewer=request.user, override_reason=override_reason
                )
                text = (
                    _("Approved %s despite lint errors; the reason is kept.")
                    if item.override_reason else _("Approved %s.")
                )
                self.message_user(request, text % item, messages.SUCCESS)
            else:
                review.reject(item=item, reviewer=request.user, reason=reason)
                self.message_user(request, _("Rejected %s.") % item, messages.WARNING)
        except (ValidationError, PermissionDenied) as exc:
            error = _errors(exc) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, f"{item}: {error}", messages.ERROR)
            return False
        return True

    def _decide_many(
        self, request: HttpRequest, items: list[Any], decision: str, reason: str = ""
    ) -> None:
        done = 0
        for item in items:
            try:
                if decision == "approve":
                    review.approve(item=item, reviewer=request.user)
                else:
                    review.reject(item=item, reviewer=request.user, reason=reason)
                done += 1
            except (ValidationError, PermissionDenied) as exc:
                text = _errors(exc) if isinstance(exc, ValidationError) else str(exc)
                self.message_user(request, f"{item}: {text}", messages.ERROR)
        if done:
            text = (
                ngettext("Approved %d item.", "Approved %d items.", done)
                if decision == "approve"
                else ngettext("Rejected %d item.", "Rejected %d items.", done)
            )
            self.message_user(request, text % done, messages.SUCCESS)

    def _reject_with_reason(
        self, request: HttpRequest, items: list[Any], action: str
    ) -> HttpResponse | None:
        """Bulk reject: an intermediate page asks for the reason, like delete."""
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("post") == "yes" and reason:
            self._decide_many(request, items, "reject", reason)
            return None
        if request.POST.get("post") == "yes":
            self.message_user(request, _("A reason is required to reject."), messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Reject: give the author a reason"),
            "opts": self.model._meta,
            "items": items,
            "action": action,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "sms_service/admin/reject_selected.html", context)


# --- Signatures -------------------------------------------------------------------


@admin.register(Signature)
class SignatureAdmin(ReviewActionsMixin, LocalTimesMixin, admin.ModelAdmin):
    change_form_template = "sms_service/admin/signature_change_form.html"
    change_list_template = "sms_service/admin/content_change_list.html"
    list_display = [
        "name", "bracketed", "app", "status", "is_default", "created_at", "reviewed_by"
    ]
    list_filter = ["status", "is_default", "app"]
    search_fields = ["name", "text", "app__name"]
    list_select_related = ["app", "reviewed_by"]
    actions = ["approve_selected", "reject_selected", "make_default"]
    fieldsets = [
        (None, {"fields": ["app", "name", "text", "source", "proof"]}),
        (
            _("Review"),
            {
                "fields": [
                    "status", "rejection_reason", "override_reason", "is_default",
                    "submitted_by", "created_at", "reviewed_by", "reviewed_at",
                ]
            },
        ),
    ]
    readonly_fields = [
        "status", "rejection_reason", "override_reason", "is_default", "submitted_by",
        "created_at", "reviewed_by", "reviewed_at",
    ]

    @admin.display(description=_("Shown as"), ordering="text")
    def bracketed(self, obj: Signature) -> str:
        return f"【{obj.text}】"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["app"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Signature, form: Any, change: bool) -> None:
        content.submit_signature(signature=obj, submitted_by=request.user)

    def delete_model(self, request: HttpRequest, obj: Signature) -> None:
        content.delete_signature(signature=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for signature in queryset:
            content.delete_signature(signature=signature)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            findings = lint.lint_signature(obj)
            extra.update(
                findings=findings,
                has_errors=any(f.is_error for f in findings),
                can_review=self.has_review_permission(request) and obj.is_pending,
                can_override=self.has_override_permission(request),
                review_url=reverse("admin:sms_service_review_queue"),
            )
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description=_("Approve selected signatures"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: SignatureQuerySet) -> None:
        self._decide_many(request, list(queryset.pending()), "approve")

    @admin.action(description=_("Reject selected signatures…"), permissions=["review"])
    def reject_selected(
        self, request: HttpRequest, queryset: SignatureQuerySet
    ) -> HttpResponse | None:
        return self._reject_with_reason(request, list(queryset.pending()), "reject_selected")

    @admin.action(description=_("Make the default signature"), permissions=["change"])
    def make_default(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one signature."), messages.ERROR)
            return
        signature = queryset.get()
        content.set_default_signature(signature=signature)
        self.message_user(
            request, _("%s is now the default signature of its app.") % signature,
            messages.SUCCESS,
        )


# --- Templates --------------------------------------------------------------------


class _SignatureChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Signature) -> str:
        # Several apps share one admin: say whose signature it is and its state.
        return f"【{obj.text}】 {obj.name} · {obj.app.name} ({obj.get_status_display()})"


class TemplateAdminForm(forms.ModelForm):
    """A template plus the text of its next version (body and signature)."""

    body = forms.CharField(
        label=_("Body (Handlebars)"),
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text=_(
            "Custom variables as {{order_id}}; system variables {{name}}, {{code}}, "
            "{{ttl}}, {{sign}}, {{template}}. Saving a changed text submits a new "
            "version for review; the approved version keeps sending meanwhile."
        ),
    )
    signature = _SignatureChoiceField(
        label=_("Signature"),
        queryset=Signature.objects.exclude(status=ReviewStatus.REJECTED).select_related("app"),
    )

    class Meta:
        model = Template
        fields = ["app", "name", "kind"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk:
            latest = (
                instance.versions.exclude(status=ReviewStatus.REJECTED).first()
                or instance.versions.first()
            )
            if latest is not None:
                self.fields["body"].initial = latest.body
                self.fields["signature"].initial = latest.signature_id
            choice = cast(forms.ModelChoiceField, self.fields["signature"])
            choice.queryset = Signature.objects.none() if choice.queryset is None else (
                choice.queryset.filter(app_id=instance.app_id)
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        app = data.get("app") or (self.instance.app if self.instance.app_id else None)
        signature = data.get("signature")
        if app is not None and signature is not None and signature.app_id != app.pk:
            self.add_error("signature", _("Choose a signature of the same app."))
        body = data.get("body")
        if body:
            from .. import templating

            try:
                templating.compile_template(body)
            except templating.TemplateSyntaxError as exc:
                self.add_error("body", _("Not valid Handlebars: %s") % exc)
        return data


class TemplateVersionInline(LocalTimesMixin, admin.TabularInline):
    """Versions are immutable: shown, never edited here."""

    model = TemplateVersion
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "number", "status", "signature", "body", "rejection_reason", "override_reason",
        "submitted_by", "created_at", "reviewed_by", "reviewed_at", "provider_templates_link",
    )
    ordering = ["-number"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Counted and joined with the rows, not a query per version.
        return (
            super().get_queryset(request)
            .select_related("template", "signature", "submitted_by", "reviewed_by")
            .annotate(provider_template_count=Count("provider_templates"))
        )

    @admin.display(description=_("provider templates"))
    def provider_templates_link(self, obj: TemplateVersion) -> str:
        if not obj.pk:
            return "—"
        url = reverse("admin:sms_service_templateversion_change", args=[obj.pk])
        count = getattr(obj, "provider_template_count", None)
        if count is None:
            count = obj.provider_templates.count()
        return format_html('<a href="{}">{}</a>', url,
                           _("%d mapped — edit") % count if count else _("map…"))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Template)
class TemplateAdmin(ReviewActionsMixin, LocalTimesMixin, admin.ModelAdmin):
    form = TemplateAdminForm
    change_form_template = "sms_service/admin/template_change_form.html"
    change_list_template = "sms_service/admin/content_change_list.html"
    list_display = ["name", "app", "kind", "live", "pending"]
    list_filter = ["kind", "app"]
    search_fields = ["name", "app__name", "versions__body"]
    list_select_related = ["app"]
    inlines = [TemplateVersionInline]
    actions = ["approve_pending", "reject_pending"]
    fields = ["app", "name", "kind", "body", "signature"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_number=Max(
                    "versions__number", filter=Q(versions__status=ReviewStatus.APPROVED)
                ),
                pending_count=Count(
                    "versions", filter=Q(versions__status=ReviewStatus.PENDING)
                ),
            )
        )

    @admin.display(description=_("Sending version"), ordering="live_number")
    def live(self, obj: Template) -> str:
        number = getattr(obj, "live_number", None)  # annotated by get_queryset
        return f"v{number}" if number else "—"

    @admin.display(description=_("Awaiting review"), boolean=True)
    def pending(self, obj: Template) -> bool:
        return bool(getattr(obj, "pending_count", 0))  # annotated by get_queryset

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        # The type decides the review (marketing or not): fixed once approved.
        return ["app", "kind"] if obj.has_approved_version else ["app"]

    def save_model(self, request: HttpRequest, obj: Template, form: Any, change: bool) -> None:
        version = content.save_template(
            template=obj,
            body=form.cleaned_data["body"],
            signature=form.cleaned_data["signature"],
            submitted_by=request.user,
        )
        if version.is_pending and change:
            self.message_user(
                request,
                _("Version %d was submitted for review; the approved version keeps "
                  "sending until it is approved.") % version.number,
                messages.INFO,
            )

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("review-queue/", view(self.review_queue_view),
                 name="sms_service_review_queue"),
            path("preview/", view(self.preview_view), name="sms_service_template_preview"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra.update(self._version_context(request, obj))
        return super().change_view(request, object_id, form_url, extra)

    def _version_context(self, request: HttpRequest, obj: Template) -> dict[str, Any]:
        versions = list(
            obj.versions.select_related("signature", "template__app")
            .exclude(status=ReviewStatus.REJECTED)
            .order_by("-number")[:2]
        )
        rows = [
            {
                "version": v,
                **_findings_context(lint.lint_version(v)),
                "preview": lint.preview_version(v),
                "is_live": v.is_approved and v == next(
                    (x for x in versions if x.is_approved), None
                ),
            }
            for v in versions
        ]
        return {
            "version_rows": rows,
            "can_review": self.has_review_permission(request),
            "can_override": self.has_override_permission(request),
            "review_url": reverse("admin:sms_service_review_queue"),
        }

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False,
        change: bool = False, form_url: str = "", obj: Any = None,
    ) -> HttpResponse:
        # The live preview works on the add page as on the change page.
        context["preview_url"] = reverse("admin:sms_service_template_preview")
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Review queue ---------------------------------------------------------

    def review_queue_view(self, request: HttpRequest) -> HttpResponse:
        """GET lists pending signatures and versions; POST decides one of them."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._review_post(request)
        queue = review.review_queue()
        live = content.live_versions(v.template_id for v in queue.versions)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Review queue"),
            "opts": self.model._meta,
            "signature_rows": [
                {"item": s, **_findings_context(lint.lint_signature(s))}
                for s in queue.signatures
            ],
            "version_rows": [
                {
                    "item": v,
                    **_findings_context(lint.lint_version(v)),
                    "preview": lint.preview_version(v),
                    "live": live.get(v.template_id),
                }
                for v in queue.versions
            ],
            "total": len(queue),
            "can_override": self.has_override_permission(request),
            "overrides": review.recent_overrides(),
        }
        return TemplateResponse(request, "sms_service/admin/review_queue.html", context)

    def _review_post(self, request: HttpRequest) -> HttpResponse:
        model = _ITEM_MODELS.get(request.POST.get("item_type", ""))
        decision = request.POST.get("decision")
        if model is None or decision not in ("approve", "reject"):
            self.message_user(request, _("Unknown review request."), messages.ERROR)
        else:
            item = get_object_or_404(model, pk=request.POST.get("item_id"))
            self._decide(
                request, item, decision, request.POST.get("reason", ""),
                request.POST.get("override_reason", ""),
            )
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            target = reverse("admin:sms_service_review_queue")
        return HttpResponseRedirect(target)

    # --- Live preview ---------------------------------------------------------

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """JSON preview of an unsaved body: rendered text, counts, lint findings."""
        return require_POST(self._preview)(request)

    def _preview(self, request: HttpRequest) -> JsonResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        body = request.POST.get("body", "")
        kind = request.POST.get("kind") or "notification"
        signature_pk = request.POST.get("signature")
        signature = Signature.objects.filter(pk=signature_pk).first() if signature_pk else None
        app = signature.app if signature else None
        try:
            samples = json.loads(request.POST.get("samples") or "{}")
            if not isinstance(samples, dict):
                raise ValueError
        except ValueError:
            return JsonResponse({"error": str(_("Samples must be a JSON object."))}, status=400)
        signature_text = signature.text if signature else "…"
        result = lint.preview(
            body=body, kind=kind, signature_text=signature_text, app=app,
            template_name=request.POST.get("name", ""), samples=samples,
        )
        findings = lint.lint_template(
            body=body, kind=kind, signature_text=signature_text, app=app,
            template_name=request.POST.get("name", ""),
        )
        return JsonResponse(
            {
                "text": result.text,
                "length": result.length,
                "segments": result.segments,
                "error": result.error,
                "findings": [
                    {"code": f.code, "level": f.level, "message": f.message}
                    for f in findings
                ],
            }
        )

    # --- Bulk actions -----------------------------------------------------------

    @admin.action(description=_("Approve pending versions"), permissions=["review"])
    def approve_pending(self, request: HttpRequest, queryset: QuerySet) -> None:
        items = list(TemplateVersion.objects.pending().filter(template__in=queryset))
        self._decide_many(request, items, "approve")

    @admin.action(description=_("Reject pending versions…"), permissions=["review"])
    def reject_pending(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        items = list(
            TemplateVersion.objects.pending()
            .filter(template__in=queryset)
            .select_related("template")
        )
        return self._reject_with_reason(request, items, "reject_pending")

