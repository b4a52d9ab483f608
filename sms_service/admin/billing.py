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

from ..exceptions import SmsServiceError
from ..models import App, LedgerEntry, LedgerKind, Price, UnmatchedReceipt
from ..services import billing

#: Days shown in the spend chart.
CHART_DAYS = 30


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["region", "channel", "unit_price", "note", "updated_at"]
    list_editable = ["unit_price"]
    list_filter = ["channel"]
    search_fields = ["region", "note"]
    ordering = ["region", "channel"]


class _ReadOnlyAdmin(admin.ModelAdmin):
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
        "amount",
        "held_change",
        "message_id",
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

    @admin.display(description=_("app"), ordering="app__name")
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
            "title": _("Balances"),
            "opts": self.model._meta,
            "apps": App.objects.order_by("name")
            .annotate(held=Sum("ledger__held_change"))
            .values("pk", "name", "app_id", "balance", "held"),
        }
        return TemplateResponse(request, "sms_service/admin/billing_apps.html", context)

    def billing_view(self, request: HttpRequest, app_pk: int) -> HttpResponse:
        """One app's books; POST performs an audited top-up or adjustment."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        app = get_object_or_404(App, pk=app_pk)
        can_credit = request.user.has_perm("sms_service.add_ledgerentry")
        form = MoneyForm(request.POST or None)
        if request.method == "POST":
            if not can_credit:
                raise PermissionDenied
            if form.is_valid():
                self._apply(request, app, form.cleaned_data)
                return HttpResponseRedirect(request.path)
        days = billing.daily_bill(app=app, days=CHART_DAYS)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Billing: %(app)s") % {"app": app.name},
            "opts": self.model._meta,
            "app": app,
            "books": billing.books(app=app),
            "open_holds": billing.unsettled(app=app).count(),
            "days": days,
            "chart": spend_chart(days),
            "by_template": billing.bill_by_template(app=app, since=days[0][0]),
            "entries": LedgerEntry.objects.for_app(app).select_related("actor")[:50],
            "form": form if can_credit else None,
        }
        return TemplateResponse(request, "sms_service/admin/billing.html", context)

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


class MoneyForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("operation"),
        choices=[
            (LedgerKind.TOP_UP, _("Top-up")),
            (LedgerKind.ADJUSTMENT, _("Adjustment (signed)")),
        ],
    )
    amount = forms.DecimalField(label=_("amount"), max_digits=16, decimal_places=4)
    reason = forms.CharField(
        label=_("reason"),
        max_length=1000,
        help_text=_("Kept in the ledger with your name."),
    )


def spend_chart(
    days: list[tuple[Any, Decimal]], *, width: int = 600, height: int = 120
) -> dict[str, Any]:
    """Bar geometry for an inline SVG of daily spend (no JavaScript)."""
    peak = max((amount for _, amount in days), default=Decimal(0)) or Decimal(1)
    slot = width / max(len(days), 1)
    bars = []
    for index, (day, amount) in enumerate(days):
        bar_height = float(amount / peak) * (height - 20)
        bars.append(
            {
                "x": round(index * slot + 1, 1),
                "y": round(height - bar_height, 1),
                "width": round(max(slot - 2, 1), 1),
                "height": round(bar_height, 1),
                "day": day,
                "amount": amount,
            }
        )
    return {"width": width, "height": height, "bars": bars, "peak": peak}


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
