from __future__ import annotations

import pytest

from sms_service.backends import locmem
from sms_service.models import App
from tests import celery_app  # noqa: F401  (makes the suite's Celery app current)
from tests.browser import browser, browser_factory  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _clean_outbox_and_cache():
    from django.core.cache import caches

    from sms_service import caching
    from sms_service.services import pumping

    locmem.outbox.clear()
    pumping.pending.discard()  # verified counts an earlier test left held
    for cache in caches.all():
        cache.clear()
    caching.clear_process()
    yield
    locmem.outbox.clear()


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: LocaleMiddleware leaves a request's
    language active in the thread (the test client's requests run in this one)."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _suite_celery_app_stays_current():
    """A test that makes another Celery app current (importing a project's
    package creates its app) would send later tests' tasks through that app,
    past the suite's broker and eager settings: it fails here, by name."""
    from celery import current_app

    yield
    assert current_app._get_current_object() is celery_app.app, (
        f"this test made the Celery app {current_app.main!r} current; the suite's "
        "tasks would go through it")


@pytest.fixture
def example_project_imported():
    """For a test that loads the example project's URLconf: its package creates
    the project's Celery app, which becomes current; the suite's app is made
    current again afterwards."""
    yield
    celery_app.app.set_current()


#: Lines the reliability suite reports; printed at the end of the run.
_FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Append a line to print under "reliability figures" after the run."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("reliability figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def draw_codes(settings):
    """``draw_codes("111111", "222222")``: the next codes the adapter generates."""
    from tests.adapters import ScriptedCodesAdapter

    def draw(*codes: str) -> None:
        ScriptedCodesAdapter.draws = list(codes)
        settings.SMS_SERVICE = {**settings.SMS_SERVICE,
                                "ADAPTER": "tests.adapters.ScriptedCodesAdapter"}

    yield draw
    ScriptedCodesAdapter.draws = []


@pytest.fixture
def outbox():
    return locmem.outbox


@pytest.fixture
def app(db) -> App:
    return App.objects.create(name="Demo", company_name="Demo Ltd")


class LeanCloudClient:
    """Django's test client speaking the LeanCloud wire protocol.

    Requests run their on-commit callbacks (the enqueue step), as a real request
    outside a test transaction would.
    """

    def __init__(self, client, app, capture):
        self.client = client
        self.app = app
        self._capture = capture
        self.master = False

    def headers(self, *, master: bool | None = None) -> dict[str, str]:
        import hashlib
        import time

        master = self.master if master is None else master
        ts = str(int(time.time() * 1000))
        key = self.app.master_key if master else self.app.app_key
        sign = hashlib.md5((ts + key).encode()).hexdigest() + "," + ts
        return {"HTTP_X_LC_ID": self.app.app_id,
                "HTTP_X_LC_SIGN": sign + (",master" if master else "")}

    def request(self, method: str, path: str, body=None, *, raw: bytes | str | None = None,
                master: bool | None = None, headers: dict | None = None, **extra):
        import json

        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        h = self.headers(master=master) if headers is None else headers
        with self._capture(execute=True):
            return self.client.generic(
                method, path, data=data, content_type="application/json;charset=utf-8",
                **h, **extra
            )

    def post(self, path: str, body=None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)


@pytest.fixture
def lc(client, app, django_capture_on_commit_callbacks) -> LeanCloudClient:
    return LeanCloudClient(client, app, django_capture_on_commit_callbacks)


@pytest.fixture
def signature(app):
    from sms_service.models import Signature

    return Signature.objects.create(
        app=app, name="LeanCloud", text="LeanCloud", status="approved", is_default=True
    )


@pytest.fixture
def clock(settings):
    """A frozen, movable clock; rate limits counted in a cache that follows it."""
    import time_machine
    from django.utils import timezone

    settings.SMS_SERVICE = {**settings.SMS_SERVICE, "RATE_LIMIT_CACHE": "clock"}
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller
