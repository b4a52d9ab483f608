"""The API documentation: request and success bodies, security schemes, error
codes, the package version, and a way there from the admin."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

import sms_service
from sms_service.exceptions import ErrorCode


@pytest.fixture
def schema(client):
    response = client.get("/sms_service/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_every_post_documents_a_json_request_body(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method == "post":
                assert "application/json" in operation["requestBody"]["content"], path
    body = schema["paths"]["/1.1/requestSmsCode"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "mobilePhoneNumber" in schema["components"]["schemas"][ref]["properties"]


#: Operations whose success is 201 Created, as LeanCloud answers a sign-up.
CREATED_ONLY = {("/1.1/users", "post"), ("/1.1/classes/_User", "post")}


def test_every_post_and_put_has_a_request_body_and_every_operation_a_success_schema(
        schema):
    methods = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            methods.add(method)
            where = f"{method.upper()} {path}"
            if method in ("post", "put"):
                assert "application/json" in operation["requestBody"]["content"], where
            status = "201" if (path, method) in CREATED_ONLY else "200"
            success = operation["responses"][status]["content"]["application/json"]
            assert success["schema"], where
    assert {"get", "post", "put"} <= methods


def test_both_user_update_routes_document_their_body(schema):
    for path in ("/1.1/users/{object_id}", "/1.1/classes/_User/{object_id}"):
        body = schema["paths"][path]["put"]["requestBody"]["content"]["application/json"]
        ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
        fields = schema["components"]["schemas"][ref]["properties"]
        assert {"username", "password", "email", "mobilePhoneNumber"} <= set(fields), path
        ok = schema["paths"][path]["put"]["responses"]["200"]["content"]["application/json"]
        ref = ok["schema"]["$ref"].rsplit("/", 1)[-1]
        assert set(schema["components"]["schemas"][ref]["properties"]) == {
            "objectId", "updatedAt"}


def test_operation_ids_are_unique_and_named_after_leancloud(schema):
    ids = [operation["operationId"] for operations in schema["paths"].values()
           for operation in operations.values()]
    assert len(ids) == len(set(ids))
    assert not [i for i in ids if i[-2:-1] == "_" and i[-1].isdigit()]  # no numeral suffixes
    assert {"signUp", "login", "updateUser", "classesUserUpdateUser"} <= set(ids)


def test_successes_answer_an_empty_object(schema):
    for path in ("/1.1/requestSmsCode", "/1.1/verifySmsCode/{code}"):
        ok = schema["paths"][path]["post"]["responses"]["200"]
        assert ok["content"]["application/json"]["example"] == {}, path


def test_the_leancloud_headers_are_security_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {
        "X-LC-Id", "X-LC-Sign", "X-LC-Key", "X-LC-Session"}
    security = schema["paths"]["/1.1/requestSmsCode"]["post"]["security"]
    assert {"LeanCloudAppId": [], "LeanCloudSign": []} in security
    assert {"LeanCloudAppId": [], "LeanCloudKey": []} in security


def test_version_and_error_code_table(schema):
    assert schema["info"]["version"] == sms_service.__version__ != "0.0.0"
    description = schema["info"]["description"]
    for code in ErrorCode:
        assert f"| {int(code)} | {code.name.lower()} |" in description
    assert "| 601 | send_too_frequent |" in description


@pytest.mark.django_db
def test_the_admin_index_leads_to_every_sms_screen(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    page = client.get("/admin/").content.decode()
    for url in ("/admin/sms_service/message/dashboard/",
                "/admin/sms_service/template/review-queue/",
                "/admin/sms_service/ledgerentry/apps/",
                "/admin/sms_service/message/export/",
                "/sms_service/docs"):
        assert f'href="{url}"' in page, url
    assert "0 pending" in page


def test_the_docs_page_loads_nothing_from_another_site(client):
    page = client.get("/sms_service/docs").content.decode()
    assert 'spec-url="/sms_service/schema"' in page
    assert "/static/drf_spectacular_sidecar/redoc/" in page
    assert "https://" not in page and "http://" not in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_rendered_docs_fetch_nothing_from_another_site(live_server, browser):
    """Redoc's script draws its vendor's logo from a CDN under the menu; the page
    allows images from this site only, so the browser blocks that request."""
    browser.visit(live_server.url + "/sms_service/docs")
    browser.wait_for_text("body", "requestSmsCode", timeout=30)
    asked = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });")
    assert any(url.startswith(live_server.url) for url in asked), asked
    refused = [line for line in browser.console_errors() if "Content Security Policy" in line]
    fetched = [url for url in asked if not url.startswith(live_server.url)
               and not any(url in line for line in refused)]
    assert fetched == [], fetched
