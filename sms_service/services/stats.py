"""Aggregates for the admin dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import App, Message, MessageStatus

#: Stacking order and colours of the daily chart (final states first).
STATUS_COLOURS = {
    MessageStatus.DELIVERED: "#2e7d32",
    MessageStatus.ACCEPTED: "#81c784",
    MessageStatus.QUEUED: "#90caf9",
    MessageStatus.SENDING: "#42a5f5",
    MessageStatus.UNKNOWN: "#ffb300",
    MessageStatus.UNDELIVERED: "#ef6c00",
    MessageStatus.FAILED: "#c62828",
}


@dataclass(frozen=True)
class DayCounts:
    day: date
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


@dataclass(frozen=True)
class Summary:
    days: list[DayCounts]
    total: int
    delivered: int
    failed: int
    undelivered: int
    pending: int
    cost: object

    @property
    def delivery_rate(self) -> float | None:
        decided = self.delivered + self.undelivered
        return self.delivered / decided if decided else None


def _messages(*, app: App | None, start: date, end: date) -> QuerySet:
    qs = Message.objects.filter(
        created_at__date__gte=start, created_at__date__lte=end, is_test=False
    )
    return qs.filter(app=app) if app is not None else qs


def summary(
    *, app: App | None = None, days: int = 14, start: date | None = None,
    end: date | None = None,
) -> Summary:
    """Messages from ``start`` to ``end`` (local days; default: the last ``days``
    days), test numbers excluded, per day and status."""
    end = end or timezone.localdate()
    start = start or end - timedelta(days=days - 1)
    days = (end - start).days + 1
    qs = _messages(app=app, start=start, end=end)
    rows = (
        qs.annotate(day=TruncDate("created_at"))
        .values("day", "status")
        .annotate(n=Count("pk"))
    )
    table: dict[date, dict[str, int]] = {start + timedelta(days=i): {} for i in range(days)}
    for row in rows:
        table.setdefault(row["day"], {})[row["status"]] = row["n"]
    totals = qs.aggregate(
        total=Count("pk"),
        delivered=Count("pk", filter=Q(status=MessageStatus.DELIVERED)),
        failed=Count("pk", filter=Q(status=MessageStatus.FAILED)),
        undelivered=Count("pk", filter=Q(status=MessageStatus.UNDELIVERED)),
        pending=Count("pk", filter=Q(status__in=[
            MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.ACCEPTED,
            MessageStatus.UNKNOWN])),
        cost=Sum("cost"),
    )
    return Summary(
        days=[DayCounts(day=d, by_status=table[d]) for d in sorted(table)],
        total=totals["total"], delivered=totals["delivered"], failed=totals["failed"],
        undelivered=totals["undelivered"], pending=totals["pending"],
        # SQLite sums decimals as floats: bring the total back to money.
        cost=Decimal(str(totals["cost"] or 0)).quantize(Decimal("0.0001")),
    )


@dataclass(frozen=True)
class Breakdown:
    """Sends, delivery and cost of one country or template over a period."""

    key: str
    channel: str
    total: int
    delivered: int
    undelivered: int
    cost: Decimal

    @property
    def delivery_rate(self) -> float | None:
        decided = self.delivered + self.undelivered
        return self.delivered / decided if decided else None


#: What a breakdown groups by: the destination region or the template name.
BREAKDOWN_FIELDS = {"country": "region", "template": "template_version__template__name"}


def breakdown(
    *, by: str, start: date, end: date, app: App | None = None
) -> list[Breakdown]:
    """Per country or per template (and channel): sends, delivery rate, cost;
    the most expensive first."""
    field = BREAKDOWN_FIELDS[by]
    rows = (
        _messages(app=app, start=start, end=end)
        .values(key=F(field), ch=F("channel"))
        .annotate(
            total=Count("pk"),
            delivered=Count("pk", filter=Q(status=MessageStatus.DELIVERED)),
            undelivered=Count("pk", filter=Q(status=MessageStatus.UNDELIVERED)),
            cost=Sum("cost"),
        )
        .order_by("-cost", "key")
    )
    return [
        Breakdown(
            key=row["key"] or "", channel=row["ch"], total=row["total"],
            delivered=row["delivered"], undelivered=row["undelivered"],
            cost=Decimal(str(row["cost"] or 0)).quantize(Decimal("0.0001")),
        )
        for row in rows
    ]
