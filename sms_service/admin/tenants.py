"""Admin for apps, test numbers and the message log."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import App, FixedCodeNumber, Message, MessageEvent, MessageStatus
from ..services import stats


class FixedCodeNumberInline(admin.TabularInline):
    model = FixedCodeNumber
    extra = 0


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ["name", "app_id", "sms_enabled", "allow_international", "balance"]
    search_fields = ["name", "app_id", "company_name"]
    readonly_fields = ["app_id", "app_key", "master_key", "balance", "books_link",
                       "balance_alert_sent_at", "created_at", "updated_at"]
    inlines = [FixedCodeNumberInline]
    fieldsets = [
        (None, {"fields": ["name", "company_name", "owner", "owner_email"]}),
        (_("Billing"), {"fields": ["balance", "books_link", "daily_spend_cap",
                                   "balance_alert_threshold", "balance_alert_sent_at"]}),
        (_("Keys"), {"fields": ["app_id", "app_key", "master_key"]}),
        (_("Security"), {"fields": ["sms_enabled", "captcha_enabled"]}),
        (_("SMS settings"), {"fields": [
            "sms_api_enabled", "require_captcha", "allow_international",
            "allow_voice_to_landlines",
            "default_language", "enforce_carrier_signature_rules",
        ]}),
        (_("Account settings"), {"fields": [
            "signup_sends_verification", "forbid_unverified_login",
            "allow_unverified_reset", "allow_sms_login",
        ]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]


    @admin.display(description=_("books"))
    def books_link(self, obj: App) -> str:
        if not obj.pk:
            return "–"
        url = reverse("admin:sms_service_ledgerentry_app_billing", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url,
                           _("Ledger, holds, bill per day and per template; top up"))


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    readonly_fields = ["created_at", "status", "description", "detail"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only message log; numbers masked, codes never shown."""

    list_display = ["created_at", "app", "masked", "channel", "kind", "status", "segments",
                    "cost", "provider"]
    list_filter = ["status", "channel", "kind", "provider", "is_test", "created_at"]
    search_fields = ["phone", "provider_message_id"]
    list_select_related = ["app"]
    date_hierarchy = "created_at"
    change_list_template = "sms_service/admin/message_change_list.html"
    inlines = [MessageEventInline]
    exclude = ["payload", "phone"]
    readonly_fields = ["app", "masked", "region", "channel", "kind", "template_version",
                       "signature", "body", "length", "segments", "cost", "is_test", "status",
                       "backend", "provider", "provider_message_id", "error_code",
                       "error_message", "attempts", "next_attempt_at", "client_ip",
                       "created_at", "sent_at", "finished_at"]

    @admin.display(description=_("phone number"), ordering="phone")
    def masked(self, obj: Message) -> str:
        return obj.masked_phone

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        dashboard = self.admin_site.admin_view(self.dashboard_view)
        return [path("dashboard/", dashboard, name="sms_service_dashboard"), *super().get_urls()]

    def dashboard_view(self, request):
        """Figures and a daily chart of the message log (view permission required)."""
        from django.core.exceptions import PermissionDenied

        if not self.has_view_permission(request):
            raise PermissionDenied
        apps = list(App.objects.only("pk", "name"))
        selected = next((a for a in apps if str(a.pk) == request.GET.get("app")), None)
        days = 14
        data = stats.summary(app=selected, days=days)
        width, height = 720, 220
        slot = width / days
        rate = data.delivery_rate
        context = {
            **self.admin_site.each_context(request),
            "title": _("SMS dashboard"),
            "apps": apps,
            "selected_app": selected,
            "days": days,
            "figures": [
                (_("Messages"), data.total),
                (_("Delivered"), data.delivered),
                (_("Awaiting receipt / in flight"), data.pending),
                (_("Delivery failed"), data.undelivered),
                (_("Call failed (not billed)"), data.failed),
                (_("Delivery rate"), f"{rate:.1%}" if rate is not None else "–"),
                (_("Cost"), data.cost),
            ],
            "bars": stats.bar_chart(data.days, width=width, height=height),
            "chart_width": width,
            "chart_height": height,
            "chart_max": max((d.total for d in data.days), default=0),
            "day_labels": [{"x": round(i * slot + slot / 2, 1), "text": f"{d.day:%m-%d}"}
                           for i, d in enumerate(data.days)],
            "legend": [(MessageStatus(s).label, c) for s, c in stats.STATUS_COLOURS.items()],
        }
        return TemplateResponse(request, "sms_service/admin/dashboard.html", context)
