"""OpenAPI description of the LeanCloud authentication headers."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class LeanCloudAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "sms_service.api.authentication.LeanCloudAuthentication"
    name = ["LeanCloudAppId", "LeanCloudSign"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-LC-Id",
             "description": "The app id."},
            {"type": "apiKey", "in": "header", "name": "X-LC-Sign",
             "description": "md5(timestamp + key) as lower-case hex, then ',<ms timestamp>', "
                            "then ',master' when signed with the master key. X-LC-Key "
                            "('<key>' or '<masterKey>,master') is accepted instead."},
        ]
