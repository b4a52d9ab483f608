"""Provider backends: the pipeline lives here, providers implement the hooks.

A backend receives an :class:`OutgoingMessage` (a value object; backends never
touch the database) and returns a :class:`SendResult`. Failures are raised as
:class:`~sms_service.exceptions.ProviderTemporaryError` (retry),
:class:`~sms_service.exceptions.ProviderRejectedError` (do not retry) or
:class:`~sms_service.exceptions.ProviderOutcomeUnknownError` (the provider may have
taken it: never resend blindly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from django.http import HttpRequest

from ..exceptions import ProviderError, SmsServiceConfigurationError

CHANNELS = ("sms", "voice")


@dataclass(frozen=True)
class OutgoingMessage:
    """What a backend needs to send one message."""

    message_id: int
    app_id: str
    to: str  # E.164
    channel: str  # "sms" | "voice"
    body: str  # exact text; for voice, the words to read
    created: datetime
    #: For voice verification calls, the digits to read (the body says the same).
    digits: str = ""
    #: Absolute URL the provider should post delivery receipts to, if any.
    status_callback: str = ""


@dataclass(frozen=True)
class SendResult:
    """The provider took the message."""

    provider_message_id: str
    #: "accepted" (a receipt will follow) or "delivered" (the provider is final).
    status: str = "accepted"
    raw: Any = None


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery receipt parsed from a webhook or a status poll."""

    provider_message_id: str
    #: One of "accepted", "delivered", "undelivered", "failed".
    status: str
    error_code: str = ""
    error_message: str = ""
    raw: Any = field(default=None, repr=False)


class BaseSmsBackend:
    """Template method over a provider. Subclasses set :attr:`provider_name` and
    implement :meth:`build_payload`, :meth:`post_to_provider` and
    :meth:`parse_response`; they may override :meth:`parse_delivery_reports` to
    accept receipts and :meth:`poll_status` for providers without webhooks.
    """

    provider_name: ClassVar[str] = ""
    supported_channels: ClassVar[tuple[str, ...]] = CHANNELS

    def __init__(self, *, alias: str = "default", **options: Any) -> None:
        if not self.provider_name:
            raise SmsServiceConfigurationError(
                f"{type(self).__module__}.{type(self).__qualname__} must set provider_name"
            )
        self.alias = alias
        self.options = options

    # --- the pipeline ------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; raises a ProviderError subclass on failure."""
        if message.channel not in self.supported_channels:
            from ..exceptions import ProviderRejectedError

            raise ProviderRejectedError(
                f"{self.provider_name} cannot send on channel {message.channel!r}"
            )
        self.run_pre_send(message)
        payload = self.build_payload(message)
        response = self.post_to_provider(message, payload)
        result = self.parse_response(message, payload, response)
        self.run_post_send(message, result)
        return result

    def send_messages(self, messages: list[OutgoingMessage]) -> list[SendResult | ProviderError]:
        """Send several; each item is a result or the error it raised."""
        results: list[SendResult | ProviderError] = []
        for message in messages:
            try:
                results.append(self.send(message))
            except ProviderError as exc:
                results.append(exc)
        return results

    # --- hooks -------------------------------------------------------------------

    def run_pre_send(self, message: OutgoingMessage) -> None:
        """Last chance to refuse a message (raise ProviderRejectedError)."""

    def build_payload(self, message: OutgoingMessage) -> Any:
        raise NotImplementedError(
            f"{type(self).__module__}.{type(self).__qualname__} must implement build_payload"
        )

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__module__}.{type(self).__qualname__} must implement post_to_provider"
        )

    def parse_response(self, message: OutgoingMessage, payload: Any, response: Any) -> SendResult:
        raise NotImplementedError(
            f"{type(self).__module__}.{type(self).__qualname__} must implement parse_response"
        )

    def run_post_send(self, message: OutgoingMessage, result: SendResult) -> None:
        """Called after a successful send."""

    # --- receipts ----------------------------------------------------------------

    def parse_delivery_reports(self, request: HttpRequest) -> list[DeliveryReport]:
        """Turn a webhook request into reports. Raise PermissionDenied on a bad
        signature. Backends without webhooks keep this default."""
        raise NotImplementedError(f"{self.provider_name} has no delivery webhook")

    def poll_status(self, provider_message_id: str) -> DeliveryReport | None:
        """Ask the provider for a message's status; None when it cannot tell."""
        return None

    def option(self, name: str, default: Any = ..., *, required: bool = False) -> Any:
        """An option from ``BACKENDS[alias]["OPTIONS"]``; names the key when missing."""
        if name in self.options:
            return self.options[name]
        if required or default is ...:
            raise SmsServiceConfigurationError(
                f'SMS_SERVICE["BACKENDS"]["{self.alias}"]["OPTIONS"]["{name}"] is required '
                f"by {type(self).__qualname__}"
            )
        return default
