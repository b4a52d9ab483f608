"""Drives the official LeanCloud Python SDK (PyPI ``leancloud`` 3.0.2).

Runs in its own virtualenv (``.venv-sdk``, see install.sh), never in the
project's, because the SDK pins old versions of requests and Werkzeug.

Protocol: JSON lines. The first line (or argv[1]) configures the SDK::

    {"server": "http://127.0.0.1:8000", "app_id": "...", "app_key": "...",
     "master_key": "...", "use_master_key": false}

Every later line on stdin is one command, answered by one line on stdout::

    {"op": "request_sms_code", "phone": "...", "sms_type": "sms",
     "template": null, "sign": null, "params": {...}}
    {"op": "verify_sms_code", "phone": "...", "code": "123456"}
    {"op": "run_function", "name": "hello"}   (a path this server does not serve)
    {"op": "request_captcha", "width": 100, "height": 50, "size": null, "ttl": null}
        -> also "token", "url" (``cloud.request_captcha``)
    {"op": "verify_captcha", "token": "...", "code": "abcd"}
        -> also "validate_token" (``cloud.verify_captcha``)

Phone users (``leancloud.User``; the SDK keeps
the current user, and sends its session, between commands)::

    {"op": "sign_up", "username": "...", "password": "...", "phone": "..."}
    {"op": "login", "username": "...", "password": "..."}
    {"op": "login_with_mobile_phone", "phone": "...", "password": "..."}
    {"op": "login_with_sms_code", "phone": "...", "code": "..."}
    {"op": "signup_or_login_with_mobile_phone", "phone": "...", "code": "..."}
    {"op": "become", "session_token": "..."}
    {"op": "logout"}
    {"op": "request_login_sms_code", "phone": "...", "validate_token": null}
    {"op": "request_mobile_phone_verify", "phone": "...", "validate_token": null}
    {"op": "verify_mobile_phone_number", "code": "...", "phone": "..."}
    {"op": "request_password_reset_by_sms_code", "phone": "...", "validate_token": null}
    {"op": "reset_password_by_sms_code", "code": "...", "password": "...", "phone": "..."}
    {"op": "request_change_phone_number", "phone": "...", "ttl": 6, "validate_token": null}
    {"op": "change_phone_number", "code": "...", "phone": "..."}

Calls that log in answer
``{"ok": true, "user": {"objectId", "sessionToken", "username",
"mobilePhoneNumber", "mobilePhoneVerified"}}``.

``request_sms_code`` also takes ``"validate_token"``.

Answer: ``{"ok": true}`` (plus the fields above) or
``{"ok": false, "code": <int>, "error": "..."}``.
An exception that is not a LeanCloudError (for example a response that is not
JSON) is reported as ``{"ok": false, "code": null, "crash": "<type>: <text>"}``.
"""

from __future__ import annotations

import json
import os
import sys


def configure(config: dict) -> None:
    # The SDK reads this variable on every request and appends "/1.1/<path>": a
    # trailing slash is passed on as given (the server must then accept "//1.1/").
    os.environ["LEANCLOUD_API_SERVER"] = config["server"]
    os.environ.pop("LC_API_SERVER", None)
    import leancloud

    leancloud.init(
        config["app_id"],
        app_key=config.get("app_key") or None,
        master_key=config.get("master_key") or None,
    )
    if config.get("master_key"):
        leancloud.use_master_key(bool(config.get("use_master_key", True)))


def user_result(user) -> dict:
    """What a test needs to know of the SDK's user object."""
    return {
        "ok": True,
        "user": {
            "objectId": user.id,
            "sessionToken": user.get_session_token(),
            "username": user.get("username"),
            "mobilePhoneNumber": user.get("mobilePhoneNumber"),
            "mobilePhoneVerified": user.get("mobilePhoneVerified"),
        },
    }


def run_user(op: str, command: dict) -> dict | None:
    """The phone-user calls; None for an op that is not one."""
    from leancloud import User

    validate = {"validate_token": command.get("validate_token")}
    if op == "sign_up":
        user = User()
        if command.get("phone"):
            user.set_mobile_phone_number(command["phone"])
        user.sign_up(command["username"], command["password"])
        return user_result(user)
    if op == "login":
        user = User()
        user.login(command["username"], command["password"])
        return user_result(user)
    if op == "login_with_mobile_phone":
        return user_result(User.login_with_mobile_phone(command["phone"], command["password"]))
    if op == "login_with_sms_code":
        # No helper in the SDK: set the number and the code, then log in.
        user = User()
        user.set("mobilePhoneNumber", command["phone"])
        user.set("smsCode", command["code"])
        user.login()
        return user_result(user)
    if op == "signup_or_login_with_mobile_phone":
        return user_result(
            User.signup_or_login_with_mobile_phone(command["phone"], command["code"])
        )
    if op == "become":
        return user_result(User.become(command["session_token"]))
    if op == "logout":
        current = User.get_current()
        if current is not None:
            current.logout()
    elif op == "request_login_sms_code":
        User.request_login_sms_code(command["phone"], **validate)
    elif op == "request_mobile_phone_verify":
        User.request_mobile_phone_verify(command["phone"], **validate)
    elif op == "verify_mobile_phone_number":
        User.verify_mobile_phone_number(command["code"], command["phone"])
    elif op == "request_password_reset_by_sms_code":
        User.request_password_reset_by_sms_code(command["phone"], **validate)
    elif op == "reset_password_by_sms_code":
        User.reset_password_by_sms_code(command["code"], command["password"], command["phone"])
    elif op == "request_change_phone_number":
        User.request_change_phone_number(command["phone"], ttl=command.get("ttl"), **validate)
    elif op == "change_phone_number":
        User.change_phone_number(command["code"], command["phone"])
    else:
        return None
    return {"ok": True}


def run(command: dict) -> dict:
    import leancloud
    from leancloud import cloud

    op = command.get("op")
    answer: dict = {}
    try:
        if op == "request_sms_code":
            kwargs = {"sms_type": command.get("sms_type") or "sms"}
            for name in ("template", "sign", "params", "validate_token"):
                if command.get(name) is not None:
                    kwargs[name] = command[name]
            cloud.request_sms_code(command["phone"], **kwargs)
        elif op == "verify_sms_code":
            cloud.verify_sms_code(command["phone"], command["code"])
        elif op == "run_function":
            cloud.run(command["name"])
        elif op == "request_captcha":
            kwargs = {name: command[name] for name in ("size", "width", "height", "ttl")
                      if command.get(name) is not None}
            captcha = cloud.request_captcha(**kwargs)
            answer = {"token": captcha.token, "url": captcha.url}
        elif op == "verify_captcha":
            answer = {"validate_token": cloud.verify_captcha(command["code"], command["token"])}
        else:
            result = run_user(op, command)
            if result is None:
                return {"ok": False, "code": None, "crash": f"unknown op {op!r}"}
            return result
    except leancloud.LeanCloudError as exc:
        return {"ok": False, "code": exc.code, "error": exc.error}
    except Exception as exc:  # reported, so the test shows what the SDK tripped on
        return {"ok": False, "code": None, "crash": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, **answer}


def main() -> int:
    lines = iter(sys.stdin)
    if len(sys.argv) > 1:
        config = json.loads(sys.argv[1])
    else:
        config = json.loads(next(lines))
    configure(config)
    print(json.dumps({"ok": True, "ready": True}), flush=True)
    for line in lines:
        line = line.strip()
        if not line:
            continue
        print(json.dumps(run(json.loads(line)), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
