"""``GET /1.1/sms/messages``: an app's messages with status, segments and cost.

LeanCloud has no such endpoint; this one follows its conventions (master key,
``limit``/``skip`` paging, ``{"results": [...]}``, ``{"code","error"}`` errors).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..exceptions import InvalidParameterError
from ..models import Message, MessageStatus
from ..phone import parse_phone
from .base import LeanCloudView, MasterKeyOnly

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000

_ERROR = inline_serializer(
    "StatusError",
    {"code": serializers.IntegerField(), "error": serializers.CharField()},
)
_MESSAGES = inline_serializer(
    "SmsMessageStatus",
    many=True,
    fields={
        "id": serializers.IntegerField(),
        "mobilePhoneNumber": serializers.CharField(help_text="E.164"),
        "smsType": serializers.ChoiceField(["sms", "voice"]),
        "kind": serializers.ChoiceField(["verification", "notification", "marketing"]),
        "template": serializers.CharField(allow_null=True),
        "status": serializers.ChoiceField(
            [
                "queued",
                "sending",
                "accepted",
                "delivered",
                "undelivered",
                "failed",
                "unknown",
            ],
            help_text="accepted = awaiting the delivery receipt (held, not billed yet)",
        ),
        "segments": serializers.IntegerField(help_text="billed messages"),
        "cost": serializers.CharField(help_text="decimal string"),
        "errorCode": serializers.CharField(),
        "createdAt": serializers.DateTimeField(),
        "sentAt": serializers.DateTimeField(allow_null=True),
        "finishedAt": serializers.DateTimeField(allow_null=True),
    },
)


@extend_schema(
    parameters=[
        OpenApiParameter("mobilePhoneNumber", str, description="only this number"),
        OpenApiParameter("since", str, description="ISO date or date-time, inclusive"),
        OpenApiParameter(
            "until",
            str,
            description="ISO date or date-time, exclusive (a date means the whole day)",
        ),
        OpenApiParameter(
            "limit", int, description=f"1-{MAX_LIMIT}, default {DEFAULT_LIMIT}"
        ),
        OpenApiParameter("skip", int, description="rows to skip, default 0"),
        OpenApiParameter("status", str, enum=[
            "queued", "sending", "accepted", "delivered", "undelivered", "failed", "unknown",
        ], description="only messages in this status"),
    ],
    responses={
        200: inline_serializer("SmsMessageList", {"results": _MESSAGES}),
        400: _ERROR,
        401: _ERROR,
        403: _ERROR,
    },
    description="Master key only. Not part of LeanCloud's API: the message log of the "
    "app, newest first, with delivery status, billed segments and cost.",
)
class MessageListView(LeanCloudView):
    """List the app's messages, newest first (master key)."""

    operation_id = "listSmsMessages"

    permission_classes = [MasterKeyOnly]

    def get(self, request: Request) -> Response:
        rows = self.filtered(Message.objects.for_app(self.app), request.query_params)
        limit = _int(
            request.query_params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT
        )
        skip = _int(request.query_params.get("skip"), "skip", 0, 0, 10**7)
        page = rows.select_related("template_version__template").order_by(
            "-created_at", "-pk"
        )[skip : skip + limit]
        return Response({"results": [_as_json(message) for message in page]})

    def filtered(self, rows: QuerySet, params: Any) -> QuerySet:
        if params.get("mobilePhoneNumber"):
            rows = rows.filter(phone=parse_phone(params["mobilePhoneNumber"]).e164)
        if params.get("since"):
            rows = rows.filter(created_at__gte=_moment(params["since"], "since"))
        if params.get("until"):
            rows = rows.filter(
                created_at__lt=_moment(params["until"], "until", end=True)
            )
        if params.get("status"):
            if params["status"] not in MessageStatus.values:
                raise InvalidParameterError(
                    "status must be one of " + ", ".join(MessageStatus.values) + "."
                )
            rows = rows.filter(status=params["status"])
        return rows


def _int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw in (None, ""):
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidParameterError(
            f"{name} must be a whole number from {low} to {high}."
        )
    return int(raw)


#: Dates outside these years are refused (400): no message is older, and the
#: far ends of the calendar overflow once moved to UTC or to the next day.
FIRST_YEAR, LAST_YEAR = 2000, 9998


def _moment(raw: str, name: str, *, end: bool = False) -> datetime:
    """A date (its midnight, or the next one for ``until``) or an ISO date-time."""
    try:
        # A bare date first: fromisoformat() would read it as midnight too.
        day = parse_date(raw) if len(raw) == 10 else None
        moment = None if day else parse_datetime(raw)
    except ValueError:
        moment = day = None
    if day is not None:
        moment = datetime.combine(day, time.min)
    if moment is None:
        raise InvalidParameterError(f"{name} must be an ISO 8601 date or date-time.")
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise InvalidParameterError(
            f"{name} must be a date between the years {FIRST_YEAR} and {LAST_YEAR}."
        )
    if day is not None and end:
        moment += timedelta(days=1)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _as_json(message: Message) -> dict[str, Any]:
    version = message.template_version
    return {
        "id": message.pk,
        "mobilePhoneNumber": message.phone,
        "smsType": message.channel,
        "kind": message.kind,
        "template": version.template.name if version else None,
        "status": message.status,
        "segments": message.segments,
        "cost": str(message.cost),
        "errorCode": message.error_code,
        "createdAt": _iso(message.created_at),
        "sentAt": _iso(message.sent_at),
        "finishedAt": _iso(message.finished_at),
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # LeanCloud's date format: UTC with milliseconds and a Z.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
