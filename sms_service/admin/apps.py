"""Admin for apps, test numbers and the message log."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from ..models import App, Message, MessageEvent, TestNumber


class TestNumberInline(admin.TabularInline):
    model = TestNumber
    extra = 0


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ["name", "app_id", "sms_enabled", "allow_international", "balance"]
    search_fields = ["name", "app_id", "company_name"]
    readonly_fields = ["app_id", "app_key", "master_key", "balance", "created_at", "updated_at"]
    inlines = [TestNumberInline]
    fieldsets = [
        (None, {"fields": ["name", "company_name", "owner", "owner_email", "balance"]}),
        (_("Keys"), {"fields": ["app_id", "app_key", "master_key"]}),
        (_("Security"), {"fields": ["sms_enabled", "captcha_enabled"]}),
        (_("SMS settings"), {"fields": [
            "sms_api_enabled", "require_captcha", "allow_international",
            "default_language", "enforce_carrier_signature_rules",
        ]}),
        (_("Account settings"), {"fields": [
            "signup_sends_verification", "forbid_unverified_login",
            "allow_unverified_reset", "allow_sms_login",
        ]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]


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
