"""The benchmark's SMS backend for inline delivery: the provider accepts every
message at once and answers "delivered" (as the file backend does), so the
request pays for the whole send path (claim, events, status transitions,
payload decryption, settlement) but for no network call.
"""

from __future__ import annotations

from typing import Any

from sms_service.backends.base import BaseSmsBackend, OutgoingMessage, SendResult


class InstantBackend(BaseSmsBackend):
    provider_name = "bench"

    def build_payload(self, message: OutgoingMessage) -> str:
        return message.to

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> str:
        return str(message.message_id)

    def parse_response(self, message: OutgoingMessage, payload: Any, response: str) -> SendResult:
        return SendResult(provider_message_id=f"bench-{response}", status="delivered")
