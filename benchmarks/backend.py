"""The benchmark's SMS backend: each message is one UDP datagram to the load
generator, which plays the phone.

The load generator has to read every code it verifies. A datagram on loopback
(``<to>\\n<body>``) is the cheapest way to hand it over, so the measured cycle is
the server's work, not the side channel's. Delivery is final at once, as with
the file backend.
"""

from __future__ import annotations

import socket
from typing import Any

from sms_service.backends.base import BaseSmsBackend, OutgoingMessage, SendResult


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def datagram(to: str, body: str) -> bytes:
    return f"{to}\n{body}".encode()


class LoadGeneratorBackend(BaseSmsBackend):
    provider_name = "load-generator"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = parse_address(self.option("ADDRESS", required=True))
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def build_payload(self, message: OutgoingMessage) -> bytes:
        return datagram(message.to, message.body)

    def post_to_provider(self, message: OutgoingMessage, payload: bytes) -> str:
        self.socket.sendto(payload, self.address)
        return str(message.message_id)

    def parse_response(self, message: OutgoingMessage, payload: Any, response: str) -> SendResult:
        return SendResult(provider_message_id=f"bench-{response}", status="delivered")
