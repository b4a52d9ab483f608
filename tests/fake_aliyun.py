"""A small fake of Aliyun's SMS and voice APIs on 127.0.0.1 (the official SDK
talks to it over real HTTP, with ``PROTOCOL`` "http" and the fake as endpoint).

It answers ``SendSms``, ``QuerySendDetails`` and ``SingleCallByTts`` the way
Aliyun's RPC API does (the action in the ``x-acs-action`` header, parameters in
the query string, JSON replies with ``Code``). Faults: see
:mod:`tests.fake_provider`; ``error`` answers HTTP 200 with the given ``Code``,
``throttle`` answers like Aliyun's API flow control.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .fake_provider import Call, FakeProvider, Reply

ACCESS_KEY_ID = "LTAI-fake-key-id"
ACCESS_KEY_SECRET = "fake-key-secret"

_CREDENTIAL = re.compile(r"Credential=([^,]+)")


class FakeAliyun(FakeProvider):
    name = "aliyun"

    def set_status(self, biz_id: str, send_status: int, err_code: str = "DELIVERED") -> None:
        """What a later QuerySendDetails reports (1 waiting, 2 failed, 3 delivered)."""
        with self.lock:
            self.sent[biz_id].update(SendStatus=send_status, ErrCode=err_code)

    def handle(self, handler, body: bytes) -> Reply | None:
        action = handler.headers.get("x-acs-action", "")
        query = parse_qs(urlsplit(handler.path).query, keep_blank_values=True)
        params = {key: values[0] for key, values in query.items()}
        call = Call(action=action, params=params, headers=dict(handler.headers.items()))
        fault = self.record(call, consumes_fault=action != "QuerySendDetails")
        credential = _CREDENTIAL.search(handler.headers.get("Authorization", ""))
        if not credential or credential.group(1) != ACCESS_KEY_ID:
            return self._error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        handled, reply = self.transport_fault(handler, fault)
        if handled:
            return reply
        if fault is not None and fault.kind == "status":
            return self._error(fault.options.get("status", 500),
                               fault.options.get("code", "InternalError"),
                               "The request processing has failed due to some unknown error.")
        if fault is not None and fault.kind == "throttle":
            return self._error(400, "Throttling.User", "Request was denied due to user flow control.")
        if fault is not None and fault.kind == "error":
            return self.json_reply(200, {"Code": fault.options["code"],
                                         "Message": fault.options.get("message", "refused"),
                                         "RequestId": secrets.token_hex(8)})
        if action == "SendSms":
            return self._send_sms(params, fault)
        if action == "SingleCallByTts":
            return self._call(params, fault)
        if action == "QuerySendDetails":
            return self._query(params)
        return self._error(404, "InvalidAction.NotFound", f"unknown action {action}")

    def _send_sms(self, params: dict[str, str], fault) -> Reply:
        number = params.get("PhoneNumbers", "")
        if not number.isdigit() or len(number) < 7:
            return self.json_reply(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL",
                                         "Message": "invalid mobile number"})
        if not params.get("TemplateCode", "").startswith("SMS_"):
            return self.json_reply(200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL",
                                         "Message": "template not found"})
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        with self.lock:
            self.sent[biz_id] = {**params, "SendStatus": 1, "ErrCode": "",
                                 "SendDate": datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
        self.hold(fault)
        return self.json_reply(200, {"Code": "OK", "Message": "OK", "BizId": biz_id,
                                     "RequestId": secrets.token_hex(8)})

    def _call(self, params: dict[str, str], fault) -> Reply:
        call_id = f"{secrets.randbelow(10**12):012d}^{secrets.randbelow(10**10):010d}"
        with self.lock:
            self.sent[call_id] = dict(params)
        self.hold(fault)
        return self.json_reply(200, {"Code": "OK", "Message": "OK", "CallId": call_id,
                                     "RequestId": secrets.token_hex(8)})

    def _query(self, params: dict[str, str]) -> Reply:
        item = self.sent.get(params.get("BizId", ""))
        found = []
        if item is not None and item.get("PhoneNumbers") == params.get("PhoneNumber"):
            found.append({"PhoneNum": item["PhoneNumbers"], "SendStatus": item["SendStatus"],
                          "ErrCode": item["ErrCode"], "TemplateCode": item["TemplateCode"],
                          "SendDate": item["SendDate"], "ReceiveDate": item["SendDate"],
                          "OutId": item.get("OutId", ""), "Content": "..."})
        return self.json_reply(200, {"Code": "OK", "Message": "OK", "TotalCount": len(found),
                                     "SmsSendDetailDTOs": {"SmsSendDetailDTO": found},
                                     "RequestId": secrets.token_hex(8)})

    def _error(self, status: int, code: str, message: str) -> Reply:
        body: dict[str, Any] = {"Code": code, "Message": message,
                                "RequestId": secrets.token_hex(8), "HostId": "127.0.0.1"}
        return self.json_reply(status, body)
