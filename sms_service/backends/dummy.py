"""Accepts every message and does nothing (load tests, staging without a provider)."""

from __future__ import annotations

import uuid
from typing import Any

from ..delivery import DeliveryStatus
from .base import BaseSmsBackend, OutgoingMessage, SendResult


class DummyBackend(BaseSmsBackend):
    provider_name = "dummy"
    default_batch_size = 100  # no network: a batch's database writes are the cost

    def build_payload(self, message: OutgoingMessage) -> None:
        return None

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> None:
        return None

    def parse_response(self, message: OutgoingMessage, payload: Any, response: Any) -> SendResult:
        return SendResult(provider_message_id=f"dummy-{uuid.uuid4().hex}", status=DeliveryStatus.DELIVERED)
