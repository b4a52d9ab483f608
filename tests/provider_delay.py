"""The file backend with a provider round trip that takes time, for the
reliability suite: a worker killed at a random moment is often mid-call, before
or after the provider "took" the message (the document written)."""

from __future__ import annotations

import time
from typing import Any

from sms_service.backends.base import OutgoingMessage
from sms_service.backends.file import FileBackend


class SlowFileBackend(FileBackend):
    def post_to_provider(self, message: OutgoingMessage, payload: dict[str, Any]) -> str:
        delay = float(self.option("DELAY", 0.02))
        time.sleep(delay)  # the request on its way
        name = super().post_to_provider(message, payload)
        time.sleep(delay)  # the reply on its way back
        return name
