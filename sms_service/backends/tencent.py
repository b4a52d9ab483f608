"""Tencent Cloud SMS on the official SDK ``tencentcloud-sdk-python-sms`` (API 2021-01-11).

``SendSms`` with ``SmsSdkAppId``, ``SignName``, ``TemplateId`` and
``TemplateParamSet``: Tencent Cloud sends only templates registered with it, so
the outbox hands this backend the template id and the parameter values, in the
template's order, mapped to the message's template version (README,
"Template-based providers"). SMS only: Tencent Cloud's voice codes are another
product (VMS) with its own SDK, not supported here.

Configuration (``SMS_SERVICE["BACKENDS"][alias]["OPTIONS"]``):

``SECRET_ID``, ``SECRET_KEY``
    Required. An API key pair (CAM).
``SDK_APP_ID``
    Required. The ``SmsSdkAppId`` of the SMS application.
``SIGN_NAME``
    The signature registered with Tencent Cloud, used when the message's own
    signature has no name.
``REGION``
    Default ``ap-guangzhou``.
``ENDPOINT`` / ``PROTOCOL``
    Default ``sms.tencentcloudapi.com`` / ``"https"``; tests point them at a
    local fake server.
``TIMEOUT``
    ``(connect, read)`` seconds, or one number for both. Default ``(3.05, 10)``.
``RECEIPT_TOKEN``
    Secret expected as ``?token=`` in the status callback URL configured in
    Tencent Cloud's console. Tencent Cloud does not sign its callbacks, so the
    secret in the URL is what authenticates them; without it receipts are
    refused.

Status: callbacks (``POST`` of a JSON array), ``PullSmsSendStatusByPhoneNumber``
for one message (:meth:`TencentBackend.poll_status`) and ``PullSmsSendStatus``
for the account's pending receipts (:meth:`TencentBackend.pull_delivery_reports`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, ClassVar

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
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models, sms_client
except ImportError as exc:  # pragma: no cover - exercised by the "noextras" tox env
    raise SmsServiceImproperlyInstalled("tencentcloud-sdk-python-sms", extra="tencent") from exc

#: Tencent Cloud error code -> outcome (exact code, else its dotted prefix).
ERROR_CODES: dict[str, Outcome] = {
    "RequestLimitExceeded": temporary("API call rate limit reached; retry later"),
    "ResourceUnavailable": temporary("the service is unavailable; nothing was sent"),
    # "Internal error": Tencent Cloud may have queued the message.
    "InternalError": unknown("Tencent Cloud internal error; the message may have been sent"),
    "InternalError.RequestTimeException": rejected(
        "this server's clock is off by more than five minutes", provider_fault=True),
    "InternalError.SigFieldMissing": rejected(
        "the request signature is incomplete", provider_fault=True),
    "InternalError.SigVerificationFail": rejected(
        "the request signature does not verify", provider_fault=True),
    "AuthFailure": rejected("SECRET_ID / SECRET_KEY are not accepted", provider_fault=True),
    "UnauthorizedOperation": rejected(
        "the key may not use this SMS application", provider_fault=True),
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": rejected(
        "SDK_APP_ID does not belong to this account", provider_fault=True),
    "UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny": rejected(
        "individual accounts may not send marketing SMS", provider_fault=True),
    "FailedOperation.SignatureIncorrectOrUnapproved": rejected(
        "the signature is not registered or not approved", provider_fault=True),
    "FailedOperation.TemplateIncorrectOrUnapproved": rejected(
        "the template id is not registered or not approved", provider_fault=True),
    "FailedOperation.InsufficientBalanceInSmsPackage": rejected(
        "the SMS package is used up", provider_fault=True),
    "FailedOperation.MarketingSendTimeConstraint": rejected(
        "marketing SMS may only be sent 8:00-22:00"),
    "FailedOperation.PhoneNumberInBlacklist": rejected("the number is on a blacklist"),
    "FailedOperation.PhoneNumberParseFail": rejected("the phone number cannot be parsed"),
    "FailedOperation.ContainSensitiveWord": rejected("the text contains a blocked word"),
    "FailedOperation.JsonParseFail": rejected("the request is not valid JSON"),
    "InvalidParameterValue.IncorrectPhoneNumber": rejected("the phone number is not valid"),
    "InvalidParameterValue.TemplateParameterFormatError": rejected(
        "a template parameter has the wrong format (verification codes: digits only)"),
    "InvalidParameterValue.TemplateParameterLengthLimit": rejected(
        "a template parameter is too long"),
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": rejected(
        "a template parameter contains a URL"),
    "InvalidParameterValue.ContentLengthLimit": rejected("the text is too long"),
    "InvalidParameterValue.SdkAppIdNotExist": rejected(
        "SDK_APP_ID does not exist", provider_fault=True),
    "InvalidParameter": rejected("a parameter is not valid", provider_fault=True),
    "MissingParameter": rejected("a parameter is missing", provider_fault=True),
    # Per-number frequency limits: this number, whatever the provider.
    "LimitExceeded.PhoneNumberThirtySecondLimit": rejected(
        "Tencent Cloud's 30-second limit for this number is reached"),
    "LimitExceeded.PhoneNumberOneHourLimit": rejected(
        "Tencent Cloud's hourly limit for this number is reached"),
    "LimitExceeded.PhoneNumberDailyLimit": rejected(
        "Tencent Cloud's daily limit for this number is reached"),
    "LimitExceeded.PhoneNumberSameContentDailyLimit": rejected(
        "Tencent Cloud's daily limit of one text to this number is reached"),
    "LimitExceeded.PhoneNumberCountLimit": rejected("too many numbers in one request"),
    "LimitExceeded.DailyLimit": rejected(
        "the account's daily sending limit is reached", provider_fault=True),
    "LimitExceeded.AppDailyLimit": rejected(
        "the application's daily sending limit is reached", provider_fault=True),
    "LimitExceeded.AppGlobalDailyLimit": rejected(
        "the application's daily international limit is reached", provider_fault=True),
    "LimitExceeded.AppMainlandChinaDailyLimit": rejected(
        "the application's daily mainland limit is reached", provider_fault=True),
    "LimitExceeded.AppCountryOrRegionDailyLimit": rejected(
        "the application's daily limit for this country is reached", provider_fault=True),
    "LimitExceeded.AppCountryOrRegionInBlacklist": rejected(
        "the application may not send to this country", provider_fault=True),
    "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone": rejected(
        "a mainland template cannot be sent to a number abroad", provider_fault=True),
    "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone": rejected(
        "an international template cannot be sent to a mainland number", provider_fault=True),
    "UnsupportedOperation.UnsupportedRegion": rejected(
        "Tencent Cloud does not send to this region", provider_fault=True),
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber": rejected(
        "mainland and international numbers in one request"),
}

#: Codes the SDK gives a reply it could not parse.
_UNREADABLE = frozenset({"JSONDecodeError", "KeyError", "TypeError", "ValueError", "AttributeError"})

#: Callback / pull ``report_status`` -> DeliveryReport status.
REPORT_STATUSES = {"SUCCESS": "delivered", "FAIL": "undelivered"}


class _SmsClient(sms_client.SmsClient):
    """The SDK's client, keeping the HTTP status of a non-200 reply (the SDK's
    own check drops it, and 502/503 must be told from 500)."""

    def _check_status(self, resp_inter: Any) -> None:
        if resp_inter.status_code != 200:
            error = TencentCloudSDKException(
                "ServerNetworkError", resp_inter.content[:500].decode("utf-8", "replace")
            )
            error.http_status = resp_inter.status_code
            raise error


class TencentBackend(BaseSmsBackend):
    """SMS through Tencent Cloud."""

    provider_name = "tencent"
    supported_channels = ("sms",)
    uses_templates = True
    DEFAULT_ENDPOINT: ClassVar[str] = "sms.tencentcloudapi.com"
    DEFAULT_TIMEOUT: ClassVar[tuple[float, float]] = (3.05, 10.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        secret_id: str = self.option("SECRET_ID", required=True)
        secret_key: str = self.option("SECRET_KEY", required=True)
        self.sdk_app_id: str = str(self.option("SDK_APP_ID", required=True))
        self.sign_name: str = self.option("SIGN_NAME", "")
        self.receipt_token: str = self.option("RECEIPT_TOKEN", "")
        self.timeout = self.timeout_option(self.DEFAULT_TIMEOUT)
        http = HttpProfile(
            protocol=self.option("PROTOCOL", "https"),
            endpoint=self.option("ENDPOINT", self.DEFAULT_ENDPOINT),
            reqTimeout=self.timeout,  # handed to requests as (connect, read)
        )
        self.client = _SmsClient(
            credential.Credential(secret_id, secret_key),
            self.option("REGION", "ap-guangzhou"),
            ClientProfile(httpProfile=http),
        )

    # --- sending -----------------------------------------------------------------

    def build_payload(self, message: OutgoingMessage) -> Any:
        if not message.template_id:
            raise ProviderRejectedError(
                f'backend "{self.alias}" sends Tencent Cloud templates only, and the '
                "message has no Tencent Cloud template id (map the template in the admin)",
                message_id=message.message_id,
                provider_fault=True,
            )
        sign_name = message.sign_name or self.sign_name
        if not sign_name:
            self.option("SIGN_NAME", required=True)
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [message.to]
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = sign_name
        request.TemplateId = message.template_id
        request.TemplateParamSet = [value for _, value in message.template_params]
        # Comes back in callbacks and pulls: ties a receipt to the message.
        request.SessionContext = str(message.message_id)
        return request

    def post_to_provider(self, message: OutgoingMessage, payload: Any) -> Any:
        try:
            return self.client.SendSms(payload)
        except TencentCloudSDKException as exc:
            raise self._sdk_error(exc, message_id=message.message_id) from exc

    def parse_response(self, message: OutgoingMessage, payload: Any, response: Any) -> SendResult:
        statuses = getattr(response, "SendStatusSet", None) or []
        status = statuses[0] if statuses else None
        code = getattr(status, "Code", None)
        raw = _status_summary(status, getattr(response, "RequestId", None))
        if code == "Ok" and status is not None and status.SerialNo:
            return SendResult(provider_message_id=status.SerialNo, status=DeliveryStatus.ACCEPTED,
                              raw=raw)
        if not code or code == "Ok":
            raise ProviderOutcomeUnknownError(
                "Tencent Cloud answered without a status or serial number",
                raw=raw, message_id=message.message_id,
            )
        raise outcomes.error_for(
            self._outcome(code), provider="Tencent Cloud", code=code,
            detail=getattr(status, "Message", None) or "", raw=raw,
            message_id=message.message_id,
        )

    def _outcome(self, code: str) -> Outcome:
        # Any other code is a refusal Tencent Cloud answered: nothing was sent.
        return outcomes.lookup(ERROR_CODES, code, rejected("refused by Tencent Cloud"))

    def _sdk_error(self, exc: TencentCloudSDKException, **context: Any) -> ProviderError:
        code = str(exc.code or "")
        if code == "ClientNetworkError":
            found = outcomes.transport_error(
                exc, provider="Tencent Cloud", read_timeout=self.timeout[1], **context
            )
            return found or ProviderOutcomeUnknownError(
                f"Tencent Cloud network error: {exc.message}", **context
            )
        if code == "ServerNetworkError":
            status = getattr(exc, "http_status", 0)
            if status in (429, 502, 503):
                outcome = temporary(f"HTTP {status}: nothing was processed")
            else:
                outcome = unknown(f"HTTP {status}: the message may have been sent")
            return outcomes.error_for(
                outcome, provider="Tencent Cloud", code=str(status), detail=exc.message or "",
                http_status=status, **context,
            )
        if code in _UNREADABLE:
            # The SDK could not read the reply (it names the Python error): the
            # request was sent.
            return ProviderOutcomeUnknownError(
                f"Tencent Cloud's reply could not be read: {exc.message}", **context
            )
        return outcomes.error_for(
            self._outcome(code), provider="Tencent Cloud", code=code,
            detail=exc.message or "", raw={"RequestId": exc.requestId}, **context,
        )

    # --- receipts ----------------------------------------------------------------

    def parse_delivery_reports(self, request: HttpRequest) -> list[DeliveryReport]:
        """A status callback: a JSON array of reports."""
        outcomes.check_receipt_token(request, self.receipt_token)
        items = json.loads(request.body)
        if not isinstance(items, list):
            raise ValueError("a status callback is a JSON array")
        return [
            _report(
                serial=item.get("sid"),
                status=item.get("report_status"),
                code=item.get("errmsg"),
                description=item.get("description"),
                raw={key: item.get(key) for key in _CALLBACK_FIELDS if key in item},
            )
            for item in items
            if isinstance(item, dict) and item.get("sid")
        ]

    def webhook_reply(self, summary: dict[str, Any]) -> dict[str, Any]:
        # Tencent Cloud calls back again unless the answer says result 0.
        return {"result": 0, "errmsg": "OK", **summary}

    def poll_message_status(
        self, provider_message_id: str, *, to: str, sent_at: datetime | None
    ) -> DeliveryReport | None:
        """``PullSmsSendStatusByPhoneNumber`` around the sending time; finds the
        message by serial number. None when it is not (yet) reported."""
        if not (to and sent_at and provider_message_id):
            return None
        request = models.PullSmsSendStatusByPhoneNumberRequest()
        request.PhoneNumber = to
        request.SmsSdkAppId = self.sdk_app_id
        request.BeginTime = int((sent_at - timedelta(minutes=5)).timestamp())
        request.EndTime = int((sent_at + timedelta(days=1)).timestamp())
        request.Offset = 0
        request.Limit = 100
        items = self._pull(self.client.PullSmsSendStatusByPhoneNumber, request)
        for item in items:
            if item.SerialNo == provider_message_id:
                return _pulled(item)
        return None

    def pull_delivery_reports(self, *, limit: int = 100) -> list[DeliveryReport]:
        """``PullSmsSendStatus``: the account's receipts not pulled before
        (Tencent Cloud hands each one out once)."""
        request = models.PullSmsSendStatusRequest()
        request.SmsSdkAppId = self.sdk_app_id
        request.Limit = limit
        return [_pulled(item) for item in self._pull(self.client.PullSmsSendStatus, request)]

    def _pull(self, call: Any, request: Any) -> list[Any]:
        try:
            response = call(request)
        except TencentCloudSDKException as exc:
            # A pull is safe to repeat: every failure is temporary.
            raise ProviderTemporaryError(f"cannot pull Tencent Cloud statuses: {exc}") from exc
        return list(response.PullSmsSendStatusSet or [])


_CALLBACK_FIELDS = ("sid", "report_status", "errmsg", "description", "user_receive_time")


def _report(*, serial: Any, status: Any, code: Any, description: Any, raw: Any) -> DeliveryReport:
    mapped = REPORT_STATUSES.get(str(status or ""), "accepted")
    failed = mapped == "undelivered"
    return DeliveryReport(
        provider_message_id=str(serial),
        status=DeliveryStatus(mapped),
        error_code=str(code or "") if failed else "",
        error_message=str(description or "") if failed else "",
        raw=raw,
    )


def _pulled(item: Any) -> DeliveryReport:
    return _report(
        serial=item.SerialNo, status=item.ReportStatus, code=item.Description,
        description=item.Description,
        raw={"SerialNo": item.SerialNo, "ReportStatus": item.ReportStatus,
             "Description": item.Description, "UserReceiveTime": item.UserReceiveTime},
    )


def _status_summary(status: Any, request_id: Any) -> dict[str, Any]:
    if status is None:
        return {"RequestId": request_id}
    return {"SerialNo": status.SerialNo, "Code": status.Code, "Message": status.Message,
            "Fee": status.Fee, "IsoCode": status.IsoCode, "RequestId": request_id}
