"""Aggregates for the admin dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
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


def summary(*, app: App | None = None, days: int = 14) -> Summary:
    """Messages of the last ``days`` days (test numbers excluded), per day and status."""
    start = timezone.localdate() - timedelta(days=days - 1)
    qs = Message.objects.filter(created_at__date__gte=start, is_test=False)
    if app is not None:
        qs = qs.filter(app=app)
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


def bar_chart(days: list[DayCounts], *, width: int = 720, height: int = 220) -> list[dict]:
    """Rectangles of a stacked bar chart (one bar per day), ready for an SVG template."""
    top = max((d.total for d in days), default=0) or 1
    slot = width / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y = height
        for status, colour in STATUS_COLOURS.items():
            n = day.by_status.get(status, 0)
            if not n:
                continue
            h = n / top * (height - 20)
            y -= h
            bars.append({"x": round(i * slot + slot * 0.15, 1), "y": round(y, 1),
                         "w": round(slot * 0.7, 1), "h": round(h, 1), "colour": colour,
                         "title": f"{day.day:%m-%d} {status}: {n}"})
    return bars
