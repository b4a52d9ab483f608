"""Aliyun (Alibaba Cloud) SMS on the official SDK ``alibabacloud-dysmsapi20170525``.

SMS go through ``SendSms`` (``SignName``, ``TemplateCode``, ``TemplateParam``):
Aliyun sends only templates registered with it, so the outbox hands this
backend the template code and parameters mapped to the message's template
version (see the README, "Template-based providers"). Voice codes go through
Aliyun's voice API (``alibabacloud-dyvmsapi20170525``, ``SingleCallByTts``)
with a registered text-to-speech template reading the code.

Configuration (``SMS_SERVICE["BACKENDS"][alias]["OPTIONS"]``):

``ACCESS_KEY_ID``, ``ACCESS_KEY_SECRET``
    Required. A RAM user's key pair.
``SIGN_NAME``
    The signature registered with Aliyun, used when the message's own
    signature has no name (default: the message's signature name).
``ENDPOINT`` / ``VOICE_ENDPOINT``
    Default ``dysmsapi.aliyuncs.com`` / ``dyvmsapi.aliyuncs.com``; tests point
    them at a local fake server (with ``PROTOCOL`` ``"http"``).
``PROTOCOL``
    ``"https"`` (default) or ``"http"``.
``TIMEOUT``
    ``(connect, read)`` seconds, or one number for both. Default ``(3.05, 10)``.
``VOICE_SHOW_NUMBER``
    ``CalledShowNumber`` of voice calls (a number bought from Aliyun); voice
    is refused without it.
``RECEIPT_TOKEN``
    Secret expected as ``?token=`` in the receipt URL configured in Aliyun's
    console (HTTP batch push of ``SmsReport``). Aliyun does not sign these
    pushes, so the secret in the URL is what authenticates them; without it
    receipts are refused.

Outcomes: a reply with an Aliyun error code maps through :data:`ERROR_CODES`
(each code with its reason); transport failures are classified by whether
Aliyun may have the request (connect failure: temporary; read timeout or a
connection dropped after sending, an unreadable reply: unknown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from django.http import HttpRequest

from ..delivery import DeliveryStatus
from ..exceptions import (
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderRejectedError,
    ProviderTemporaryError,
    SmsServiceImproperlyInstalled,
)
from . import outcomes
from .base import BaseSmsBackend, DeliveryReport, OutgoingMessage, SendResult
from .outcomes import Outcome, rejected, temporary, unknown

try:
    from alibabacloud_dysmsapi20170525 import models as sms_models
    from alibabacloud_dysmsapi20170525.client import Client as SmsClient
    from alibabacloud_tea_openapi.models import Config
    from darabonba.exceptions import ResponseException
    from darabonba.runtime import RuntimeOptions
except ImportError as exc:  # pragma: no cover - exercised by the "noextras" tox env
    raise SmsServiceImproperlyInstalled("alibabacloud-dysmsapi20170525", extra="aliyun") from exc

try:
    from alibabacloud_dyvmsapi20170525 import models as voice_models
    from alibabacloud_dyvmsapi20170525.client import Client as VoiceClient
except ImportError:  # pragma: no cover - voice is optional
    voice_models = VoiceClient = None

#: Aliyun reports the day of a message in China Standard Time.
CHINA = ZoneInfo("Asia/Shanghai")

#: Aliyun error code -> outcome. Codes not listed: see :meth:`AliyunBackend._outcome`.
ERROR_CODES: dict[str, Outcome] = {
    # Throttling of the API itself: the request was refused before processing.
    "Throttling": temporary("API call rate limit reached; retry later"),
    "Throttling.User": temporary("API call rate limit of this account reached"),
    "Throttling.Api": temporary("API call rate limit reached"),
    "ServiceUnavailable": temporary("Aliyun is unavailable; nothing was sent"),
    "isp.SYSTEM_ERROR": temporary("Aliyun system error; Aliyun advises calling again"),
    # Aliyun answered that it failed internally: it may have queued the message.
    "InternalError": unknown("Aliyun internal error; the message may have been sent"),
    "isp.GATEWAY_ERROR": unknown("carrier gateway error; the message may have been sent"),
    # The account or its settings: every message fails until someone fixes them.
    "isp.RAM_PERMISSION_DENIED": rejected(
        "the RAM user may not call SendSms", provider_fault=True),
    "isv.OUT_OF_SERVICE": rejected("the account is suspended (overdue)", provider_fault=True),
    "isv.PRODUCT_UN_SUBSCRIPT": rejected(
        "the account has not subscribed to SMS", provider_fault=True),
    "isv.PRODUCT_UNSUBSCRIBE": rejected(
        "the account has not subscribed to SMS", provider_fault=True),
    "isv.ACCOUNT_NOT_EXISTS": rejected("the account does not exist", provider_fault=True),
    "isv.ACCOUNT_ABNORMAL": rejected("the account is abnormal", provider_fault=True),
    "isv.AMOUNT_NOT_ENOUGH": rejected("the account balance is too low", provider_fault=True),
    "isv.DAY_LIMIT_CONTROL": rejected(
        "the account's daily sending limit is reached", provider_fault=True),
    "isv.DENY_IP_RANGE": rejected(
        "this server's IP address is not allowed to call", provider_fault=True),
    "isv.SMS_SIGNATURE_ILLEGAL": rejected(
        "the signature is not registered or not approved", provider_fault=True),
    "isv.SMS_SIGN_ILLEGAL": rejected(
        "the signature is not registered or not approved", provider_fault=True),
    "isv.SIGN_NAME_ILLEGAL": rejected("the signature name is not valid", provider_fault=True),
    "isv.SMS_TEMPLATE_ILLEGAL": rejected(
        "the template code is not registered or not approved", provider_fault=True),
    "isv.TEMPLATE_MISSING_PARAMETERS": rejected(
        "the template mapping lacks a parameter the template needs", provider_fault=True),
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": rejected(
        "an international template cannot be sent to a mainland number", provider_fault=True),
    "isv.EXTEND_CODE_ERROR": rejected("the extension code is not valid", provider_fault=True),
    "InvalidAccessKeyId.NotFound": rejected(
        "ACCESS_KEY_ID is not known to Aliyun", provider_fault=True),
    "InvalidAccessKeyId.Inactive": rejected("ACCESS_KEY_ID is disabled", provider_fault=True),
    "SignatureDoesNotMatch": rejected(
        "ACCESS_KEY_SECRET does not match the key id", provider_fault=True),
    "Forbidden.RAM": rejected("the RAM user may not call this API", provider_fault=True),
    # The message itself: another provider would refuse it as well.
    "isv.MOBILE_NUMBER_ILLEGAL": rejected("the phone number is not valid"),
    "isv.MOBILE_COUNT_OVER_LIMIT": rejected("too many phone numbers in one request"),
    "isv.BUSINESS_LIMIT_CONTROL": rejected(
        "Aliyun's per-number frequency limit for this number is reached"),
    "isv.BLACK_KEY_CONTROL_LIMIT": rejected("the text contains a blocked keyword"),
    "isv.SMS_CONTENT_ILLEGAL": rejected("the text is not allowed"),
    "isv.PARAM_LENGTH_LIMIT": rejected("a template parameter is too long"),
    "isv.PARAM_NOT_SUPPORT_URL": rejected("a template parameter contains a URL"),
    "isv.INVALID_JSON_PARAM": rejected("the template parameters are not valid JSON"),
    "isv.TEMPLATE_PARAMS_ILLEGAL": rejected("a template parameter value is not allowed"),
    "isv.INVALID_PARAMETERS": rejected("a parameter is not valid"),
    "isv.BLACK_LIST": rejected("the number is on a blacklist"),
    "MissingPhoneNumbers": rejected("the phone number is missing"),
    # Voice (dyvmsapi) codes.
    "isv.TTS_TEMPLATE_ILLEGAL": rejected(
        "the voice template is not registered or not approved", provider_fault=True),
    "isv.DISPLAY_NUMBER_ILLEGAL": rejected(
        "VOICE_SHOW_NUMBER is not a number of this account", provider_fault=True),
    "isv.VOICE_FILE_ILLEGAL": rejected("the voice file is not valid", provider_fault=True),
}

#: QuerySendDetails ``SendStatus`` -> DeliveryReport status.
SEND_STATUSES: dict[int, str] = {1: "accepted", 2: "undelivered", 3: "delivered"}


@dataclass(frozen=True)
class AliyunRequest:
    """What :meth:`AliyunBackend.build_payload` hands to ``post_to_provider``."""

    #: "SendSms" or "SingleCallByTts".
    action: str
    request: Any


class AliyunBackend(BaseSmsBackend):
    """SMS (and voice codes, when the voice SDK is installed) through Aliyun."""

    provider_name = "aliyun"
    #: Voice needs the optional voice SDK (the aliyun extra installs it).
    supported_channels = ("sms", "voice") if VoiceClient else ("sms",)
    uses_templates = True
    DEFAULT_ENDPOINT: ClassVar[str] = "dysmsapi.aliyuncs.com"
    DEFAULT_VOICE_ENDPOINT: ClassVar[str] = "dyvmsapi.aliyuncs.com"
    DEFAULT_TIMEOUT: ClassVar[tuple[float, float]] = (3.05, 10.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.access_key_id: str = self.option("ACCESS_KEY_ID", required=True)
        self.access_key_secret: str = self.option("ACCESS_KEY_SECRET", required=True)
        self.sign_name: str = self.option("SIGN_NAME", "")
        self.protocol: str = self.option("PROTOCOL", "https")
        self.timeout = self.timeout_option(self.DEFAULT_TIMEOUT)
        self.voice_show_number: str = self.option("VOICE_SHOW_NUMBER", "")
        self.receipt_token: str = self.option("RECEIPT_TOKEN", "")
        self.client = SmsClient(self._config(self.option("ENDPOINT", self.DEFAULT_ENDPOINT)))
        self._voice_endpoint = self.option("VOICE_ENDPOINT", self.DEFAULT_VOICE_ENDPOINT)
        self._voice_client: Any = None

    def _config(self, endpoint: str) -> Config:
        connect, read = self.timeout
        return Config(
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            endpoint=endpoint,
            protocol=self.protocol,
            connect_timeout=int(connect * 1000),
            read_timeout=int(read * 1000),
            # No retry_options: the SDK must never repeat a SendSms on its own.
        )

    @property
    def voice_client(self) -> Any:
        if self._voice_client is None:
            self._voice_client = VoiceClient(self._config(self._voice_endpoint))
        return self._voice_client

    # --- sending -----------------------------------------------------------------

    def build_payload(self, message: OutgoingMessage) -> AliyunRequest:
        if not message.template_id:
            raise ProviderRejectedError(
                f'backend "{self.alias}" sends Aliyun templates only, and the message '
                "has no Aliyun template code (map the template in the admin)",
                message_id=message.message_id,
                provider_fault=True,
            )
        params = json.dumps(dict(message.template_params), ensure_ascii=False)
        if message.channel == "voice":
            if not self.voice_show_number:
                self.option("VOICE_SHOW_NUMBER", required=True)
            return AliyunRequest(
                "SingleCallByTts",
                voice_models.SingleCallByTtsRequest(
                    called_number=aliyun_number(message.to),
                    called_show_number=self.voice_show_number,
                    tts_code=message.template_id,
                    tts_param=params,
                    play_times=2,
                    out_id=str(message.message_id),
                ),
            )
        sign_name = message.sign_name or self.sign_name
        if not sign_name:
            self.option("SIGN_NAME", required=True)
        return AliyunRequest(
            "SendSms",
            sms_models.SendSmsRequest(
                phone_numbers=aliyun_number(message.to),
                sign_name=sign_name,
                template_code=message.template_id,
                template_param=params,
                out_id=str(message.message_id),
            ),
        )

    def post_to_provider(self, message: OutgoingMessage, payload: AliyunRequest) -> Any:
        context = {"message_id": message.message_id}
        try:
            if payload.action == "SingleCallByTts":
                return self.voice_client.single_call_by_tts_with_options(
                    payload.request, RuntimeOptions()
                ).body
            return self.client.send_sms_with_options(payload.request, RuntimeOptions()).body
        except ResponseException as exc:
            raise self._http_error(exc, **context) from exc
        except Exception as exc:
            # The SDK wraps transport failures (and unreadable replies).
            raise self._wrapped_error(exc, **context) from exc

    def parse_response(
        self, message: OutgoingMessage, payload: AliyunRequest, response: Any
    ) -> SendResult:
        code = getattr(response, "code", None)
        provider_id = getattr(response, "biz_id", None) or getattr(response, "call_id", None)
        raw = _body_summary(response)
        if code == "OK" and provider_id:
            return SendResult(provider_message_id=str(provider_id), status=DeliveryStatus.ACCEPTED,
                              raw=raw)
        if code == "OK" or not code:
            # "OK" without an id, or no code: Aliyun may well send it.
            raise ProviderOutcomeUnknownError(
                "Aliyun answered without a code or message id",
                raw=raw, message_id=message.message_id,
            )
        raise outcomes.error_for(
            self._outcome(code), provider="Aliyun", code=code,
            detail=getattr(response, "message", "") or "", raw=raw,
            message_id=message.message_id,
        )

    def _outcome(self, code: str) -> Outcome:
        # An error code we do not know still means Aliyun answered with a
        # refusal: nothing was sent. "isp." codes are Aliyun's own side.
        if code.startswith("isp."):
            return outcomes.lookup(ERROR_CODES, code, temporary("Aliyun platform error"))
        return outcomes.lookup(ERROR_CODES, code, rejected("refused by Aliyun"))

    def _http_error(self, exc: Any, **context: Any) -> ProviderError:
        """An HTTP 4xx/5xx with an Aliyun error body."""
        status = getattr(exc, "status_code", None) or 0
        code = str(getattr(exc, "code", "") or "")
        if status in (429, 502, 503):
            # The gateway refused the call before Aliyun processed it.
            outcome = temporary(f"HTTP {status}: nothing was processed")
        elif code and code != "None" and code.split(".")[0] in {
            name.split(".")[0] for name in ERROR_CODES
        }:
            outcome = self._outcome(code)
        elif status >= 500:
            outcome = unknown(f"HTTP {status}: the message may have been sent")
        else:
            outcome = rejected(f"HTTP {status}", provider_fault=True)
        return outcomes.error_for(
            outcome, provider="Aliyun", code=code or str(status),
            detail=str(getattr(exc, "message", "") or ""),
            raw=getattr(exc, "data", None), http_status=status, **context,
        )

    def _wrapped_error(self, exc: Exception, **context: Any) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        found = outcomes.transport_error(
            exc, provider="Aliyun", read_timeout=self.timeout[1], **context
        )
        if found is not None:
            return found
        # A reply that could not be read (not JSON): the request was sent.
        return ProviderOutcomeUnknownError(
            f"Aliyun's reply could not be read: {outcomes.root_cause(exc)!r}", **context
        )

    # --- receipts ----------------------------------------------------------------

    def parse_delivery_reports(self, request: HttpRequest) -> list[DeliveryReport]:
        """``SmsReport`` HTTP batch push: a JSON array of receipts."""
        outcomes.check_receipt_token(request, self.receipt_token)
        items = json.loads(request.body)
        if not isinstance(items, list):
            raise ValueError("an SmsReport push is a JSON array")
        reports = []
        for item in items:
            if not isinstance(item, dict) or not item.get("biz_id"):
                continue
            delivered = item.get("success") is True
            reports.append(
                DeliveryReport(
                    provider_message_id=str(item["biz_id"]),
                    status=DeliveryStatus.DELIVERED if delivered else DeliveryStatus.UNDELIVERED,
                    error_code="" if delivered else str(item.get("err_code") or ""),
                    error_message="" if delivered else str(item.get("err_msg") or ""),
                    raw={key: item.get(key) for key in _RECEIPT_FIELDS if key in item},
                )
            )
        return reports

    def webhook_reply(self, summary: dict[str, Any]) -> dict[str, Any]:
        # Aliyun pushes again unless the answer says code 0.
        return {"code": 0, "msg": "received", **summary}

    # --- polling -----------------------------------------------------------------

    def poll_message_status(
        self, provider_message_id: str, *, to: str, sent_at: datetime | None
    ) -> DeliveryReport | None:
        """``QuerySendDetails`` by number, day and BizId. None without both."""
        if not (to and sent_at and provider_message_id):
            return None
        request = sms_models.QuerySendDetailsRequest(
            phone_number=aliyun_number(to),
            biz_id=provider_message_id,
            send_date=sent_at.astimezone(CHINA).strftime("%Y%m%d"),
            page_size=10,
            current_page=1,
        )
        try:
            body = self.client.query_send_details_with_options(request, RuntimeOptions()).body
        except ResponseException as exc:
            raise self._http_error(exc) from exc
        except Exception as exc:
            # A query is safe to repeat: every failure is temporary.
            raise ProviderTemporaryError(f"cannot poll Aliyun: {exc}") from exc
        if getattr(body, "code", None) != "OK":
            raise ProviderTemporaryError(
                f"Aliyun status query answered {getattr(body, 'code', None)!r}",
                raw=_body_summary(body),
            )
        details = getattr(getattr(body, "sms_send_detail_dtos", None), "sms_send_detail_dto", None)
        if not details:
            return None
        detail = details[0]
        status = SEND_STATUSES.get(detail.send_status, "accepted")
        return DeliveryReport(
            provider_message_id=provider_message_id,
            status=DeliveryStatus(status),
            error_code="" if status in ("accepted", "delivered") else str(detail.err_code or ""),
            raw={"SendStatus": detail.send_status, "ErrCode": detail.err_code,
                 "ReceiveDate": detail.receive_date},
        )


#: Receipt fields kept in the event log (the phone number stays out).
_RECEIPT_FIELDS = ("biz_id", "out_id", "success", "err_code", "err_msg", "report_time", "sms_size")


def aliyun_number(e164: str) -> str:
    """Aliyun's spelling: mainland numbers without +86, others with the
    country code and no plus."""
    digits = e164.lstrip("+")
    return digits[2:] if e164.startswith("+86") else digits


def _body_summary(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    try:
        data = body.to_map()
    except Exception:  # noqa: BLE001 - a summary must never fail the send
        return {}
    keys = ("Code", "Message", "BizId", "CallId", "RequestId")
    return {key: data[key] for key in keys if key in data}
