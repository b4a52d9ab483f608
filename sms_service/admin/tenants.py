"""Admin for apps, test numbers and the message log."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .._types import StrOrPromise
from ..models import (
    App,
    FixedCodeNumber,
    KeyRotation,
    Message,
    MessageEvent,
    MessageStatus,
    PumpingBlock,
)
from ..models.messages import FULL_NUMBERS_PERMISSION
from ..services import exports, stats
from ..services import tenants as tenants_service
from ..templatetags.sms_admin import money
from . import charts
from .localtime import LocalTimesMixin, local_time
from .ranges import RangeForm

_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_EXPORT_LABELS = [
    ("messages", _("Messages")),
    ("ledger", _("Ledger")),
    ("bills", _("Bill by day, channel, country and template")),
]


class FixedCodeNumberInline(LocalTimesMixin, admin.TabularInline):
    model = FixedCodeNumber
    extra = 0


class KeyRotationInline(LocalTimesMixin, admin.TabularInline):
    """The audit trail of key rotations, read-only."""

    model = KeyRotation
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "created_at", "which", "actor", "via", "reason", "old_key_hint", "grace_until"
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("app", "actor")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RotateKeyForm(forms.Form):
    GRACE_CHOICES = [
        ("0", _("None: the old key stops working now (leaked key)")),
        ("1", _("1 hour")),
        ("24", _("24 hours")),
        ("168", _("7 days")),
    ]
    which = forms.ChoiceField(label=_("Key to replace"), choices=KeyRotation.Which.choices,
                              widget=forms.RadioSelect)
    grace_hours = forms.TypedChoiceField(
        label=_("Grace period"), choices=GRACE_CHOICES, coerce=int, initial="0",
        help_text=_("How long the old key keeps working while clients switch over."),
    )
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}),
                             required=False, help_text=_("Kept in the audit entry."))
    confirm = forms.BooleanField(
        label=_("I understand that clients using the old key must be updated"),
    )


@admin.register(App)
class AppAdmin(LocalTimesMixin, admin.ModelAdmin):
    list_display = ["name", "sms_enabled", "allow_international", "balance_with_currency"]
    search_fields = ["name", "app_id", "company_name"]
    readonly_fields = ["app_id", "app_key", "master_key", "rotate_link", "balance",
                       "books_link",
                       "balance_alert_sent_at", "created_at", "updated_at"]
    inlines = [FixedCodeNumberInline, KeyRotationInline]
    fieldsets = [
        (None, {"fields": ["name", "company_name", "owner", "owner_email"]}),
        (_("Billing"), {"fields": ["balance", "books_link", "daily_spend_cap",
                                   "balance_alert_threshold", "balance_alert_sent_at"]}),
        (_("Keys"), {"fields": ["app_id", "app_key", "master_key", "rotate_link"]}),
        (_("Security"), {"fields": ["sms_enabled", "captcha_enabled"]}),
        (_("SMS settings"), {"fields": [
            "sms_api_enabled", "require_captcha", "allow_international",
            "allow_voice_to_landlines",
            "default_language", "enforce_carrier_signature_rules",
        ]}),
        (_("Fraud defence"), {"fields": [
            "allowed_countries", "pumping_defence", "pumping_settings",
        ]}),
        (_("Account settings"), {"fields": [
            "signup_sends_verification", "forbid_unverified_login",
            "allow_unverified_reset", "allow_sms_login",
        ]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    def render_change_form(self, request, context, *args, **kwargs):
        app = context.get("original")
        if app is not None and request.method == "GET":
            _warn_blocks(request, PumpingBlock.objects.active().filter(app=app))
        return super().render_change_form(request, context, *args, **kwargs)


    @admin.display(description=_("Balance"), ordering="balance")
    def balance_with_currency(self, obj: App) -> str:
        return money(obj.balance)

    @admin.display(description=_("Rotation"))
    def rotate_link(self, obj: App) -> str:
        if not obj.pk:
            return "–"
        url = reverse("admin:sms_service_app_rotate_key", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Rotate a key…"))

    def get_urls(self):
        view = self.admin_site.admin_view(self.rotate_key_view)
        return [path("<int:pk>/rotate-key/", view, name="sms_service_app_rotate_key"),
                *super().get_urls()]

    def rotate_key_view(self, request, pk: int):
        """Confirmation page, then the rotation (change permission required)."""
        app = get_object_or_404(App, pk=pk)
        if not self.has_change_permission(request, app):
            raise PermissionDenied
        form = RotateKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            which = form.cleaned_data["which"]
            try:
                tenants_service.rotate_key(
                    app=app, which=which,
                    grace=timedelta(hours=form.cleaned_data["grace_hours"]),
                    actor=request.user, via="admin", reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                label = KeyRotation.Which(which).label
                self.log_change(request, app, f"Rotated the {label.lower()}.")
                self.message_user(
                    request,
                    _("The %(key)s was replaced; copy the new one from the Keys section.")
                    % {"key": label.lower()},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:sms_service_app_change", args=[app.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rotate a key of %s") % app.name,
            "opts": self.model._meta,
            "original": app,
            "form": form,
            "rotations": app.key_rotations.select_related("actor")[:10],
        }
        return TemplateResponse(request, "sms_service/admin/rotate_key.html", context)

    @admin.display(description=_("Books"))
    def books_link(self, obj: App) -> str:
        if not obj.pk:
            return "–"
        url = reverse("admin:sms_service_ledgerentry_app_billing", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url,
                           _("Ledger, holds, bill per day and per template; top up"))


class MessageEventInline(LocalTimesMixin, admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "status", "description", "detail")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(LocalTimesMixin, admin.ModelAdmin):
    """Read-only message log; numbers masked, codes never shown."""

    list_display = ["created_at", "app", "masked", "channel", "kind", "status", "segments",
                    "cost_with_currency", "provider"]
    list_filter = ["status", "channel", "kind", "provider", "is_test", "created_at"]
    search_fields = ["phone", "provider_message_id"]
    list_select_related = ["app"]
    date_hierarchy = "created_at"
    change_list_template = "sms_service/admin/message_change_list.html"
    change_form_template = "sms_service/admin/message_change_form.html"
    inlines = [MessageEventInline]
    exclude = ["payload", "phone"]
    readonly_fields = ["app", "masked", "region", "channel", "kind", "template_version",
                       "signature", "body", "length", "segments", "cost", "is_test", "status",
                       "backend", "provider", "provider_message_id", "error_code",
                       "error_message", "attempts", "next_attempt", "client_ip",
                       "created_at", "sent_at", "finished_at"]

    @admin.display(description=_("Phone number"), ordering="phone")
    def masked(self, obj: Message) -> str:
        return obj.masked_phone

    @admin.display(description=_("Cost"), ordering="cost")
    def cost_with_currency(self, obj: Message) -> str:
        return money(obj.cost)

    @admin.display(description=_("Next attempt"))
    def next_attempt(self, obj: Message) -> StrOrPromise:
        if obj.next_attempt_at is None:
            return _("No retry scheduled.")
        return _("Retry scheduled for %(when)s.") % {
            "when": local_time(obj.next_attempt_at, seconds=True)}

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {}), "timezone_name": timezone.get_current_timezone_name()}
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {**(extra_context or {}), "timezone_name": timezone.get_current_timezone_name()}
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        dashboard = self.admin_site.admin_view(self.dashboard_view)
        export = self.admin_site.admin_view(self.export_view)
        return [path("dashboard/", dashboard, name="sms_service_dashboard"),
                path("export/", export, name="sms_service_export"),
                *super().get_urls()]

    def _may_export(self, request, kind: str) -> bool:
        if kind == "messages":
            return self.has_view_permission(request)
        return request.user.has_perm("sms_service.view_ledgerentry")

    def export_view(self, request):
        """CSV of messages, the ledger or the bill for a period, streamed."""
        form = RangeForm(request.GET, default="30d")
        kind = request.GET.get("kind", "")
        if kind:
            if kind not in exports.KINDS:
                raise Http404("Unknown export.")
            if not self._may_export(request, kind):
                raise PermissionDenied
            file_format = request.GET.get("format") or "csv"
            if file_format not in ("csv", "xlsx") or (
                    file_format == "xlsx" and not exports.xlsx_available()):
                raise Http404("Unknown export format.")
            if form.is_valid():
                period = form.period
                rows = exports.rows(
                    kind=kind, period=period, app=form.selected_app,
                    full_numbers=request.user.has_perm(FULL_NUMBERS_PERMISSION),
                )
                name = f"sms-{kind}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.{file_format}"
                if file_format == "xlsx":
                    return FileResponse(
                        exports.xlsx_file(rows, title=kind), as_attachment=True,
                        filename=name, content_type=_XLSX_TYPE,
                    )
                response = StreamingHttpResponse(exports.csv_lines(rows),
                                                 content_type="text/csv; charset=utf-8")
                response["Content-Disposition"] = f'attachment; filename="{name}"'
                return response
        elif not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("Export messages, ledger and bills"),
            "opts": self.model._meta,
            "form": form,
            "kinds": [(k, label) for k, label in _EXPORT_LABELS if self._may_export(request, k)],
            "full_numbers": request.user.has_perm(FULL_NUMBERS_PERMISSION),
            "xlsx": exports.xlsx_available(),
        }
        return TemplateResponse(request, "sms_service/admin/export.html", context)

    def dashboard_view(self, request):
        """Figures, a daily chart and breakdowns of the message log for a period
        and an app (view permission required)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        _warn_blocks(request, PumpingBlock.objects.active())
        form = RangeForm(request.GET, default="7d")
        period, app = form.period, form.selected_app
        data = stats.summary(app=app, start=period.start, end=period.end)
        rate = data.delivery_rate
        statuses = [(MessageStatus(s), colour) for s, colour in stats.STATUS_COLOURS.items()]
        chart = charts.bar_chart(
            [(d.day, [charts.Segment(d.by_status.get(s, 0), colour, s.label)
                      for s, colour in statuses]) for d in data.days],
            title=_("Messages per day by status"),
            description=_("%(total)d messages from %(start)s to %(end)s") % {
                "total": data.total, "start": period.start, "end": period.end},
            x_title=_("Day"), y_title=_("Messages"),
            fmt=lambda v: f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("SMS dashboard"),
            "form": form,
            "period": period,
            "selected_app": app,
            "figures": [
                (_("Messages"), data.total),
                (_("Delivered"), data.delivered),
                (_("Awaiting receipt or in flight"), data.pending),
                (_("Delivery failed"), data.undelivered),
                (_("Call failed (not billed)"), data.failed),
                (_("Delivery rate"), f"{rate:.1%}" if rate is not None else "–"),
                (_("Cost"), money(data.cost)),
            ],
            "chart": chart,
            "legend": [(s.label, colour) for s, colour in statuses],
            "by_country": stats.breakdown(by="country", start=period.start, end=period.end,
                                          app=app),
            "by_template": stats.breakdown(by="template", start=period.start,
                                           end=period.end, app=app),
            "timezone": timezone.get_current_timezone_name(),
        }
        return TemplateResponse(request, "sms_service/admin/dashboard.html", context)


def _warn_blocks(request, blocks) -> None:
    """A banner per active pumping block, linking to where it is lifted."""
    url = reverse("admin:sms_service_pumpingblock_changelist") + "?state=active"
    for block in blocks.select_related("app")[:10]:
        messages.warning(request, format_html(
            gettext('{app}: sends to {numbers} are held back (suspected SMS pumping) since '
                    '{since}. <a href="{url}">Review or lift</a>.'),
            app=block.app.name, numbers=block.value, since=local_time(block.created_at),
            url=url))
