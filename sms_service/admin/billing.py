"""Admin for billing: prices, the read-only ledger, unmatched receipts, and a
per-app billing page (balance, held, the bill per day and per template, audited
top-ups and adjustments).

The billing page lives under the ledger's admin URLs:
``admin:sms_service_ledgerentry_app_billing`` with the App's pk.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..exceptions import SmsServiceError
from ..models import App, Channel, LedgerEntry, LedgerKind, Price, UnmatchedReceipt
from ..services import billing, stats
from ..templatetags.sms_admin import money
from . import charts
from .localtime import LocalTimesMixin, zone_name
from .ranges import RangeForm


@admin.register(Price)
class PriceAdmin(LocalTimesMixin, admin.ModelAdmin):
    list_display = ["region", "channel", "unit_price", "note", "updated_at"]
    list_editable = ["unit_price"]
    list_filter = ["channel"]
    search_fields = ["region", "note"]
    ordering = ["region", "channel"]


class _ReadOnlyAdmin(LocalTimesMixin, admin.ModelAdmin):
    """Money history and receipts are evidence: nobody edits or deletes them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(_ReadOnlyAdmin):
    list_display = [
        "created_at",
        "app_link",
        "kind",
        "amount_with_currency",
        "held_with_currency",
        "message_link",
        "actor",
        "reason",
    ]
    list_filter = ["kind", "app", "created_at"]
    search_fields = ["app__name", "app__app_id", "reason", "idempotency_key"]
    date_hierarchy = "created_at"
    list_select_related = ["app", "actor"]
    readonly_fields = [
        "app",
        "kind",
        "amount",
        "held_change",
        "message",
        "idempotency_key",
        "reason",
        "actor",
        "created_at",
    ]

    @admin.display(description=_("Amount"), ordering="amount")
    def amount_with_currency(self, entry: LedgerEntry) -> str:
        return money(entry.amount)

    @admin.display(description=_("Held change"), ordering="held_change")
    def held_with_currency(self, entry: LedgerEntry) -> str:
        return money(entry.held_change)

    @admin.display(description=_("Message"), ordering="message_id")
    def message_link(self, entry: LedgerEntry) -> str:
        if not entry.message_id:
            return "—"
        url = reverse("admin:sms_service_message_change", args=[entry.message_id])
        return format_html('<a href="{}">{}</a>', url,
                           _("Message %(id)s") % {"id": entry.message_id})

    @admin.display(description=_("App"), ordering="app__name")
    def app_link(self, entry: LedgerEntry) -> str:
        url = reverse("admin:sms_service_ledgerentry_app_billing", args=[entry.app_id])
        return format_html('<a href="{}">{}</a>', url, entry.app.name)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("apps/", view(self.apps_view), name="sms_service_ledgerentry_apps"),
            path(
                "apps/<int:app_pk>/",
                view(self.billing_view),
                name="sms_service_ledgerentry_app_billing",
            ),
            *super().get_urls(),
        ]

    def apps_view(self, request: HttpRequest) -> HttpResponse:
        """Every app with its balance and held amount."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("Balances and bills"),
            "opts": self.model._meta,
            "apps": App.objects.order_by("name")
            .annotate(held=Sum("ledger__held_change"))
            .values("pk", "name", "app_id", "balance", "held"),
        }
        return TemplateResponse(request, "sms_service/admin/billing_apps.html", context)

    def billing_view(self, request: HttpRequest, app_pk: int) -> HttpResponse:
        """One app's books and bill for a period; POST asks to confirm, then
        performs an audited top-up or adjustment."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        app = get_object_or_404(App, pk=app_pk)
        can_credit = request.user.has_perm("sms_service.add_ledgerentry")
        form = MoneyForm(request.POST or None)
        if request.method == "POST":
            if not can_credit:
                raise PermissionDenied
            if form.is_valid():
                if request.POST.get("confirmed") != "yes":
                    return self._confirm(request, app, form)
                self._apply(request, app, form.cleaned_data)
                return HttpResponseRedirect(request.get_full_path())
        ranges = RangeForm(request.GET, default="30d")
        chosen = ranges.selected_app
        if chosen is not None and chosen.pk != app.pk:
            query = request.GET.copy()
            query.pop("app", None)
            url = reverse("admin:sms_service_ledgerentry_app_billing", args=[chosen.pk])
            return HttpResponseRedirect(f"{url}?{query.urlencode()}")
        period = ranges.period
        days = billing.bill_by_channel(app=app, start=period.start, end=period.end)
        currency = app_settings.CURRENCY
        context = {
            **self.admin_site.each_context(request),
            "title": _("Bill and balance: %(app)s") % {"app": app.name},
            "opts": self.model._meta,
            "app": app,
            "form": ranges,
            "period": period,
            "timezone": zone_name(),
            "books": billing.books(app=app),
            "open_holds": billing.unsettled(app=app).count(),
            "days": [
                {"day": day, "sms": amounts[Channel.SMS], "voice": amounts[Channel.VOICE],
                 "total": amounts[Channel.SMS] + amounts[Channel.VOICE]}
                for day, amounts in days
            ],
            "totals": {
                "sms": sum((a[Channel.SMS] for _d, a in days), Decimal(0)),
                "voice": sum((a[Channel.VOICE] for _d, a in days), Decimal(0)),
            },
            "chart": charts.bar_chart(
                [(day, [charts.Segment(amounts[Channel.SMS], "#417690", _("SMS")),
                        charts.Segment(amounts[Channel.VOICE], "#c77c02", _("Voice"))])
                 for day, amounts in days],
                title=_("Bill per day"),
                description=_("Settled charges per day, SMS and voice, in %(currency)s")
                % {"currency": currency},
                x_title=_("Day"), y_title=_("Charged (%(currency)s)") % {"currency": currency},
                fmt=lambda v: f"{v:.2f}",
            ),
            "by_template": billing.bill_by_template(app=app, since=period.start,
                                                     until=period.end),
            "by_country": stats.breakdown(by="country", start=period.start, end=period.end,
                                          app=app),
            "entries": LedgerEntry.objects.for_app(app).select_related("actor")[:50],
            "money_form": form if can_credit else None,
            "export_url": reverse("admin:sms_service_export"),
        }
        return TemplateResponse(request, "sms_service/admin/billing.html", context)

    def _confirm(self, request: HttpRequest, app: App, form: MoneyForm) -> HttpResponse:
        """The confirmation step of a top-up or adjustment: what will happen, then
        the same POST again with ``confirmed=yes``."""
        data = form.cleaned_data
        context = {
            **self.admin_site.each_context(request),
            "title": _("Confirm: %(kind)s for %(app)s") % {
                "kind": MONEY_OPERATIONS[data["kind"]],
                "app": app.name},
            "opts": self.model._meta,
            "app": app,
            "data": data,
            "balance_after": app.balance + data["amount"],
        }
        return TemplateResponse(request, "sms_service/admin/money_confirm.html", context)

    def _apply(self, request: HttpRequest, app: App, data: dict[str, Any]) -> None:
        operation = (
            billing.top_up if data["kind"] == LedgerKind.TOP_UP else billing.adjust
        )
        try:
            entry = operation(
                app=app,
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
            )
        except SmsServiceError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        self.message_user(
            request,
            _("%(kind)s of %(amount)s recorded.")
            % {"kind": entry.get_kind_display(), "amount": entry.amount},
            level=messages.SUCCESS,
        )


#: The operations of the money form, with their labels.
MONEY_OPERATIONS = {
    LedgerKind.TOP_UP: _("Top-up"),
    LedgerKind.ADJUSTMENT: _("Adjustment (signed)"),
}


class MoneyForm(forms.Form):
    kind = forms.ChoiceField(label=_("Operation"), choices=list(MONEY_OPERATIONS.items()))
    amount = forms.DecimalField(label=_("Amount"), max_digits=16, decimal_places=4)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=1000,
        help_text=_("Kept in the ledger with your name."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].help_text = _(
            "In %(currency)s; an adjustment may be negative."
        ) % {"currency": app_settings.CURRENCY}


@admin.register(UnmatchedReceipt)
class UnmatchedReceiptAdmin(_ReadOnlyAdmin):
    list_display = [
        "received_at",
        "provider",
        "provider_message_id",
        "status",
        "matched_at",
        "message",
    ]
    list_filter = ["provider", "status", ("matched_at", admin.EmptyFieldListFilter)]
    search_fields = ["provider_message_id"]
    readonly_fields = [f.name for f in UnmatchedReceipt._meta.fields]
