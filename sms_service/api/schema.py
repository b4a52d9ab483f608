"""OpenAPI description of the LeanCloud authentication headers."""

from __future__ import annotations

from typing import TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class LeanCloudAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "sms_service.api.authentication.LeanCloudAuthentication"
    name = ["LeanCloudAppId", "LeanCloudSign", "LeanCloudKey", "LeanCloudSession"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-LC-Id",
             "description": "The app id (always required)."},
            {"type": "apiKey", "in": "header", "name": "X-LC-Sign",
             "description": "md5(timestamp + key) as lower-case hex, then ',<ms timestamp>', "
                            "then ',master' when signed with the master key."},
            {"type": "apiKey", "in": "header", "name": "X-LC-Key",
             "description": "The app key, or '<masterKey>,master'. Use X-LC-Sign instead "
                            "where the key could be seen."},
            {"type": "apiKey", "in": "header", "name": "X-LC-Session",
             "description": "A phone user's session token, for the /users routes that "
                            "act as that user."},
        ]

    def get_security_requirement(self, auto_schema):
        # X-LC-Id with either X-LC-Sign or X-LC-Key; a session token is optional.
        return [
            {"LeanCloudAppId": [], "LeanCloudSign": []},
            {"LeanCloudAppId": [], "LeanCloudKey": []},
        ]

T = TypeVar("T")


def error_code_table() -> str:
    """A Markdown table of the LeanCloud error codes the API answers with."""
    from .. import exceptions

    messages: dict[int, list[str]] = {}
    for cls in _subclasses(exceptions.SmsServiceError):
        text = cls.default_message
        if text not in messages.setdefault(int(cls.code), []):
            messages[int(cls.code)].append(text)
    rows = ["| code | name | meaning |", "|---|---|---|"]
    for code in exceptions.ErrorCode:
        meaning = " / ".join(messages.get(int(code), [])) or "-"
        rows.append(f"| {int(code)} | {code.name.lower()} | {meaning} |")
    return "\n".join(rows)


def _subclasses(cls: type[T]) -> list[type[T]]:
    found: list[type[T]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def empty_success_bodies(result, generator, request, public):
    """Postprocessing hook: a success without a documented body answers ``{}``."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2") and not response.get("content"):
                    response["content"] = {"application/json": {
                        "schema": {"type": "object", "additionalProperties": False},
                        "example": {},
                    }}
    return result


def schema_settings() -> dict:
    """Settings of this app's schema view: version, description with the error table."""
    from .. import __version__

    return {
        "VERSION": __version__,
        "DESCRIPTION": (
            "LeanCloud-compatible SMS REST API. Every request sends `X-LC-Id` and "
            "either `X-LC-Sign` or `X-LC-Key`. Bodies are JSON; a success without "
            "data answers `{}`; every error answers `{\"code\": <number>, "
            "\"error\": \"<message>\"}` with an HTTP status of 400, 401, 403, 404, "
            "405, 429 or 500.\n\n## Error codes\n\n" + error_code_table()
        ),
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "sms_service.api.schema.empty_success_bodies",
        ],
    }
