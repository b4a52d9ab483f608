"""Keeps sent messages in :data:`outbox` (a module-level list) for tests."""

from __future__ import annotations

import itertools
from typing import Any

from ..delivery import DeliveryStatus
from .base import BaseSmsBackend, OutgoingMessage, SendResult

#: Every message "sent" through a LocmemBackend in this process, oldest first.
outbox: list[OutgoingMessage] = []

_ids = itertools.count(1)


class LocmemBackend(BaseSmsBackend):
    provider_name = "locmem"

    def build_payload(self, message: OutgoingMessage) -> OutgoingMessage:
        return message

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> str:
        outbox.append(message)
        return f"locmem-{next(_ids)}"

    def parse_response(self, message: OutgoingMessage, payload: Any, response: Any) -> SendResult:
        # No receipts will ever come, so the message is final at once.
        return SendResult(provider_message_id=response, status=DeliveryStatus.DELIVERED)
