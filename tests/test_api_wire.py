"""The LeanCloud wire layer: tolerant bodies, JSON everywhere, CORS, schema."""

from __future__ import annotations

import pytest

from sms_service.models import Message

SEND = "/1.1/requestSmsCode"
PHONE = {"mobilePhoneNumber": "18612345678"}


@pytest.mark.django_db
class TestBodies:
    def test_object_body_is_accepted(self, lc, signature, outbox):
        response = lc.post(SEND, PHONE)
        assert response.status_code == 200
        assert response.json() == {}
        assert response["Content-Type"] == "application/json; charset=utf-8"
        assert len(outbox) == 1

    @pytest.mark.parametrize("raw", ["", "null", "  null  "])
    def test_empty_and_null_bodies_mean_no_fields(self, lc, signature, raw):
        # The JS SDK sends "null"; with no number the answer is 212, not a parse error.
        response = lc.post(SEND, raw=raw)
        assert response.status_code == 400
        assert response.json() == {
            "code": 212,
            "error": "The mobile phone number is missing, and must be specified.",
        }

    @pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42", "true", "{not json", "\xff"])
    def test_non_object_bodies_get_107(self, lc, signature, raw):
        response = lc.post(SEND, raw=raw)
        assert response.status_code == 400
        assert response.json()["code"] == 107
        assert Message.objects.count() == 0

    @pytest.mark.parametrize(
        "content_type",
        ["application/json", "application/json;charset=utf-8", "APPLICATION/JSON; Charset=UTF-8",
         "text/plain", ""],
    )
    def test_any_content_type(self, client, app, signature, lc, content_type, outbox):
        response = client.post(SEND, data='{"mobilePhoneNumber": "18612345678"}',
                                content_type=content_type, **lc.headers())
        assert response.status_code == 200, response.content

    def test_oversize_body_is_refused(self, lc, signature):
        response = lc.post(SEND, {**PHONE, "blob": "x" * 70_000})
        assert response.status_code == 400
        assert response.json()["code"] == 1
        assert Message.objects.count() == 0


@pytest.mark.django_db
class TestJsonEverywhere:
    def test_unknown_path_is_json_404(self, lc):
        for path in ("/1.1/nothing", "/1.1/requestSmsCode/", "/1.1", "/1.1/classes/Foo"):
            response = lc.post(path, {})
            assert response.status_code == 404, path
            assert response.json() == {"code": 404, "error": "Not found."}

    def test_wrong_method_is_json_405(self, lc):
        response = lc.get(SEND)
        assert response.status_code == 405
        assert response.json() == {"code": 405, "error": "Method not allowed."}

    def test_get_with_null_body_is_tolerated(self, lc):
        # JS SDK GETs carry a "null" body; the answer is about the method, not the body.
        response = lc.request("GET", SEND + "?", raw="null")
        assert response.status_code == 405

    def test_unexpected_errors_are_json_500(self, lc, signature, monkeypatch):
        from sms_service.services import sending

        def explode(**kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(sending.content, "resolve_content", explode)
        response = lc.post(SEND, PHONE)
        assert response.status_code == 500
        assert response.json() == {
            "code": 1, "error": "Internal server error. No information available."
        }

    def test_double_leading_slash_is_tolerated(self, lc, signature, outbox):
        # A server URL configured with a trailing slash yields "//1.1/...".
        response = lc.post("http://testserver//1.1/requestSmsCode", PHONE)
        assert response.status_code == 200
        assert len(outbox) == 1

    def test_csrf_is_not_required(self, app, signature, lc, outbox):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        response = strict.post(SEND, data=PHONE, content_type="application/json", **lc.headers())
        assert response.status_code == 200


@pytest.mark.django_db
def test_cors_preflight_allows_leancloud_headers(client):
    response = client.options(
        SEND,
        HTTP_ORIGIN="https://web.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-lc-id,x-lc-sign,x-lc-session,content-type",
    )
    assert response.status_code == 200
    allowed = response["Access-Control-Allow-Headers"].lower()
    for header in ("x-lc-id", "x-lc-sign", "x-lc-session", "x-lc-key"):
        assert header in allowed


@pytest.mark.django_db
def test_openapi_schema_documents_the_api(client):
    response = client.get("/sms_service/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    import json

    schema = json.loads(response.content)
    ops = {op["operationId"] for path in schema["paths"].values() for op in path.values()
           if isinstance(op, dict) and "operationId" in op}
    assert {"requestSmsCode", "verifySmsCode"} <= ops
    docs = client.get("/sms_service/docs")
    assert docs.status_code == 200
    assert b"redoc" in docs.content.lower()


@pytest.mark.django_db
def test_errors_outside_the_views_are_json_under_1_1(client, settings):
    # A failing middleware: Django calls handler500, which answers JSON for the API.
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_api_wire.ExplodingMiddleware"]
    client.raise_request_exception = False
    response = client.post("/1.1/requestSmsCode", data="{}", content_type="application/json")
    assert response.status_code == 500
    assert response.json() == {"code": 1, "error": "Internal server error. No information available."}
    page = client.get("/admin/login/")
    assert page.status_code == 500
    assert not page["Content-Type"].startswith("application/json")


class ExplodingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise RuntimeError("middleware failure")
