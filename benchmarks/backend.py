"""The benchmark's SMS backend: the file backend, one document per phone number.

Same payload and the same write (temporary file + rename) as
:class:`sms_service.backends.file.FileBackend`; only the file name differs, so
the load generator finds the code it has to verify at ``<PATH>/<digits>.json``
without scanning a growing directory.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sms_service.backends.base import OutgoingMessage
from sms_service.backends.file import FileBackend


def document_path(directory: str, phone: str) -> str:
    return os.path.join(directory, phone.lstrip("+") + ".json")


class PhoneFileBackend(FileBackend):
    def post_to_provider(self, message: OutgoingMessage, payload: dict[str, Any]) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        final = document_path(str(self.path), message.to)
        tmp = f"{final}.{message.message_id}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
        os.replace(tmp, final)
        return os.path.basename(final)
