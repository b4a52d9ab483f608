"""Template helpers of the SMS admin: amounts with their currency, the SMS
section of the admin index."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..localtime import local_time as format_local

register = template.Library()


@register.filter
def money(value: Any) -> str:
    """``12.5`` → ``12.5000 CNY``: every amount is shown with the CURRENCY setting."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.0001"))
    except ArithmeticError:
        return str(value)
    return f"{amount} {app_settings.CURRENCY}"


@register.filter
def local_time(value: Any, seconds: bool = False) -> str:
    """``2026-11-30 13:05 CST``: a date-time in the active time zone, with its name."""
    return format_local(value, seconds=bool(seconds)) if value else "—"


@register.simple_tag
def currency() -> str:
    return app_settings.CURRENCY


@register.simple_tag(takes_context=True)
def sms_admin_links(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The SMS screens the current user may open, for the admin index."""
    from ..services import review

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return []
    links: list[dict[str, Any]] = []

    def add(url_name: str, label: str, note: str = "", *, perm: str | None = None) -> None:
        if perm and not user.has_perm(perm):
            return
        try:
            links.append({"url": reverse(url_name), "label": label, "note": note})
        except NoReverseMatch:
            return

    add("admin:sms_service_dashboard", _("Dashboard"),
        _("Sends, delivery rate and cost by day, country and template"),
        perm="sms_service.view_message")
    if review.can_review(user):
        pending = review.pending_count()
        add("admin:sms_service_review_queue", _("Review queue"),
            _("%(count)d pending") % {"count": pending})
    add("admin:sms_service_ledgerentry_apps", _("Balances and bills"),
        _("Balance, held money and the bill of each app"),
        perm="sms_service.view_ledgerentry")
    from ..services.exports import xlsx_available

    add("admin:sms_service_export", _("Export"),
        _("Messages, ledger and bills as CSV or XLSX") if xlsx_available()
        else _("Messages, ledger and bills as CSV"),
        perm="sms_service.view_message")
    add("sms_service:docs", _("API documentation"),
        _("The LeanCloud-compatible REST API"))
    return links
