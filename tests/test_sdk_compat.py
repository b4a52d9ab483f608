"""The official LeanCloud SDKs, unchanged, against a live server.

Each test starts pytest-django's ``live_server`` (a thread of this process, so
the locmem outbox is readable here) and drives one SDK in a subprocess through
real HTTP on the loopback interface:

* Python: PyPI ``leancloud`` 3.0.2 in ``.venv-sdk`` via ``tests/sdk/py_driver.py``;
* JS: npm ``leancloud-storage`` 4.15.2 in ``tests/sdk/js`` via ``driver.js``.

Install both with ``tests/sdk/install.sh``. Without them these tests skip,
except under ``CI=true``, where a missing SDK is a failure.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from PIL import Image

from sms_service.models import (
    App,
    AppUser,
    MessageKind,
    Signature,
    Template,
    TemplateVersion,
    VerificationCode,
)
from sms_service.services import users
from tests.captcha_support import captcha_answer

pytestmark = [pytest.mark.sdk, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
SDK_DIR = ROOT / "tests" / "sdk"
PY_SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
PY_DRIVER = SDK_DIR / "py_driver.py"
JS_DIR = SDK_DIR / "js"
JS_DRIVER = JS_DIR / "driver.js"

#: Seconds a driver may take to start, or to answer one command.
STARTUP_TIMEOUT = 60
COMMAND_TIMEOUT = 30

PHONE = "18600000000"
PHONE_E164 = "+8618600000000"
DEFAULT_TEXT = "【LeanCloud】您正在使用Demo服务进行短信验证操作，您的验证码是：{code}，请在10分钟内完成验证。"
CODE_IN_TEXT = re.compile(r"验证码是：(\d{6})，")

SDKS = ["python", "js"]


# --- SDK drivers -----------------------------------------------------------------


def _missing_sdk(name: str) -> str | None:
    """Why the SDK ``name`` cannot run here, or None when it can."""
    install = "run tests/sdk/install.sh"
    if name == "python":
        if not PY_SDK_PYTHON.exists():
            return f"Python SDK not installed: {PY_SDK_PYTHON} is missing ({install})"
        return None
    if shutil.which("node") is None:
        return "JS SDK cannot run: node is not on PATH"
    if not (JS_DIR / "node_modules" / "leancloud-storage").is_dir():
        return f"JS SDK not installed: {JS_DIR / 'node_modules'} is missing ({install})"
    return None


def _require_sdk(name: str) -> None:
    reason = _missing_sdk(name)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must install the SDKs", pytrace=False)
    pytest.skip(reason)


def _child_env() -> dict[str, str]:
    """This environment without proxies or a server URL of its own: loopback only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper()
        not in {
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "LC_API_SERVER",
            "LEANCLOUD_API_SERVER",
            "LEANCLOUD_APP_ENV",
            "NODE_OPTIONS",
        }
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class SdkDriver:
    """One SDK subprocess speaking the JSON-lines protocol of tests/sdk/."""

    def __init__(self, name: str, config: dict) -> None:
        self.name = name
        if name == "python":
            argv = [str(PY_SDK_PYTHON), str(PY_DRIVER)]
            cwd = SDK_DIR
        else:
            argv = [shutil.which("node") or "node", str(JS_DRIVER)]
            cwd = JS_DIR
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(
            target=self._pump, args=(self.process.stdout, self._lines), daemon=True
        ).start()
        threading.Thread(target=self._drain, daemon=True).start()
        ready = self._send(config, timeout=STARTUP_TIMEOUT)
        assert ready.get("ready"), ready

    @staticmethod
    def _pump(stream, lines: queue.Queue) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def _drain(self) -> None:
        for line in self.process.stderr:
            if len(self._stderr) < 200:
                self._stderr.append(line)

    def _send(self, message: dict, *, timeout: float) -> dict:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            pytest.fail(
                f"{self.name} SDK driver gave no answer within {timeout}s to "
                f"{message!r}; stderr:\n{''.join(self._stderr)}"
            )
        if line is None:
            self.close()
            pytest.fail(
                f"{self.name} SDK driver exited ({self.process.returncode}); "
                f"stderr:\n{''.join(self._stderr)}"
            )
        return json.loads(line)

    def call(self, op: str, **kwargs) -> dict:
        result = self._send({"op": op, **kwargs}, timeout=COMMAND_TIMEOUT)
        assert "crash" not in result, f"{self.name} SDK crashed: {result['crash']}"
        return result

    def request_sms_code(self, phone: str, **kwargs) -> dict:
        return self.call("request_sms_code", phone=phone, **kwargs)

    def verify_sms_code(self, phone: str | None, code: str) -> dict:
        return self.call("verify_sms_code", phone=phone, code=code)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def server_url(live_server) -> str:
    # Loopback by address: Node resolves "localhost" to ::1 first, where the
    # live server does not listen.
    return live_server.url.replace("://localhost", "://127.0.0.1").rstrip("/")


def _connector(name: str, request):
    _require_sdk(name)  # before the live server starts: a skip costs nothing
    server_url = request.getfixturevalue("server_url")
    drivers: list[SdkDriver] = []

    def connect(
        app: App,
        *,
        app_key: str | None = None,
        master_key: str | None = None,
        app_id: str | None = None,
        trailing_slash: bool = False,
    ) -> SdkDriver:
        """An SDK signed in with the app key, or the master key when given."""
        server = server_url + "/" if trailing_slash else server_url
        config = {
            "server": server,
            "app_id": app_id or app.app_id,
            "app_key": app_key or app.app_key,
        }
        if master_key:
            config.update(master_key=master_key, use_master_key=True)
        driver = SdkDriver(name, config)
        drivers.append(driver)
        return driver

    return connect, drivers


@pytest.fixture(params=SDKS)
def sdk_name(request) -> str:
    return request.param


@pytest.fixture
def connect(sdk_name, request):
    connect, drivers = _connector(sdk_name, request)
    yield connect
    for driver in drivers:
        driver.close()


@pytest.fixture
def client_sdk(connect, app, signature) -> SdkDriver:
    return connect(app)


# --- Helpers ---------------------------------------------------------------------


def sent_to(outbox, phone: str) -> list:
    return [message for message in outbox if message.to == phone]


def code_from(message) -> str:
    if message.channel == "voice":
        return message.digits
    match = CODE_IN_TEXT.search(message.body)
    assert match, message.body
    return match.group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def assert_error(result: dict, code: int, message: str | None = None) -> None:
    assert result["ok"] is False, result
    assert result["code"] == code, result
    if message is not None:
        assert result["error"] == message, result


# --- Verification codes ----------------------------------------------------------


def test_request_and_verify_sms_code(client_sdk, outbox):
    assert client_sdk.request_sms_code(PHONE) == {"ok": True}

    [message] = sent_to(outbox, PHONE_E164)
    assert message.channel == "sms"
    code = code_from(message)
    assert message.body == DEFAULT_TEXT.format(code=code)

    # Python adds +86 itself, JS sends the number as typed: both verify.
    assert client_sdk.verify_sms_code(PHONE, code) == {"ok": True}


def test_request_and_verify_voice_code(client_sdk, outbox):
    assert client_sdk.request_sms_code(PHONE, sms_type="voice") == {"ok": True}

    [message] = sent_to(outbox, PHONE_E164)
    assert message.channel == "voice"
    assert re.fullmatch(r"\d{6}", message.digits)
    assert client_sdk.verify_sms_code(PHONE_E164, message.digits) == {"ok": True}


def test_template_message_with_variables(connect, app, signature, outbox):
    buy = Signature.objects.create(
        app=app, name="sign_BuyBuyBuy", text="BuyBuyBuy", status="approved"
    )
    template = Template.objects.create(
        app=app, name="Order_Notice", kind=MessageKind.NOTIFICATION
    )
    TemplateVersion.objects.create(
        template=template,
        number=1,
        signature=buy,
        status="approved",
        body="Your package for the order {{order_id}} will be delivered by the end of today.",
    )
    sdk = connect(app)

    result = sdk.request_sms_code(
        PHONE,
        template="Order_Notice",
        sign="sign_BuyBuyBuy",
        params={"order_id": "7623432424540"},
    )

    assert result == {"ok": True}
    [message] = sent_to(outbox, PHONE_E164)
    assert message.channel == "sms"
    assert message.body == (
        "【BuyBuyBuy】Your package for the order 7623432424540 will be delivered "
        "by the end of today."
    )


def test_wrong_code_is_refused_and_the_right_one_still_works(client_sdk, outbox):
    assert client_sdk.request_sms_code(PHONE)["ok"]
    code = code_from(sent_to(outbox, PHONE_E164)[0])

    assert_error(
        client_sdk.verify_sms_code(PHONE, other_code(code)), 603, "Invalid SMS code."
    )
    assert client_sdk.verify_sms_code(PHONE, code) == {"ok": True}


def test_code_works_once(client_sdk, outbox):
    assert client_sdk.request_sms_code(PHONE)["ok"]
    code = code_from(sent_to(outbox, PHONE_E164)[0])

    assert client_sdk.verify_sms_code(PHONE, code) == {"ok": True}
    assert_error(client_sdk.verify_sms_code(PHONE, code), 603, "Invalid SMS code.")


def test_expired_code_is_refused(client_sdk, app, outbox):
    assert client_sdk.request_sms_code(PHONE)["ok"]
    code = code_from(sent_to(outbox, PHONE_E164)[0])

    VerificationCode.objects.filter(app=app, phone=PHONE_E164).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert_error(client_sdk.verify_sms_code(PHONE, code), 603, "Invalid SMS code.")


def test_js_verify_without_a_phone_number(request, app, signature, outbox):
    """``AV.Cloud.verifySmsCode(code)`` sends ``{}``: refused, the code survives."""
    connect, drivers = _connector("js", request)
    try:
        sdk = connect(app)
        assert sdk.request_sms_code(PHONE)["ok"]
        code = code_from(sent_to(outbox, PHONE_E164)[0])

        assert_error(
            sdk.verify_sms_code(None, code),
            212,
            "The mobile phone number is missing, and must be specified.",
        )
        assert sdk.verify_sms_code(PHONE, code) == {"ok": True}
    finally:
        for driver in drivers:
            driver.close()


# --- Refusals ------------------------------------------------------------------------


def test_invalid_number(client_sdk, outbox):
    assert_error(
        client_sdk.request_sms_code("12345"),
        127,
        "The mobile phone number was invalid.",
    )
    assert outbox == []


def test_international_number_refused_when_disabled(client_sdk, app, outbox):
    assert app.allow_international is False

    result = client_sdk.request_sms_code("+14155550123")

    assert_error(
        result, 1, "International SMS is disabled, please enable it in console."
    )
    assert outbox == []


def test_immediate_resend_is_rate_limited(client_sdk, outbox):
    assert client_sdk.request_sms_code(PHONE)["ok"]

    result = client_sdk.request_sms_code(PHONE)

    assert_error(result, 1, "SMS request too fast(1 request per 10s).")
    assert len(sent_to(outbox, PHONE_E164)) == 1


@pytest.mark.parametrize("which", ["app_key", "master_key", "app_id"])
def test_wrong_keys_are_unauthorized(connect, app, signature, outbox, which):
    if which == "app_key":
        sdk = connect(app, app_key="not-the-app-key")
    elif which == "master_key":
        sdk = connect(app, master_key="not-the-master-key")
    else:
        sdk = connect(app, app_id="no-such-app-gzGzoHsz")

    assert_error(sdk.request_sms_code(PHONE), 401, "Unauthorized.")
    assert_error(sdk.verify_sms_code(PHONE, "123456"), 401, "Unauthorized.")
    assert outbox == []


def test_master_key_works_when_the_client_api_is_off(connect, app, signature, outbox):
    app.sms_api_enabled = False
    app.save(update_fields=["sms_api_enabled"])
    client = connect(app)
    master = connect(app, master_key=app.master_key)

    assert_error(
        client.request_sms_code(PHONE), 119, "That operation isn't allowed for clients."
    )
    assert outbox == []

    assert master.request_sms_code(PHONE) == {"ok": True}
    code = code_from(sent_to(outbox, PHONE_E164)[0])
    assert_error(client.verify_sms_code(PHONE, code), 119)
    assert master.verify_sms_code(PHONE, code) == {"ok": True}


# --- CAPTCHA ---------------------------------------------------------------------------


def test_captcha_gates_sending(connect, app, signature, outbox):
    """Python ``cloud.request_captcha`` + ``verify_captcha`` +
    ``request_sms_code(validate_token=...)``; JS ``AV.Captcha.request`` +
    ``captcha.verify`` + ``requestSmsCode(..., {validateToken})``."""
    app.require_captcha = True
    app.save(update_fields=["require_captcha"])
    sdk = connect(app)
    assert_error(sdk.request_sms_code(PHONE), 608, "Missing validate token.")

    challenge = sdk.call("request_captcha", width=100, height=50)
    assert challenge["ok"], challenge
    # The URL is absolute, on the server the SDK talks to, and loads like an
    # <img> would: no LeanCloud headers.
    image = requests.get(challenge["url"], timeout=COMMAND_TIMEOUT)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["Cache-Control"] == "no-store"
    assert Image.open(io.BytesIO(image.content)).size == (100, 50)

    answer = captcha_answer(challenge["token"]).upper()  # any case passes
    verified = sdk.call("verify_captcha", token=challenge["token"], code=answer)
    assert verified["ok"], verified
    token = verified["validate_token"]

    assert sdk.request_sms_code(PHONE, validate_token=token) == {"ok": True}
    assert len(sent_to(outbox, PHONE_E164)) == 1
    assert_error(sdk.request_sms_code("18600000001", validate_token=token), 608,
                 "Invalid validate token: already used.")
    assert len(outbox) == 1


def test_captcha_wrong_answer_spends_the_challenge(client_sdk):
    challenge = client_sdk.call("request_captcha")
    answer = captcha_answer(challenge["token"])

    assert_error(client_sdk.call("verify_captcha", token=challenge["token"], code=answer + "x"),
                 603, "Invalid captcha code.")
    assert_error(client_sdk.call("verify_captcha", token=challenge["token"], code=answer),
                 603, "The captcha is unknown or has already been answered.")


def test_captcha_size_and_ttl_need_the_master_key(connect, app, signature):
    client = connect(app)
    master = connect(app, master_key=app.master_key)

    assert_error(client.call("request_captcha", size=5), 1,
                 "size and ttl can only be set with the master key.")
    challenge = master.call("request_captcha", size=6, ttl=30)
    assert challenge["ok"], challenge
    assert len(captcha_answer(challenge["token"])) == 6


# --- Transport ----------------------------------------------------------------------


def test_server_url_with_a_trailing_slash(connect, app, signature, outbox):
    """A configured ``http://host/`` makes the Python SDK request ``//1.1/...``."""
    sdk = connect(app, trailing_slash=True)
    assert sdk.request_sms_code(PHONE) == {"ok": True}
    code = code_from(sent_to(outbox, PHONE_E164)[0])
    assert sdk.verify_sms_code(PHONE, code) == {"ok": True}


def test_unknown_endpoint_is_a_leancloud_error(client_sdk):
    """Paths this server does not serve answer JSON, so the SDK raises its own error
    instead of failing to parse an HTML page."""
    assert_error(
        client_sdk.call("run_function", name="noSuchFunction"), 404, "Not found."
    )


# --- Phone users ------------------------------------------------------------------------

OTHER_PHONE = "18611112222"
OTHER_E164 = "+8618611112222"


@pytest.fixture
def users_app(app, signature, settings):
    """SMS-code login on, and no per-number send intervals, so that one test can
    send a number several codes."""
    from sms_service.conf import DEFAULTS

    app.allow_sms_login = True
    app.save()
    settings.SMS_SERVICE = {
        **settings.SMS_SERVICE,
        "RATE_LIMITS": {**DEFAULTS["RATE_LIMITS"], "app_number_interval": 0,
                        "signature_number_interval": 0},
    }
    return app


def last_code(outbox, phone: str) -> str:
    return code_from(sent_to(outbox, phone)[-1])


def test_sign_up_or_log_in_with_mobile_phone_then_become(connect, users_app, outbox):
    sdk = connect(users_app)
    assert sdk.request_sms_code(PHONE) == {"ok": True}

    first = sdk.call("signup_or_login_with_mobile_phone", phone=PHONE,
                     code=last_code(outbox, PHONE_E164))

    assert first["ok"], first
    user = first["user"]
    assert user["username"] == PHONE_E164
    assert user["mobilePhoneNumber"] == PHONE_E164
    assert user["mobilePhoneVerified"] is True
    member = AppUser.objects.get(app=users_app, phone=PHONE_E164)
    assert member.object_id == user["objectId"]

    # The same number again logs the same member in, with a new session.
    assert sdk.request_sms_code(PHONE) == {"ok": True}
    again = sdk.call("signup_or_login_with_mobile_phone", phone=PHONE,
                     code=last_code(outbox, PHONE_E164))
    assert again["user"]["objectId"] == user["objectId"]
    assert again["user"]["sessionToken"] != user["sessionToken"]
    assert AppUser.objects.count() == 1

    # become: the Python SDK sends ?session_token=, the JS SDK X-LC-Session.
    became = sdk.call("become", session_token=user["sessionToken"])
    assert became["ok"], became
    assert became["user"]["objectId"] == user["objectId"]
    assert_error(sdk.call("become", session_token="no-such-session"), 211,
                 "Could not find user.")


def test_sign_up_with_a_phone_then_verify_it(connect, sdk_name, users_app, outbox):
    sdk = connect(users_app)

    result = sdk.call("sign_up", username="alice", password="s3cret", phone=PHONE)

    assert result["ok"], result
    assert result["user"]["sessionToken"]
    assert result["user"]["mobilePhoneVerified"] is False
    member = AppUser.objects.get(object_id=result["user"]["objectId"])
    assert (member.username, member.phone) == ("alice", PHONE_E164)
    code = last_code(outbox, PHONE_E164)  # sent by the sign-up itself
    if sdk_name == "python":
        verified = sdk.call("verify_mobile_phone_number", code=code, phone=PHONE)
    else:
        # AV.User.verifyMobilePhone(code) sends a null body: no number, and
        # after logOut no session either.
        assert sdk.call("logout") == {"ok": True}
        verified = sdk.call("verify_mobile_phone", code=code)
    assert verified == {"ok": True}
    member.refresh_from_db()
    assert member.phone_verified is True
    assert sdk.call("login", username="alice", password="s3cret")["ok"]


def test_request_mobile_phone_verify_sends_nothing_to_a_verified_number(
        connect, users_app, outbox):
    users.create_member(app=users_app, username="alice", phone=PHONE, phone_verified=True)
    users.create_member(app=users_app, username="bob", phone=OTHER_PHONE)
    sdk = connect(users_app)

    assert sdk.call("request_mobile_phone_verify", phone=PHONE) == {"ok": True}
    assert sent_to(outbox, PHONE_E164) == []
    assert sdk.call("request_mobile_phone_verify", phone=OTHER_PHONE) == {"ok": True}
    assert len(sent_to(outbox, OTHER_E164)) == 1
    assert_error(sdk.call("request_mobile_phone_verify", phone="18633334444"), 213)


def test_reset_password_by_sms_code(connect, users_app, outbox):
    users.create_member(app=users_app, username="alice", password="old-pass", phone=PHONE,
                        phone_verified=True)
    sdk = connect(users_app)

    assert sdk.call("request_password_reset_by_sms_code", phone=PHONE) == {"ok": True}
    # The JS SDK sends only {"password"}; the Python SDK adds the number.
    result = sdk.call("reset_password_by_sms_code", code=last_code(outbox, PHONE_E164),
                      password="n3w-pass", phone=PHONE)

    assert result == {"ok": True}
    assert sdk.call("login", username="alice", password="n3w-pass")["ok"]
    assert_error(sdk.call("login", username="alice", password="old-pass"), 210,
                 "The username and password mismatch.")


def test_change_phone_number(connect, users_app, outbox):
    sdk = connect(users_app)
    assert sdk.call("sign_up", username="alice", password="pw", phone=PHONE)["ok"]

    assert sdk.call("request_change_phone_number", phone=OTHER_PHONE, ttl=6) == {"ok": True}
    row = VerificationCode.objects.get(phone=OTHER_E164, purpose="change_phone")
    assert row.expires_at - row.created_at == timedelta(minutes=6)
    result = sdk.call("change_phone_number", code=last_code(outbox, OTHER_E164),
                      phone=OTHER_PHONE)

    assert result == {"ok": True}
    member = AppUser.objects.get(username="alice")
    assert (member.phone, member.phone_verified) == (OTHER_E164, True)


def test_request_login_sms_code_then_log_in_with_it(connect, users_app, outbox):
    member = users.create_member(app=users_app, username="alice", phone=PHONE,
                                 phone_verified=True)
    sdk = connect(users_app)

    assert sdk.call("request_login_sms_code", phone=PHONE) == {"ok": True}
    code = last_code(outbox, PHONE_E164)
    result = sdk.call("login_with_sms_code", phone=PHONE, code=code)

    assert result["ok"], result
    assert result["user"]["objectId"] == member.object_id
    assert result["user"]["sessionToken"]
    assert_error(sdk.call("login_with_sms_code", phone=PHONE, code=code), 603,
                 "Invalid SMS code.")
    assert_error(sdk.call("request_login_sms_code", phone=OTHER_PHONE), 213)


def test_python_login_with_mobile_phone_and_password(request, users_app, outbox):
    connect, drivers = _connector("python", request)
    try:
        users.create_member(app=users_app, username="alice", password="pw", phone=PHONE)
        sdk = connect(users_app)
        result = sdk.call("login_with_mobile_phone", phone=PHONE, password="pw")
        assert result["ok"], result
        assert result["user"]["username"] == "alice"
    finally:
        for driver in drivers:
            driver.close()
