"""Request headers a browser client of the LeanCloud SDKs sends (for CORS).

    from corsheaders.defaults import default_headers
    from sms_service.cors import LEANCLOUD_HEADERS
    CORS_ALLOW_HEADERS = (*default_headers, *LEANCLOUD_HEADERS)
"""

LEANCLOUD_HEADERS = (
    "x-lc-id",
    "x-lc-key",
    "x-lc-sign",
    "x-lc-session",
    "x-lc-prod",
    "x-lc-ua",
    "x-lc-hook-key",
    "x-avoscloud-application-id",
    "x-avoscloud-application-key",
    "x-avoscloud-request-sign",
    "x-avoscloud-session-token",
    "x-avoscloud-application-production",
)
