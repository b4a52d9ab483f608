"""Writes one JSON document per message into a directory (OPTIONS["PATH"]).

The document holds ``to``, ``channel``, ``body``, ``app_id``, ``message_id`` and
``created``. Files are written to a temporary name and renamed, so a reader never
sees half a document.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from ..delivery import DeliveryStatus
from .base import BaseSmsBackend, OutgoingMessage, SendResult


class FileBackend(BaseSmsBackend):
    provider_name = "file"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(self.option("PATH", required=True))

    def build_payload(self, message: OutgoingMessage) -> dict[str, Any]:
        return {
            "to": message.to,
            "channel": message.channel,
            "body": message.body,
            "app_id": message.app_id,
            "message_id": message.message_id,
            "created": message.created.isoformat(),
        }

    def post_to_provider(self, message: OutgoingMessage, payload: dict[str, Any]) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{message.created:%Y%m%d-%H%M%S}-{message.message_id}-{uuid.uuid4().hex[:8]}"
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, self.path / f"{name}.json")
        return name

    def parse_response(self, message: OutgoingMessage, payload: Any, response: str) -> SendResult:
        return SendResult(provider_message_id=f"file-{response}", status=DeliveryStatus.DELIVERED)

    can_find_sent = True

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> SendResult | None:
        """The directory is the provider's record: a document of this message
        (written, then renamed into place, so never half there)."""
        for path in sorted(self.path.glob(f"*-{message.message_id}-*.json")):
            if json.loads(path.read_text(encoding="utf-8")).get("message_id") == message.message_id:
                return self.parse_response(message, None, path.stem)
        return None
