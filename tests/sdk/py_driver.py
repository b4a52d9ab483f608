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

Answer: ``{"ok": true}`` or ``{"ok": false, "code": <int>, "error": "..."}``.
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


def run(command: dict) -> dict:
    import leancloud
    from leancloud import cloud

    op = command.get("op")
    try:
        if op == "request_sms_code":
            kwargs = {"sms_type": command.get("sms_type") or "sms"}
            for name in ("template", "sign", "params"):
                if command.get(name) is not None:
                    kwargs[name] = command[name]
            cloud.request_sms_code(command["phone"], **kwargs)
        elif op == "verify_sms_code":
            cloud.verify_sms_code(command["phone"], command["code"])
        elif op == "run_function":
            cloud.run(command["name"])
        else:
            return {"ok": False, "code": None, "crash": f"unknown op {op!r}"}
    except leancloud.LeanCloudError as exc:
        return {"ok": False, "code": exc.code, "error": exc.error}
    except Exception as exc:  # reported, so the test shows what the SDK tripped on
        return {"ok": False, "code": None, "crash": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


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
