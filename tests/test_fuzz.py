"""Generated requests against every route under /1.1/: never a server error.

The routes come from the URLconf (every pattern of the project whose path is
under ``1.1``), and the field names worth trying from the OpenAPI schema the
project serves, so endpoints added later are fuzzed without touching this file.
Each request gets a random method, credentials (none, wrong, app key, master
key, fresh or stale signatures), session token, query string and body: JSON objects of
scalars and nested values seeded with the inputs that used to break things
(NUL, lone surrogates, deep nesting, 【】, links, far dates, non-ASCII digits),
other JSON documents, and raw bytes. Any 5xx (or exception) fails the test and
Hypothesis shrinks it to a minimal request; a 4xx must be LeanCloud-shaped.

``SMS_FUZZ_EXAMPLES`` sets the requests per route (default 50); runs are
derandomised so CI sees the same requests every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from urllib.parse import quote

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sms_service.models import App, Signature
from tests.content_fixtures import approved_template

EXAMPLES = int(os.environ.get("SMS_FUZZ_EXAMPLES", "50"))


def api_routes() -> list[tuple[str, tuple[str, ...]]]:
    """``(url name with namespaces, path argument names)`` of every /1.1/ route."""
    found: list[tuple[str, tuple[str, ...]]] = []

    def walk(patterns, namespaces: tuple[str, ...], prefix: str) -> None:
        for pattern in patterns:
            text = prefix + str(pattern.pattern).replace("\\", "")
            if isinstance(pattern, URLResolver):
                space = (*namespaces, pattern.namespace) if pattern.namespace else namespaces
                walk(pattern.url_patterns, space, text)
            elif isinstance(pattern, URLPattern) and pattern.name and "1.1" in text:
                name = ":".join((*namespaces, pattern.name))
                found.append((name, tuple(pattern.pattern.regex.groupindex)))

    walk(get_resolver().url_patterns, (), "")
    return found


def schema_field_names() -> list[str]:
    """Every request field and parameter name in the served OpenAPI schema."""
    from drf_spectacular.generators import SchemaGenerator

    from sms_service.api import urls as api_urls

    schema = SchemaGenerator(patterns=api_urls.urlpatterns).get_schema(request=None, public=True)
    names: set[str] = set()
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            names.update(p["name"] for p in operation.get("parameters", []))
    for component in schema.get("components", {}).get("schemas", {}).values():
        names.update(component.get("properties", {}))
    return sorted(names)


ROUTES = api_routes()
FIELDS = schema_field_names()

NASTY = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e", "\n", "【FakeBank】", "】",
    "http://evil.example", "www.evil.cn", "²", "１０", "٣", "9999-12-31", "0001-01-01",
    "9999-12-31T23:59:59-14:00", "2024-02-30", "1e309", "-1", "0", "99999999999999999999",
    "null", "true", "[]", "{}", "x" * 300, "+19002345678", "+868001234567", "18612345678",
    "+8618612345678", "123456", "sms", "voice", "master", "%00", "../../etc/passwd",
]
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    | st.sampled_from(NASTY)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(FIELDS) | st.text(max_size=10) | st.sampled_from(NASTY)
objects = st.dictionaries(keys, json_values | st.sampled_from(NASTY), max_size=6)


def _nested(depth: int) -> bytes:
    return ('{"v": ' + "[" * depth + "]" * depth + "}").encode()


bodies = st.one_of(
    objects.map(lambda body: json.dumps(body).encode()),  # \u escapes: surrogates too
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(1, 30_000).map(_nested),
    st.sampled_from([b"", b"null", b"NaN", b'{"a": Infinity}', b"{", b"\xff\xfe", b"[]"]),
    st.binary(max_size=64),
)
query_values = st.text(max_size=20) | st.sampled_from(NASTY)
queries = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), query_values,
                          max_size=4)
path_values = st.sampled_from(["123456", "000000", "", "abc"]) | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/?#"), max_size=12
)


def _sign(key: str, timestamp_ms: int, master: bool) -> str:
    digest = hashlib.md5((str(timestamp_ms) + key).encode()).hexdigest()
    return f"{digest},{timestamp_ms}" + (",master" if master else "")


def _credentials(app: App, kind: str) -> dict[str, str]:
    now = int(time.time() * 1000)
    return {
        "none": {},
        "wrong": {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": "wrong"},
        "garbage id": {"HTTP_X_LC_ID": "\x00 ü", "HTTP_X_LC_KEY": "k"},
        "key": {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": app.app_key},
        "master": {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_KEY": f"{app.master_key},master"},
        "signed": {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_SIGN": _sign(app.app_key, now, False)},
        "signed master": {"HTTP_X_LC_ID": app.app_id,
                          "HTTP_X_LC_SIGN": _sign(app.master_key, now, True)},
        "stale": {"HTTP_X_LC_ID": app.app_id, "HTTP_X_LC_SIGN": _sign(app.app_key, 0, True)},
    }[kind]


sessions = st.none() | st.sampled_from(["", "\x00", "r:" + "0" * 32, "x" * 300]) | st.text(
    st.characters(exclude_categories=["Cs"]), max_size=40)
CREDENTIALS = ["none", "wrong", "garbage id", "key", "master", "signed", "signed master",
               "stale"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@pytest.fixture
def fuzz_app(db) -> App:
    app = App.objects.create(name="Fuzz", company_name="Fuzz Ltd", allow_international=True,
                             balance=1000)
    Signature.objects.create(app=app, name="Fuzz", text="Fuzz", status="approved",
                             is_default=True)
    approved_template(app, "Order", "订单{{order_id}}已发货{{#if coupon}}，券{{coupon}}{{/if}}")
    return app


def test_routes_are_found():
    names = {name.split(":")[-1] for name, _ in ROUTES}
    assert {"request-sms-code", "verify-sms-code", "sms-messages", "not-found"} <= names
    assert {"mobilePhoneNumber", "smsType", "ttl"} <= set(FIELDS)


@pytest.mark.django_db
@pytest.mark.parametrize("route, arguments", ROUTES, ids=[name for name, _ in ROUTES])
def test_no_server_errors(client, fuzz_app, django_capture_on_commit_callbacks, capsys,
                          route, arguments):
    requests = 0

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(method=st.sampled_from(METHODS), credentials=st.sampled_from(CREDENTIALS),
           path_args=st.fixed_dictionaries({name: path_values for name in arguments}),
           query=queries, body=bodies, session=sessions)
    def request(method, credentials, path_args, query, body, session):
        nonlocal requests
        try:
            path = reverse(route, kwargs=path_args or None)
        except NoReverseMatch:
            assume(False)
        if query:
            path += "?" + "&".join(
                f"{quote(k.encode('utf-8', 'surrogatepass'))}="
                f"{quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in query.items()
            )
        headers = _credentials(fuzz_app, credentials)
        if session is not None:
            headers["HTTP_X_LC_SESSION"] = session
        with django_capture_on_commit_callbacks(execute=True):
            response = client.generic(method, path, data=body, content_type="application/json",
                                      **headers)
        requests += 1
        assert response.status_code < 500, (response.status_code, response.content[:300])
        if response.status_code >= 400 and method != "HEAD":
            payload = json.loads(response.content)
            assert set(payload) == {"code", "error"}, payload

    request()
    with capsys.disabled():
        print(f"\nfuzz {route}: {requests} requests, 0 server errors")
