"""Importing LeanCloud ``_User`` exports (``manage.py sms_service_import_users``).

LeanCloud exports a class as JSON lines (one object per line) or, in older
exports, as one JSON array (bare, or under ``"results"``). :class:`ExportReader`
reads both and gives every row its line number; :func:`import_row` turns one row
into a member through ``services.users.create_member`` in a transaction of its
own, so a bad row is skipped whole and the others go on. Rows already imported
(same ``objectId`` in the app) are left alone: running an import twice adds
nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils.dateparse import parse_datetime

from ..exceptions import SmsServiceError
from ..hashers import LeanCloudPasswordHasher
from ..models import App

#: ``_User`` fields with a place of their own; every other field goes to ``extra``.
MAPPED = {
    "objectId", "username", "password", "salt", "email", "emailVerified",
    "mobilePhoneNumber", "mobilePhoneVerified", "createdAt", "updatedAt",
}
#: Fields that are not carried over: LeanCloud's ACLs, its session tokens, and
#: third-party login tokens (``authData``), which are credentials of other services.
DROPPED = {"ACL", "sessionToken", "authData"}

_RESULTS_ARRAY = re.compile(r'^\s*\{\s*"results"\s*:\s*\[')


class RowError(ValueError):
    """A row that cannot be imported; the message says why."""


@dataclass(frozen=True)
class ExportRow:
    """One row of an export: its 1-based line, its object (or why it has none),
    and how far into the file it ends (for progress)."""

    line: int
    data: Any
    error: str | None
    position: int


class ExportReader:
    """Iterates the rows of an export file. ``total`` is the file's size in the
    unit of ``ExportRow.position`` (bytes for JSON lines, characters for an array).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as stream:
            head = stream.read(4096).decode("utf-8", errors="replace").lstrip("\ufeff")
        self.is_array = head.lstrip().startswith("[") or bool(_RESULTS_ARRAY.match(head))
        self.total = self.path.stat().st_size

    def __iter__(self) -> Iterator[ExportRow]:
        return self._array() if self.is_array else self._lines()

    def _lines(self) -> Iterator[ExportRow]:
        position = 0
        with self.path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                position += len(raw)
                try:
                    text = raw.decode("utf-8").strip().lstrip("\ufeff")
                except UnicodeDecodeError:
                    yield ExportRow(number, None, "not UTF-8 text", position)
                    continue
                if not text:
                    continue
                try:
                    yield ExportRow(number, json.loads(text), None, position)
                except json.JSONDecodeError as exc:
                    yield ExportRow(number, None, f"not JSON ({exc.msg})", position)

    def _array(self) -> Iterator[ExportRow]:
        text = self.path.read_bytes().decode("utf-8").lstrip("\ufeff")
        self.total = len(text)
        decoder = json.JSONDecoder()
        match = _RESULTS_ARRAY.match(text)
        index = match.end() if match else text.index("[") + 1
        line = text.count("\n", 0, index) + 1
        while True:
            index, line = _skip_space(text, index, line)
            if index < len(text) and text[index] == "]":
                return
            try:
                data, end = decoder.raw_decode(text, index)
            except json.JSONDecodeError as exc:
                # Past a broken element the array cannot be resynchronised.
                yield ExportRow(line, None, f"not JSON ({exc.msg}); the rest of the file "
                                            "cannot be read", len(text))
                return
            yield ExportRow(line, data, None, end)
            line += text.count("\n", index, end)
            index, line = _skip_space(text, end, line)
            if index < len(text) and text[index] == ",":
                index += 1
            elif index >= len(text) or text[index] != "]":
                yield ExportRow(line, None, "expected ',' or ']' between rows", len(text))
                return


def _skip_space(text: str, index: int, line: int) -> tuple[int, int]:
    while index < len(text) and text[index] in " \t\r\n":
        if text[index] == "\n":
            line += 1
        index += 1
    return index, line


def member_fields(data: Any) -> dict[str, Any]:
    """``create_member`` arguments for one exported ``_User`` object."""
    if not isinstance(data, dict):
        raise RowError("a row must be a JSON object")
    object_id = data.get("objectId")
    if not isinstance(object_id, str) or not object_id.strip():
        raise RowError("objectId is missing")
    username = data.get("username")
    if not isinstance(username, str) or not username.strip():
        raise RowError("username is missing")
    password, salt = data.get("password"), data.get("salt")
    if password or salt:
        if not (isinstance(password, str) and isinstance(salt, str) and password and salt):
            raise RowError("password and salt must both be strings")
        try:
            password_hash = LeanCloudPasswordHasher.from_export(salt=salt, password=password)
        except ValueError as exc:
            raise RowError(str(exc)) from exc
    else:
        password_hash = None
    return {
        "object_id": object_id,
        "username": username,
        "password_hash": password_hash,
        "email": _optional_text(data, "email"),
        "phone": _optional_text(data, "mobilePhoneNumber"),
        "phone_verified": _flag(data, "mobilePhoneVerified"),
        "email_verified": _flag(data, "emailVerified"),
        "created_at": _date(data.get("createdAt")),
        "extra": {k: v for k, v in data.items() if k not in MAPPED | DROPPED},
    }


def import_row(*, app: App, data: Any) -> bool:
    """Import one row; True when a member was created, False when its objectId
    was already imported. Raises :class:`RowError`; nothing is half-written."""
    from ..models.users import AppUser
    from . import users

    fields = member_fields(data)
    if AppUser.objects.filter(app=app, object_id=fields["object_id"]).exists():
        return False
    try:
        with transaction.atomic():
            users.create_member(app=app, **fields)
    except SmsServiceError as exc:
        raise RowError(f"{exc.message} (code {int(exc.code)})") from exc
    except IntegrityError as exc:
        if AppUser.objects.filter(app=app, object_id=fields["object_id"]).exists():
            return False  # imported meanwhile by another run
        raise RowError(f"conflicts with an existing member ({exc})") from exc
    except DatabaseError as exc:  # e.g. a value longer than its column
        raise RowError(f"the database refused it ({exc})") from exc
    return True


def _optional_text(data: dict, key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RowError(f"{key} must be a string")
    return value


def _flag(data: dict, key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RowError(f"{key} must be true or false")
    return value


def _date(value: Any) -> datetime | None:
    """LeanCloud dates: an ISO 8601 string or ``{"__type": "Date", "iso": ...}``."""
    if value is None:
        return None
    if isinstance(value, dict) and value.get("__type") == "Date":
        value = value.get("iso")
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise RowError("createdAt must be an ISO 8601 date with a time zone")
    return parsed
