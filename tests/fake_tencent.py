"""A small fake of Tencent Cloud's SMS API (2021-01-11) on 127.0.0.1; the
official SDK talks to it over real HTTP (``PROTOCOL`` "http", the fake as
``ENDPOINT``).

It answers ``SendSms``, ``PullSmsSendStatus`` and
``PullSmsSendStatusByPhoneNumber`` (the action in ``X-TC-Action``, a JSON body,
replies wrapped in ``{"Response": ...}``). Faults: see :mod:`tests.fake_provider`;
``error`` answers with ``Response.Error.Code``, ``send_error`` (per number)
with ``SendStatusSet[0].Code``, ``throttle`` with ``RequestLimitExceeded``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from .fake_provider import Call, FakeProvider, Reply

SECRET_ID = "AKID-fake-secret-id"
SECRET_KEY = "fake-secret-key"
SDK_APP_ID = "1400000001"


class FakeTencent(FakeProvider):
    name = "tencent"

    def __init__(self) -> None:
        super().__init__()
        #: Receipts waiting to be pulled, as Tencent Cloud queues them.
        self.pending: list[dict[str, Any]] = []

    def report(self, serial: str, status: str = "SUCCESS", description: str = "DELIVRD") -> None:
        """Tencent Cloud learns the outcome of ``serial`` from the carrier."""
        with self.lock:
            item = self.sent[serial]
            item.update(ReportStatus=status, Description=description)
            self.pending.append(item)

    def handle(self, handler, body: bytes) -> Reply | None:
        action = handler.headers.get("X-TC-Action", "")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        call = Call(action=action, params=params, headers=dict(handler.headers.items()), body=body)
        fault = self.record(call, consumes_fault=action == "SendSms")
        if f"Credential={SECRET_ID}/" not in handler.headers.get("Authorization", ""):
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        handled, reply = self.transport_fault(handler, fault)
        if handled:
            return reply
        if fault is not None and fault.kind == "status":
            return Reply(fault.options.get("status", 502), b"<html>Bad Gateway</html>", "text/html")
        if fault is not None and fault.kind == "throttle":
            return self._error("RequestLimitExceeded", "The number of requests exceeds the limit.")
        if fault is not None and fault.kind == "error":
            return self._error(fault.options["code"], fault.options.get("message", "refused"))
        if params.get("SmsSdkAppId") != SDK_APP_ID:
            return self._error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SdkAppId verify fail")
        if action == "SendSms":
            return self._send(params, fault)
        if action == "PullSmsSendStatus":
            with self.lock:
                items, self.pending = self.pending[: params["Limit"]], self.pending[params["Limit"]:]
            return self._ok({"PullSmsSendStatusSet": [self._pulled(item) for item in items]})
        if action == "PullSmsSendStatusByPhoneNumber":
            found = [self._pulled(item) for item in self.sent.values()
                     if item["PhoneNumber"] == params["PhoneNumber"] and "ReportStatus" in item]
            return self._ok({"PullSmsSendStatusSet": found})
        return self._error("InvalidAction", f"unknown action {action}")

    def _send(self, params: dict[str, Any], fault) -> Reply:
        (number,) = params["PhoneNumberSet"]
        if fault is not None and fault.kind == "send_error":
            return self._ok({"SendStatusSet": [{"SerialNo": "", "PhoneNumber": number, "Fee": 0,
                                                "SessionContext": "", "IsoCode": "CN",
                                                "Code": fault.options["code"],
                                                "Message": "refused"}]})
        if not number.startswith("+") or not number[1:].isdigit():
            code, serial = "InvalidParameterValue.IncorrectPhoneNumber", ""
        else:
            code, serial = "Ok", f"2028:{secrets.randbelow(10**20):020d}"
            with self.lock:
                self.sent[serial] = {**params, "PhoneNumber": number, "SerialNo": serial,
                                     "SentAt": int(time.time())}
        self.hold(fault)
        return self._ok({"SendStatusSet": [{
            "SerialNo": serial, "PhoneNumber": number, "Fee": 1 if serial else 0,
            "SessionContext": params.get("SessionContext", ""), "IsoCode": "CN",
            "Code": code, "Message": "send success" if serial else "incorrect number",
        }]})

    @staticmethod
    def _pulled(item: dict[str, Any]) -> dict[str, Any]:
        return {"UserReceiveTime": "2026-01-01 00:00:00", "CountryCode": "86",
                "SubscriberNumber": item["PhoneNumber"][3:], "PhoneNumber": item["PhoneNumber"],
                "SerialNo": item["SerialNo"], "ReportStatus": item["ReportStatus"],
                "Description": item["Description"],
                "SessionContext": item.get("SessionContext", "")}

    def _ok(self, data: dict[str, Any]) -> Reply:
        return self.json_reply(200, {"Response": {**data, "RequestId": secrets.token_hex(8)}})

    def _error(self, code: str, message: str) -> Reply:
        return self.json_reply(200, {"Response": {"Error": {"Code": code, "Message": message},
                                                  "RequestId": secrets.token_hex(8)}})
