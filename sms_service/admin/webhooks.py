"""Admin for outbound webhooks and their delivery log (with a resend action)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import Webhook, WebhookDelivery, WebhookEvent
from ..services import webhooks
from .localtime import LocalTimesMixin


class WebhookForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=WebhookEvent.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None chosen: every event."),
    )

    class Meta:
        model = Webhook
        fields = ["app", "url", "events", "is_active", "secret"]


@admin.register(Webhook)
class WebhookAdmin(LocalTimesMixin, admin.ModelAdmin):
    form = WebhookForm
    list_display = ["url", "app_name", "event_list", "is_active", "created_at"]
    list_filter = ["is_active", "app"]
    list_select_related = ["app"]
    search_fields = ["url", "app__name"]

    @admin.display(description=_("App"), ordering="app__name")
    def app_name(self, obj: Webhook) -> str:
        return obj.app.name

    @admin.display(description=_("Events"))
    def event_list(self, obj: Webhook) -> str:
        return ", ".join(obj.events) if obj.events else str(_("Every event"))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(LocalTimesMixin, admin.ModelAdmin):
    """The delivery log: read-only, with a resend action."""

    list_display = ["created_at", "event", "app_name", "url", "status", "attempts",
                    "response_status", "delivered_at"]
    list_filter = ["status", "event", "webhook__app"]
    list_select_related = ["webhook__app"]
    date_hierarchy = "created_at"
    actions = ["resend_selected"]
    fields = readonly_fields = (
        "webhook", "event", "status", "attempts", "response_status", "last_error",
        "next_attempt_at", "created_at", "delivered_at", "body",
    )

    @admin.display(description=_("App"), ordering="webhook__app__name")
    def app_name(self, obj: WebhookDelivery) -> str:
        return obj.webhook.app.name

    @admin.display(description=_("URL"))
    def url(self, obj: WebhookDelivery) -> str:
        return obj.webhook.url

    @admin.display(description=_("Body"))
    def body(self, obj: WebhookDelivery) -> str:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False)
        return format_html('<pre class="sms-preview">{}</pre>', text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sms_service.change_webhook")

    @admin.action(description=_("Resend selected deliveries"), permissions=["resend"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for delivery in queryset:
            webhooks.resend(delivery=delivery)
            count += 1
        self.message_user(
            request,
            ngettext("%d delivery will be sent again.", "%d deliveries will be sent again.",
                     count) % count,
            messages.SUCCESS,
        )
