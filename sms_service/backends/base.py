"""Provider backends: the pipeline lives here, providers implement the hooks.

A backend receives an :class:`OutgoingMessage` (a value object; backends never
touch the database) and returns a :class:`SendResult`. Failures are raised as
:class:`~sms_service.exceptions.ProviderTemporaryError` (retry),
:class:`~sms_service.exceptions.ProviderRejectedError` (do not retry) or
:class:`~sms_service.exceptions.ProviderOutcomeUnknownError` (the provider may have
taken it: never resend blindly).

Lifecycle: :func:`sms_service.backends.get_backend` keeps one instance per alias
per process (dropped, and closed, when ``SMS_SERVICE`` changes), so a backend
holding a connection pool reuses its connections across messages. ``open()``
makes those resources (``send`` calls it, so a backend is never used unopened)
and ``close()`` releases them; ``with backend:`` does both around a block.

Each send emits :data:`~sms_service.signals.pre_send` (a receiver may raise
:class:`~sms_service.exceptions.SendCancelled` to stop it) and, after the
provider took the message, :data:`~sms_service.signals.post_send`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from django.http import HttpRequest

from .. import signals
from ..delivery import DeliveryStatus
from ..exceptions import (
    ProviderError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SendCancelled,
    SmsServiceConfigurationError,
)

logger = logging.getLogger(__name__)

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
    #: For template-based providers (:attr:`BaseSmsBackend.uses_templates`): the
    #: provider's template id, its parameters as (name, value) pairs in the
    #: provider's order, and the signature's name (without 【】).
    template_id: str = ""
    template_params: tuple[tuple[str, str], ...] = ()
    sign_name: str = ""


@dataclass(frozen=True)
class SendResult:
    """The provider took the message."""

    provider_message_id: str
    #: ACCEPTED (a receipt will follow) or DELIVERED (the provider is final).
    status: DeliveryStatus = DeliveryStatus.ACCEPTED
    raw: Any = None


@dataclass(frozen=True)
class DeliveryReport:
    """A delivery receipt parsed from a webhook or a status poll."""

    provider_message_id: str
    #: ACCEPTED, DELIVERED, UNDELIVERED or FAILED.
    status: DeliveryStatus
    error_code: str = ""
    error_message: str = ""
    raw: Any = field(default=None, repr=False)


class BaseSmsBackend:
    """Template method over a provider. Subclasses set :attr:`provider_name` and
    implement :meth:`build_payload`, :meth:`post_to_provider` and
    :meth:`parse_response`; they may override :meth:`parse_delivery_reports` to
    accept receipts and :meth:`poll_status` for providers without webhooks.
    """

    #: How many queued messages one worker run may claim and send together
    #: (``OPTIONS["BATCH_SIZE"]`` overrides it per alias). 1 for providers over
    #: the network: there each call's round trip dominates, and messages sent one
    #: by one go out in parallel over the workers. Backends whose calls cost
    #: next to nothing send batches, writing each batch's statuses, events and
    #: charges in a few statements.
    default_batch_size: ClassVar[int] = 1
    provider_name: ClassVar[str] = ""
    supported_channels: ClassVar[tuple[str, ...]] = CHANNELS
    #: The provider sends only templates registered with it (a template id and
    #: parameters, never free text): the outbox fills ``template_id`` and
    #: ``template_params`` from the template's mapping for this backend.
    uses_templates: ClassVar[bool] = False

    def __init__(self, *, alias: str = "default", **options: Any) -> None:
        if not self.provider_name:
            raise SmsServiceConfigurationError(
                f"{type(self).__module__}.{type(self).__qualname__} must set provider_name"
            )
        self.alias = alias
        self.options = options

    # --- lifecycle ----------------------------------------------------------------

    def open(self) -> bool:
        """Make what sending needs (connections, clients); safe to call again.

        Returns True when this call made something, so a caller that opened the
        backend knows to close it. The default has nothing to open.
        """
        return False

    def close(self) -> None:
        """Release what :meth:`open` made; the next send opens again."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the pipeline ------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; raises a ProviderError subclass on failure.

        :class:`SendCancelled` from a ``pre_send`` receiver stops the send before
        the provider is called; any other receiver error is a temporary failure
        (nothing was sent, so a retry is safe).
        """
        if message.channel not in self.supported_channels:
            raise ProviderRejectedError(
                f"{self.provider_name} cannot send on channel {message.channel!r}"
            )
        self._pre_send(message)
        self.open()
        payload = self.build_payload(message)
        response = self.post_to_provider(message, payload)
        result = self.parse_response(message, payload, response)
        for receiver, error in signals.post_send.send_robust(
            sender=type(self), backend=self, message=message, result=result
        ):
            if isinstance(error, Exception):
                logger.error("post_send receiver %r failed for message %s: %r",
                             receiver, message.message_id, error)
        return result

    def _pre_send(self, message: OutgoingMessage) -> None:
        try:
            signals.pre_send.send(sender=type(self), backend=self, message=message)
        except SendCancelled:
            raise
        except Exception as exc:
            raise ProviderTemporaryError(
                f"a pre_send receiver failed: {exc!r}", message_id=message.message_id
            ) from exc

    def send_messages(self, messages: list[OutgoingMessage]) -> list[SendResult | ProviderError]:
        """Send several over one opened backend; each item is a result or the
        error it raised. Closes the backend afterwards if this call opened it."""
        opened = self.open()
        results: list[SendResult | ProviderError] = []
        try:
            for message in messages:
                try:
                    results.append(self.send(message))
                except ProviderError as exc:
                    results.append(exc)
        finally:
            if opened:
                self.close()
        return results

    # --- provider hooks ----------------------------------------------------------

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

    # --- receipts ----------------------------------------------------------------

    def parse_delivery_reports(self, request: HttpRequest) -> list[DeliveryReport]:
        """Turn a webhook request into reports. Raise PermissionDenied on a bad
        signature. Backends without webhooks keep this default."""
        raise NotImplementedError(f"{self.provider_name} has no delivery webhook")

    def webhook_reply(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The JSON body answering a receipt webhook (some providers expect
        their own shape to stop retrying)."""
        return summary

    def poll_status(self, provider_message_id: str) -> DeliveryReport | None:
        """Ask the provider for a message's status; None when it cannot tell."""
        return None

    #: Whether :meth:`find_sent` can tell if the provider has a message.
    can_find_sent: ClassVar[bool] = False

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> SendResult | None:
        """Look ``message`` up at the provider after an ambiguous send (the call
        started at ``since``): its result when the provider has it, None when it
        certainly has not. Raise ProviderTemporaryError when it cannot tell now.
        Only called when :attr:`can_find_sent` is true."""
        raise NotImplementedError(f"{self.provider_name} cannot look messages up")
    def poll_message_status(
        self, provider_message_id: str, *, to: str, sent_at: datetime | None
    ) -> DeliveryReport | None:
        """:meth:`poll_status` for providers that look a message up by number and
        day as well as by id (Aliyun, Tencent Cloud override this one)."""
        return self.poll_status(provider_message_id)

    @classmethod
    def can_poll(cls) -> bool:
        return (
            cls.poll_status is not BaseSmsBackend.poll_status
            or cls.poll_message_status is not BaseSmsBackend.poll_message_status
        )

    @property
    def batch_size(self) -> int:
        """Messages one worker run may send together (see :attr:`default_batch_size`)."""
        return int(self.option("BATCH_SIZE", type(self).default_batch_size))

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

    def timeout_option(self, default: tuple[float, float]) -> tuple[float, float]:
        """The ``TIMEOUT`` option: ``(connect, read)`` seconds, or one number for both."""
        value = self.option("TIMEOUT", default)
        try:
            if isinstance(value, (int, float)):
                return (float(value), float(value))
            connect, read = value
            return (float(connect), float(read))
        except (TypeError, ValueError):
            raise SmsServiceConfigurationError(
                f'SMS_SERVICE["BACKENDS"]["{self.alias}"]["OPTIONS"]["TIMEOUT"] must be '
                f"seconds or a (connect, read) pair, not {value!r}"
            ) from None
