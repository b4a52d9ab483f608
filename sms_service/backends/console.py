"""Writes each message to standard output (the demo's default)."""

from __future__ import annotations

import sys
import uuid
from typing import Any, TextIO

from ..delivery import DeliveryStatus
from .base import BaseSmsBackend, OutgoingMessage, SendResult


class ConsoleBackend(BaseSmsBackend):
    provider_name = "console"

    def __init__(self, *, stream: TextIO | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    def build_payload(self, message: OutgoingMessage) -> str:
        kind = "VOICE CALL" if message.channel == "voice" else "SMS"
        rule = "-" * 60
        return (
            f"{rule}\n{kind} to {message.to} (app {message.app_id}, "
            f"message {message.message_id})\n{message.body}\n{rule}\n"
        )

    def post_to_provider(self, message: OutgoingMessage, payload: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(payload)
        stream.flush()

    def parse_response(self, message: OutgoingMessage, payload: Any, response: Any) -> SendResult:
        return SendResult(provider_message_id=f"console-{uuid.uuid4().hex}", status=DeliveryStatus.DELIVERED)
