"""The behaviour every backend shares, run against the local ones (locmem,
console, file, dummy), plus backend loading through ``get_backend``."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.test import override_settings

from sms_service.backends import get_backend, locmem
from sms_service.backends.base import BaseSmsBackend, OutgoingMessage, SendResult
from sms_service.backends.console import ConsoleBackend
from sms_service.backends.dummy import DummyBackend
from sms_service.backends.file import FileBackend
from sms_service.backends.locmem import LocmemBackend
from sms_service.exceptions import (
    ProviderRejectedError,
    SmsServiceConfigurationError,
)

CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_message(**fields: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": 41,
        "app_id": "app-1",
        "to": "+8618612345678",
        "channel": "sms",
        "body": "【Demo】您的验证码是 123456。",
        "created": CREATED,
    }
    values.update(fields)
    return OutgoingMessage(**values)


def make_voice(**fields: Any) -> OutgoingMessage:
    return make_message(channel="voice", body="1 2 3 4 5 6", digits="123456", **fields)


class BackendContract:
    """Behaviour every backend must have. Subclasses build the backend and say
    what it recorded (``sent_bodies``), in send order."""

    #: The status a local backend reports: nothing will ever send a receipt.
    expected_status: ClassVar[str] = "delivered"

    @pytest.fixture
    def backend(self, tmp_path: Path) -> BaseSmsBackend:
        raise NotImplementedError

    def sent_bodies(self, backend: BaseSmsBackend) -> list[str] | None:
        """Bodies the backend recorded, or None when it records nothing."""
        raise NotImplementedError

    def test_send_returns_a_result_with_a_provider_id(self, backend) -> None:
        result = backend.send(make_message())

        assert isinstance(result, SendResult)
        assert isinstance(result.provider_message_id, str)
        assert result.provider_message_id
        assert result.status == self.expected_status
        assert backend.provider_name

    def test_provider_ids_are_unique(self, backend) -> None:
        first = backend.send(make_message(message_id=1))
        second = backend.send(make_message(message_id=2))
        assert first.provider_message_id != second.provider_message_id

    def test_text_is_kept_exactly(self, backend) -> None:
        backend.send(make_message())
        bodies = self.sent_bodies(backend)
        if bodies is not None:
            assert bodies == ["【Demo】您的验证码是 123456。"]

    def test_voice_channel_works(self, backend) -> None:
        result = backend.send(make_voice())
        assert result.provider_message_id
        bodies = self.sent_bodies(backend)
        if bodies is not None:
            assert bodies == ["1 2 3 4 5 6"]

    @pytest.mark.parametrize("channel", ["fax", "", "SMS", "email"])
    def test_unknown_channel_is_rejected(self, backend, channel) -> None:
        with pytest.raises(ProviderRejectedError, match="channel"):
            backend.send(make_message(channel=channel))
        bodies = self.sent_bodies(backend)
        if bodies is not None:
            assert bodies == []

    def test_send_messages_returns_one_outcome_per_message(self, backend) -> None:
        outcomes = backend.send_messages(
            [make_message(message_id=1), make_message(message_id=2, channel="fax")]
        )
        assert isinstance(outcomes[0], SendResult)
        assert isinstance(outcomes[1], ProviderRejectedError)

    def test_no_delivery_webhook(self, backend, rf) -> None:
        with pytest.raises(NotImplementedError):
            backend.parse_delivery_reports(rf.post("/receipts"))

    def test_poll_status_cannot_tell(self, backend) -> None:
        result = backend.send(make_message())
        assert backend.poll_status(result.provider_message_id) is None


class TestLocmemBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> BaseSmsBackend:
        return LocmemBackend()

    def sent_bodies(self, backend: BaseSmsBackend) -> list[str]:
        return [message.body for message in locmem.outbox]

    def test_outbox_holds_the_message_itself(self, backend) -> None:
        message = make_message()
        backend.send(message)
        assert locmem.outbox == [message]


class TestConsoleBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> BaseSmsBackend:
        return ConsoleBackend(stream=io.StringIO())

    def sent_bodies(self, backend: BaseSmsBackend) -> list[str]:
        # Each message is framed by rule lines, with a header line before the body.
        blocks = backend.stream.getvalue().split("-" * 60 + "\n")
        return [
            block.split("\n", 1)[1].rstrip("\n") for block in blocks if block.strip()
        ]

    def test_header_names_kind_number_and_ids(self, backend) -> None:
        backend.send(make_message())
        backend.send(make_voice(message_id=42))
        output = backend.stream.getvalue()
        assert "SMS to +8618612345678 (app app-1, message 41)" in output
        assert "VOICE CALL to +8618612345678 (app app-1, message 42)" in output

    def test_writes_to_stdout_by_default(self, capsys) -> None:
        ConsoleBackend().send(make_message())
        assert "【Demo】您的验证码是 123456。" in capsys.readouterr().out


class TestFileBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> BaseSmsBackend:
        # A directory that does not exist yet: the backend creates it.
        return FileBackend(PATH=str(tmp_path / "sms"))

    def documents(self, backend: BaseSmsBackend) -> list[dict[str, Any]]:
        if not backend.path.exists():
            return []
        # Sorted by name (time, message id, random suffix); the contract tests
        # that compare order send a single message.
        files = sorted(backend.path.iterdir())
        return [json.loads(path.read_text(encoding="utf-8")) for path in files]

    def sent_bodies(self, backend: BaseSmsBackend) -> list[str]:
        return [document["body"] for document in self.documents(backend)]

    def test_one_json_document_per_message(self, backend) -> None:
        backend.send(make_message())
        assert self.documents(backend) == [
            {
                "to": "+8618612345678",
                "channel": "sms",
                "body": "【Demo】您的验证码是 123456。",
                "app_id": "app-1",
                "message_id": 41,
                "created": CREATED.isoformat(),
            }
        ]

    def test_files_are_written_under_a_temporary_name_then_renamed(
        self, backend
    ) -> None:
        first = backend.send(make_message())
        # The same message twice (a retried task) must not overwrite the first file.
        second = backend.send(make_message())

        names = sorted(path.name for path in backend.path.iterdir())
        assert len(names) == 2
        # Only finished documents remain: no hidden temporary files.
        assert all(
            name.endswith(".json") and not name.startswith(".") for name in names
        )
        assert all(name.startswith("20250102-030405-41-") for name in names)
        assert {f"file-{name.removesuffix('.json')}" for name in names} == {
            first.provider_message_id,
            second.provider_message_id,
        }

    def test_path_is_required(self) -> None:
        with pytest.raises(SmsServiceConfigurationError) as info:
            FileBackend(alias="archive")
        assert 'SMS_SERVICE["BACKENDS"]["archive"]["OPTIONS"]["PATH"]' in str(
            info.value
        )


class TestDummyBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> BaseSmsBackend:
        return DummyBackend()

    def sent_bodies(self, backend: BaseSmsBackend) -> None:
        return None  # records nothing by design


# --- the base class --------------------------------------------------------------------


def test_a_backend_without_provider_name_is_a_configuration_error() -> None:
    class Nameless(DummyBackend):
        provider_name = ""

    with pytest.raises(SmsServiceConfigurationError, match="must set provider_name"):
        Nameless()


def test_unimplemented_hooks_name_the_class() -> None:
    class Incomplete(BaseSmsBackend):
        provider_name = "incomplete"

    with pytest.raises(
        NotImplementedError, match=r"Incomplete must implement build_payload"
    ):
        Incomplete().send(make_message())


def test_option_names_the_missing_key() -> None:
    backend = DummyBackend(alias="bulk", REGION="eu")
    assert backend.option("REGION") == "eu"
    assert backend.option("MISSING", None) is None
    with pytest.raises(SmsServiceConfigurationError) as info:
        backend.option("API_KEY")
    assert 'SMS_SERVICE["BACKENDS"]["bulk"]["OPTIONS"]["API_KEY"]' in str(info.value)


# --- get_backend -----------------------------------------------------------------------


def backends_setting(**backends: dict[str, Any]) -> dict[str, Any]:
    return {
        "BACKENDS": {
            "default": {"BACKEND": "sms_service.backends.dummy.DummyBackend"},
            **backends,
        }
    }


def test_get_backend_by_alias_with_options(tmp_path: Path) -> None:
    setting = backends_setting(
        archive={
            "BACKEND": "sms_service.backends.file.FileBackend",
            "OPTIONS": {"PATH": str(tmp_path)},
        },
    )
    with override_settings(SMS_SERVICE=setting):
        assert isinstance(get_backend(), DummyBackend)
        backend = get_backend("archive")
        assert isinstance(backend, FileBackend)
        assert backend.alias == "archive"
        assert backend.path == tmp_path
        # Keyword arguments override OPTIONS.
        assert (
            get_backend("archive", PATH=str(tmp_path / "other")).path
            == tmp_path / "other"
        )


def test_get_backend_unknown_alias_names_it() -> None:
    with override_settings(SMS_SERVICE=backends_setting()):
        with pytest.raises(SmsServiceConfigurationError) as info:
            get_backend("nope")
    assert 'SMS_SERVICE["BACKENDS"]' in str(info.value)
    assert "'nope'" in str(info.value)


@pytest.mark.parametrize(
    "config",
    [
        {"BACKEND": "sms_service.backends.nowhere.Backend"},
        {"BACKEND": "sms_service.backends.dummy.NoSuchBackend"},
        {"BACKEND": "not a path"},
        {"OPTIONS": {}},
    ],
    ids=["missing-module", "missing-class", "garbage", "no-backend-key"],
)
def test_get_backend_unimportable_path_names_the_key(config: dict[str, Any]) -> None:
    with override_settings(SMS_SERVICE=backends_setting(broken=config)):
        with pytest.raises(SmsServiceConfigurationError) as info:
            get_backend("broken")
    assert 'SMS_SERVICE["BACKENDS"]["broken"]["BACKEND"]' in str(info.value)


def test_get_backend_missing_required_option_names_the_key() -> None:
    setting = backends_setting(
        archive={"BACKEND": "sms_service.backends.file.FileBackend"}
    )
    with override_settings(SMS_SERVICE=setting):
        with pytest.raises(SmsServiceConfigurationError) as info:
            get_backend("archive")
    assert 'SMS_SERVICE["BACKENDS"]["archive"]["OPTIONS"]["PATH"]' in str(info.value)
