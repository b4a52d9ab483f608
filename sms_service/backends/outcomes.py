"""Shared by provider backends: what a provider's error code means for a message.

Each provider backend keeps a table of its error codes, each mapped to an
:class:`Outcome`: whether the message may be retried (``temporary``), is refused
for good (``rejected``) or may have been sent (``unknown``), the reason in
words, and whether the refusal is the *provider's* fault (account, balance,
signature or template not approved: another provider may well send the same
message) rather than the message's (an invalid number, a blacklisted handset).

The transport helpers tell "the request never left this host" (safe to retry or
to try another provider) from "the provider may have it" (never resend).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from ..exceptions import (
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
)

TEMPORARY = "temporary"
REJECTED = "rejected"
UNKNOWN = "unknown"

_CLASSES: dict[str, type[ProviderError]] = {
    TEMPORARY: ProviderTemporaryError,
    REJECTED: ProviderRejectedError,
    UNKNOWN: ProviderOutcomeUnknownError,
}


@dataclass(frozen=True)
class Outcome:
    kind: str
    reason: str
    #: The provider (not the message) is at fault: another provider may send it.
    provider_fault: bool = False


def temporary(reason: str) -> Outcome:
    return Outcome(TEMPORARY, reason, provider_fault=True)


def rejected(reason: str, *, provider_fault: bool = False) -> Outcome:
    return Outcome(REJECTED, reason, provider_fault=provider_fault)


def unknown(reason: str) -> Outcome:
    return Outcome(UNKNOWN, reason)


def error_for(
    outcome: Outcome,
    *,
    provider: str,
    code: str,
    detail: str = "",
    raw: Any = None,
    **context: Any,
) -> ProviderError:
    """The exception for a provider error code, its reason in the message."""
    text = f"{provider} error {code}: {outcome.reason}"
    if detail:
        text += f" ({detail[:200]})"
    return _CLASSES[outcome.kind](
        text,
        raw=raw,
        provider_code=code,
        provider_fault=outcome.provider_fault,
        **context,
    )


def lookup(table: dict[str, Outcome], code: str, default: Outcome) -> Outcome:
    """The outcome for ``code``: exact match first, then its dotted prefixes
    (``InternalError.Timeout`` -> ``InternalError``), then ``default``."""
    probe = code
    while probe:
        if probe in table:
            return table[probe]
        if "." not in probe:
            break
        probe = probe.rsplit(".", 1)[0]
    return default


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (SDKs wrap requests' exceptions)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or exc.__context__ or getattr(exc, "inner_exception", None)
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def transport_error(
    exc: BaseException, *, provider: str, read_timeout: float, **context: Any
) -> ProviderError | None:
    """Classify a transport failure found in ``exc``'s chain; None if there is none.

    Connection refused, DNS failure, connect timeout, TLS handshake: nothing was
    sent (temporary). A read timeout or a connection dropped after the request
    went out: the provider may have the message (unknown).
    """
    import requests

    cause = root_cause(exc)
    chain = _chain(exc)
    if any(isinstance(item, requests.ConnectTimeout) for item in chain):
        return ProviderTemporaryError(f"cannot connect to {provider}: {cause}", **context)
    if any(isinstance(item, requests.ReadTimeout) for item in chain):
        return ProviderOutcomeUnknownError(
            f"{provider} did not answer within {read_timeout} s", **context
        )
    for item in chain:
        if isinstance(item, requests.ConnectionError):
            if failed_before_sending(item):
                return ProviderTemporaryError(
                    f"cannot connect to {provider}: {item}", **context
                )
            return ProviderOutcomeUnknownError(
                f"connection to {provider} failed after sending: {item}", **context
            )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    items = [exc]
    while True:
        inner = exc.__cause__ or exc.__context__ or getattr(exc, "inner_exception", None)
        if not isinstance(inner, BaseException) or inner in items:
            return items
        items.append(inner)
        exc = inner


def failed_before_sending(exc: Any) -> bool:
    """Whether a requests ConnectionError happened before the request left this host.

    With urllib3 retries at 0 (requests' default adapter, and the SDKs'), every
    failure to open a connection (refused, DNS, connect timeout, TLS handshake,
    proxy) arrives wrapped in MaxRetryError; failures once the request is on the
    wire (peer reset, closed without a reply) arrive as ProtocolError / OSError.
    """
    import requests
    from urllib3.exceptions import MaxRetryError, ProtocolError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if not isinstance(reason, MaxRetryError):
        return False
    # urllib3 also wraps a reply it could not read in MaxRetryError when it may
    # not retry a read: that one was sent.
    return not isinstance(reason.reason, ProtocolError)


def check_receipt_token(request: HttpRequest, expected: str) -> None:
    """Receipts authenticated by a secret in the callback URL (``?token=``).

    For providers that do not sign their receipt pushes. Raises PermissionDenied
    when no token is configured (receipts are refused rather than trusted) or
    the request's does not match.
    """
    given = request.GET.get("token", "")
    if not expected or not given or not hmac.compare_digest(given, expected):
        raise PermissionDenied("missing or wrong receipt token")
