"""Twilio: SMS through the Messages API, voice codes through the Calls API.

Configuration (``SMS_SERVICE["BACKENDS"][alias]["OPTIONS"]``):

``ACCOUNT_SID``, ``AUTH_TOKEN``
    Required. Used for HTTP Basic auth and to check webhook signatures.
``FROM_NUMBER`` / ``MESSAGING_SERVICE_SID``
    The sender. SMS uses the messaging service when one is set, else the number;
    voice calls always need ``FROM_NUMBER`` (Twilio places calls from a number).
``API_BASE_URL``
    Default ``https://api.twilio.com``; tests point it at a local fake server.
``TIMEOUT``
    ``(connect, read)`` seconds, or one number for both. Default ``(3.05, 10)``.
``VOICE_LANGUAGE``
    ``language`` of the ``<Say>`` that reads voice codes. Default ``en-US``.
``WEBHOOK_URL_BASE``
    Public scheme and host Twilio posts receipts to (e.g.
    ``https://sms.example.com``), when a proxy hides them from Django.

Outcomes are classified by whether Twilio may have taken the message, since a
POST to Twilio is not idempotent and a resent verification code is a second
charge and a confused user (see :data:`TwilioBackend.HTTP_STATUS_ERRORS`):

* the connection could not be opened, HTTP 429, 502, 503: ProviderTemporaryError;
* HTTP 4xx: ProviderRejectedError with Twilio's error code;
* HTTP 500 and 504, read timeout, connection dropped after the request went out, a 2xx reply that
  cannot be read: ProviderOutcomeUnknownError (reconciled by receipt or poll).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape, quoteattr

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .. import __version__
from ..delivery import DeliveryStatus
from ..exceptions import (
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SmsServiceConfigurationError,
    SmsServiceImproperlyInstalled,
)
from .base import BaseSmsBackend, DeliveryReport, OutgoingMessage, SendResult
from .outcomes import failed_before_sending

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised by the "noextras" tox env
    raise SmsServiceImproperlyInstalled("requests", extra="twilio") from exc

API_VERSION = "2010-04-01"

#: Message SIDs (SM: SMS, MM: MMS) and call SIDs (CA): two letters, 32 hex digits.
#: Checked before a SID goes into a URL path.
_SID_RE = re.compile(r"(SM|MM|CA)[0-9a-fA-F]{32}")

#: Webhook fields kept in ``DeliveryReport.raw``. The rest of the callback carries
#: phone numbers (To, From) and sometimes the message body, which must not end up
#: in the message event log.
_RECEIPT_FIELDS = (
    "AccountSid",
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "CallSid",
    "CallStatus",
    "CallDuration",
    "ErrorCode",
    "ErrorMessage",
)


@dataclass(frozen=True)
class TwilioRequest:
    """What :meth:`TwilioBackend.build_payload` hands to ``post_to_provider``."""

    #: "Messages" or "Calls".
    resource: str
    #: Form fields of the POST.
    data: dict[str, str]


class TwilioBackend(BaseSmsBackend):
    """Sends SMS and voice verification calls through Twilio's REST API."""

    provider_name = "twilio"

    DEFAULT_API_BASE_URL: ClassVar[str] = "https://api.twilio.com"
    # requests' advice: a connect timeout slightly above a multiple of 3 s, the
    # TCP retransmission window.
    DEFAULT_TIMEOUT: ClassVar[tuple[float, float]] = (3.05, 10.0)
    DEFAULT_VOICE_LANGUAGE: ClassVar[str] = "en-US"

    #: HTTP status -> error class, for statuses that are not simply "4xx" or
    #: "5xx" (those fall back to rejected / temporary in :meth:`_error_for_status`).
    HTTP_STATUS_ERRORS: ClassVar[dict[int, type[ProviderError]]] = {
        # Twilio 20429 "Too Many Requests": the request was refused before any
        # processing, so a retry after back-off is safe.
        429: ProviderTemporaryError,
        # Twilio 20500 and gateway timeouts: Twilio warns that a POST retried after
        # a 500 can be delivered twice, since the message may have been created
        # before the error. The outcome is unknown: never resend blindly, let a
        # receipt or a poll decide (a duplicate code SMS costs twice and confuses).
        500: ProviderOutcomeUnknownError,
        504: ProviderOutcomeUnknownError,
        # 502/503: the request did not reach a Twilio worker; safe to retry.
        502: ProviderTemporaryError,
        503: ProviderTemporaryError,
        # Authentication failed (Twilio 20003): every message will fail the same
        # way until the settings are fixed; retrying does not help.
        401: ProviderRejectedError,
        # Twilio never redirects API calls: API_BASE_URL is wrong. Nothing was sent.
        301: ProviderRejectedError,
        302: ProviderRejectedError,
        307: ProviderRejectedError,
        308: ProviderRejectedError,
    }

    #: Twilio message status -> DeliveryReport status.
    MESSAGE_STATUSES: ClassVar[dict[str, DeliveryStatus]] = {
        "queued": DeliveryStatus.ACCEPTED,
        "accepted": DeliveryStatus.ACCEPTED,  # taken by a messaging service, sender not chosen yet
        "scheduled": DeliveryStatus.ACCEPTED,
        "sending": DeliveryStatus.ACCEPTED,
        "sent": DeliveryStatus.ACCEPTED,  # handed to the carrier; a carrier receipt may follow
        "delivered": DeliveryStatus.DELIVERED,
        "read": DeliveryStatus.DELIVERED,  # channels with read receipts (WhatsApp)
        "undelivered": DeliveryStatus.UNDELIVERED,  # the carrier could not deliver it
        "failed": DeliveryStatus.FAILED,  # Twilio could not send it at all
        "canceled": DeliveryStatus.FAILED,  # a scheduled message cancelled before sending
    }

    #: Twilio call status -> DeliveryReport status. A voice code is "delivered"
    #: when the call was answered (Twilio played the TwiML to the end).
    CALL_STATUSES: ClassVar[dict[str, DeliveryStatus]] = {
        "queued": DeliveryStatus.ACCEPTED,
        "initiated": DeliveryStatus.ACCEPTED,
        "ringing": DeliveryStatus.ACCEPTED,
        "in-progress": DeliveryStatus.ACCEPTED,
        "completed": DeliveryStatus.DELIVERED,
        "busy": DeliveryStatus.UNDELIVERED,
        "no-answer": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.UNDELIVERED,  # e.g. unreachable number; Twilio did try
        "canceled": DeliveryStatus.UNDELIVERED,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account_sid: str = self.option("ACCOUNT_SID", required=True)
        self.auth_token: str = self.option("AUTH_TOKEN", required=True)
        self.from_number: str = self.option("FROM_NUMBER", "")
        self.messaging_service_sid: str = self.option("MESSAGING_SERVICE_SID", "")
        if not (self.from_number or self.messaging_service_sid):
            raise SmsServiceConfigurationError(
                f'SMS_SERVICE["BACKENDS"]["{self.alias}"]["OPTIONS"] needs "FROM_NUMBER" '
                f'or "MESSAGING_SERVICE_SID" for {type(self).__qualname__}'
            )
        self.api_base_url: str = self.option(
            "API_BASE_URL", self.DEFAULT_API_BASE_URL
        ).rstrip("/")
        self.timeout = self.timeout_option(self.DEFAULT_TIMEOUT)
        self.voice_language: str = self.option(
            "VOICE_LANGUAGE", self.DEFAULT_VOICE_LANGUAGE
        )
        self.webhook_url_base: str = self.option("WEBHOOK_URL_BASE", "").rstrip("/")
        #: One ``requests.Session`` per backend instance (and so per alias and
        #: process): its connection pool keeps the TLS connection to Twilio open
        #: across messages. Made by :meth:`open`, dropped by :meth:`close`.
        self.session: requests.Session | None = None

    def _make_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = (self.account_sid, self.auth_token)
        session.headers["User-Agent"] = (
            f"django-sms-service/{__version__} python-requests/{requests.__version__}"
        )
        # urllib3 must never retry on its own: a POST repeated after the bytes
        # went out could send the SMS twice. total=0 also makes every failure to
        # open a connection arrive wrapped in MaxRetryError, which is how
        # _transport_error() tells "never sent" from "maybe sent".
        adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def open(self) -> bool:
        """Make the HTTP session if there is none; True when this call made it."""
        if self.session is not None:
            return False
        self.session = self._make_session()
        return True

    def close(self) -> None:
        """Release the pooled connections (the next send opens a new session)."""
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def _http(self) -> requests.Session:
        self.open()
        assert self.session is not None
        return self.session

    # --- sending -----------------------------------------------------------------

    def build_payload(self, message: OutgoingMessage) -> TwilioRequest:
        if message.channel == "voice":
            return self._call_payload(message)
        data = {"To": message.to, "Body": message.body}
        # A messaging service picks the sender itself (and handles opt-outs), so
        # it wins over a fixed number when both are configured.
        if self.messaging_service_sid:
            data["MessagingServiceSid"] = self.messaging_service_sid
        else:
            data["From"] = self.from_number
        if message.status_callback:
            data["StatusCallback"] = message.status_callback
        return TwilioRequest(resource="Messages", data=data)

    def _call_payload(self, message: OutgoingMessage) -> TwilioRequest:
        # Only the digits are ever read out: never free text, which
        # keeps message content out of the TwiML.
        if not (message.digits.isascii() and message.digits.isdigit()):
            raise ProviderRejectedError(
                "a Twilio voice call reads digits only, and the message has none "
                "or other characters as well",
                message_id=message.message_id,
            )
        if not self.from_number:
            # Calls cannot use a messaging service: name the missing key.
            self.option("FROM_NUMBER", required=True)
        data = {
            "To": message.to,
            "From": self.from_number,
            "Twiml": self.voice_twiml(message.digits),
        }
        if message.status_callback:
            data["StatusCallback"] = message.status_callback
        return TwilioRequest(resource="Calls", data=data)

    def voice_twiml(self, digits: str) -> str:
        """TwiML reading ``digits`` one by one, twice, with a pause in between."""
        # Commas make the text-to-speech engine read "1, 2, 3" rather than
        # "one hundred twenty-three" and give the listener time to write.
        spoken = escape(", ".join(digits))
        say = f"<Say language={quoteattr(self.voice_language)}>{spoken}</Say>"
        return f'<Response>{say}<Pause length="1"/>{say}</Response>'

    def post_to_provider(
        self, message: OutgoingMessage, payload: TwilioRequest
    ) -> requests.Response:
        url = self._url(f"{payload.resource}.json")
        try:
            # Redirects are not followed: requests would turn the POST into a GET.
            return self._http().post(
                url, data=payload.data, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc, message_id=message.message_id) from exc

    def parse_response(
        self,
        message: OutgoingMessage,
        payload: TwilioRequest,
        response: requests.Response,
    ) -> SendResult:
        if not 200 <= response.status_code < 300:
            raise self._error_for_status(response, message_id=message.message_id)
        body = _json_or_none(response)
        sid = body.get("sid") if isinstance(body, dict) else None
        if not isinstance(sid, str) or not sid:
            # Twilio answered "created" but we cannot tell which resource: it may
            # well send the message, so it must not be sent again.
            raise ProviderOutcomeUnknownError(
                "Twilio accepted the request but the reply has no sid",
                raw=response.text[:1000],
                http_status=response.status_code,
                message_id=message.message_id,
            )
        # Whatever status the reply carries (usually "queued"), the final word
        # comes from the status callback or a poll.
        return SendResult(
            provider_message_id=sid, status=DeliveryStatus.ACCEPTED, raw=_summary(body)
        )

    # --- error mapping -----------------------------------------------------------

    def _transport_error(
        self, exc: requests.RequestException, **context: Any
    ) -> Exception:
        """Classify a requests exception by whether Twilio may have the request."""
        if bad_url := self._bad_url_error(exc):
            return bad_url
        if isinstance(exc, requests.ReadTimeout):
            # The request was sent and Twilio may be processing it right now.
            return ProviderOutcomeUnknownError(
                f"Twilio did not answer within {self.timeout[1]} s", **context
            )
        if isinstance(exc, requests.ConnectionError) and failed_before_sending(exc):
            # Connection refused, DNS failure, connect timeout, TLS handshake or
            # proxy failure: no byte of the request reached Twilio.
            return ProviderTemporaryError(f"cannot connect to Twilio: {exc}", **context)
        # Connection reset or closed after the request went out, a broken reply
        # body, anything else: Twilio may have taken the message.
        return ProviderOutcomeUnknownError(
            f"connection to Twilio failed after sending: {exc}", **context
        )

    def _bad_url_error(
        self, exc: requests.RequestException
    ) -> SmsServiceConfigurationError | None:
        # Raised before any connection is attempted: a settings mistake, which
        # must surface as such rather than as a provider failure to retry.
        if isinstance(
            exc,
            (
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL,
            ),
        ):
            return SmsServiceConfigurationError(
                f'SMS_SERVICE["BACKENDS"]["{self.alias}"]["OPTIONS"]["API_BASE_URL"] '
                f"is not a usable URL: {self.api_base_url!r}"
            )
        return None

    def _error_for_status(
        self, response: requests.Response, **context: Any
    ) -> ProviderError:
        """Build the error for a non-2xx reply; Twilio's code goes in the context."""
        status = response.status_code
        body = _json_or_none(response)
        body = body if isinstance(body, dict) else {}
        # Twilio's own error number (21211 invalid "To", 20003 bad credentials).
        provider_code = str(body.get("code") or "")
        detail = body.get("message") or response.reason or ""
        error_class = self.HTTP_STATUS_ERRORS.get(status)
        if error_class is None:
            if 400 <= status < 500:
                error_class = ProviderRejectedError
            elif status >= 500:
                error_class = ProviderTemporaryError
            else:
                # 1xx or an unexpected 2xx/3xx: we cannot tell what happened.
                error_class = ProviderOutcomeUnknownError
        error = error_class(
            f"Twilio answered HTTP {status}"
            + (f" (error {provider_code})" if provider_code else "")
            + (f": {detail}" if detail else ""),
            raw=body or response.text[:1000],
            provider_code=provider_code,
            http_status=status,
            **context,
        )
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isdigit():
            error.retry_after = int(retry_after)
        return error

    # --- receipts ----------------------------------------------------------------

    def parse_delivery_reports(self, request: HttpRequest) -> list[DeliveryReport]:
        """Check ``X-Twilio-Signature`` and turn a status callback into reports.

        Raises :class:`~django.core.exceptions.PermissionDenied` when the signature
        is missing or wrong.
        """
        signature = request.headers.get("X-Twilio-Signature", "")
        params = request.POST
        if not signature or not any(
            hmac.compare_digest(self.webhook_signature(url, params), signature)
            for url in self._signed_url_candidates(request)
        ):
            raise PermissionDenied("invalid Twilio signature")
        raw = {name: params[name] for name in _RECEIPT_FIELDS if name in params}
        if params.get("MessageSid") or params.get("SmsSid"):
            sid = params.get("MessageSid") or params.get("SmsSid") or ""
            twilio_status = params.get("MessageStatus") or params.get("SmsStatus") or ""
            status = self._map_status(self.MESSAGE_STATUSES, twilio_status)
        elif params.get("CallSid"):
            sid = params["CallSid"]
            status = self._map_status(self.CALL_STATUSES, params.get("CallStatus", ""))
        else:
            return []
        return [
            DeliveryReport(
                provider_message_id=sid,
                status=status,
                error_code=params.get("ErrorCode", ""),
                error_message=params.get("ErrorMessage", ""),
                raw=raw,
            )
        ]

    def webhook_signature(self, url: str, params: Any) -> str:
        """Twilio's request signature: base64(HMAC-SHA1(auth token, url + params)).

        ``params`` (a QueryDict or a plain dict) is appended sorted by name, each
        name immediately followed by its value, without separators.
        """
        parts = [url]
        for name in sorted(params):
            values = (
                params.getlist(name) if hasattr(params, "getlist") else [params[name]]
            )
            parts.extend(name + value for value in sorted(values))
        digest = hmac.new(
            self.auth_token.encode(), "".join(parts).encode(), hashlib.sha1
        ).digest()
        return base64.b64encode(digest).decode()

    def _signed_url_candidates(self, request: HttpRequest) -> list[str]:
        if self.webhook_url_base:
            url = self.webhook_url_base + request.get_full_path()
        else:
            url = request.build_absolute_uri()
        # Twilio signs the URL as configured, which may or may not spell out the
        # default port (":443") while the proxy in front of us may add or drop
        # it; accept both spellings.
        candidates = [url]
        parts = urlsplit(url)
        default_port = {"https": 443, "http": 80}.get(parts.scheme)
        if parts.port is None and default_port and parts.hostname:
            netloc = f"{parts.netloc}:{default_port}"
            candidates.append(urlunsplit(parts._replace(netloc=netloc)))
        elif parts.port is not None and parts.port == default_port:
            netloc = parts.netloc.rsplit(":", 1)[0]
            candidates.append(urlunsplit(parts._replace(netloc=netloc)))
        return candidates

    def _map_status(
        self, table: dict[str, DeliveryStatus], twilio_status: str
    ) -> DeliveryStatus:
        # A status we do not know still proves Twilio has the message: "accepted"
        # lets an "unknown" message move on and changes nothing otherwise.
        return table.get(twilio_status, DeliveryStatus.ACCEPTED)

    # --- polling -----------------------------------------------------------------

    def poll_status(self, provider_message_id: str) -> DeliveryReport | None:
        """Fetch a message (SM/MM SID) or call (CA SID) and report its status.

        Returns None for a SID Twilio cannot have issued. A GET is safe to
        repeat, so every transport failure and malformed reply raises
        ProviderTemporaryError; HTTP errors map as for sending.
        """
        if not _SID_RE.fullmatch(provider_message_id):
            return None
        is_call = provider_message_id.startswith("CA")
        url = self._url(
            f"{'Calls' if is_call else 'Messages'}/{provider_message_id}.json"
        )
        response, body = self._get(url, what="poll Twilio")
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise ProviderTemporaryError(
                "Twilio status reply cannot be read", raw=response.text[:1000]
            )
        table = self.CALL_STATUSES if is_call else self.MESSAGE_STATUSES
        error_code = body.get("error_code")
        return DeliveryReport(
            provider_message_id=provider_message_id,
            status=self._map_status(table, body["status"]),
            error_code="" if error_code is None else str(error_code),
            error_message=body.get("error_message") or "",
            raw=_summary(body),
        )

    # --- looking a message up after an ambiguous send --------------------------

    can_find_sent = True

    #: How far before the recorded start of the call a resource may be dated
    #: (clock skew between this host and Twilio).
    FIND_SENT_SKEW: ClassVar[timedelta] = timedelta(minutes=2)

    def find_sent(self, message: OutgoingMessage, *, since: datetime) -> SendResult | None:
        """List the messages (or calls) to ``message.to`` and find the one this
        send created: made since the call started and, for SMS, with the same
        text. Twilio creates the resource before it answers the POST, so a
        listing made after the call ended shows it if Twilio took it.

        The newest page (up to 50) is searched: a number gets a few codes an
        hour at most under the sending limits.
        """
        resource = "Calls" if message.channel == "voice" else "Messages"
        url = self._url(f"{resource}.json")
        params = {"To": message.to, "PageSize": "50"}
        response, body = self._get(url, params=params, what=f"list Twilio {resource}")
        items = body.get(resource.lower()) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ProviderTemporaryError(
                f"Twilio {resource} list cannot be read", raw=response.text[:1000]
            )
        earliest = since - self.FIND_SENT_SKEW
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("sid"), str):
                continue
            created = _parse_date(item.get("date_created"))
            if created is None or created < earliest:
                continue
            if resource == "Messages" and item.get("body") != message.body:
                continue
            return SendResult(
                provider_message_id=item["sid"], status=DeliveryStatus.ACCEPTED,
                raw=_summary(item),
            )
        return None

    def _get(
        self, url: str, *, what: str, params: dict[str, str] | None = None
    ) -> tuple[requests.Response, Any]:
        """A GET (safe to repeat): every transport failure is temporary, HTTP
        errors map as for sending. Returns the response and its JSON (or None)."""
        try:
            response = self._http().get(
                url, params=params, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            if bad_url := self._bad_url_error(exc):
                raise bad_url from exc
            raise ProviderTemporaryError(f"cannot {what}: {exc}") from exc
        if response.status_code != 200:
            raise self._error_for_status(response)
        return response, _json_or_none(response)

    def _url(self, path: str) -> str:
        account = quote(self.account_sid, safe="")
        return f"{self.api_base_url}/{API_VERSION}/Accounts/{account}/{path}"


def _parse_date(value: Any) -> datetime | None:
    """Twilio's dates: RFC 2822 (``Mon, 30 Nov 2026 02:00:00 +0000``)."""
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:  # also UnicodeDecodeError
        return None


def _summary(body: Any) -> dict[str, Any]:
    """The parts of a Twilio resource worth keeping (no numbers, no body)."""
    if not isinstance(body, dict):
        return {}
    keys = ("sid", "status", "error_code", "error_message", "num_segments", "price")
    return {key: body[key] for key in keys if key in body}
