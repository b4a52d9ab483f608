"""Error codes (LeanCloud's numbers) and the exception tree of sms_service.

Every business failure is a :class:`SmsServiceError` subclass carrying a LeanCloud
``code``, an HTTP status and a default message. The API layer renders them as
``{"code": <int>, "error": "<message>"}``; services, tasks and admin actions raise
and catch them by class.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_noop


class ErrorCode(IntEnum):
    """LeanCloud's error numbers, as its REST API documents them."""

    OTHER = 1
    MALFORMED_JSON = 107
    OPERATION_FORBIDDEN = 119
    INVALID_EMAIL = 125
    INVALID_PHONE_NUMBER = 127
    DUPLICATE_VALUE = 137
    APP_THRESHOLD_EXCEEDED = 154
    INSUFFICIENT_BALANCE = 160
    USERNAME_MISSING = 200
    PASSWORD_MISSING = 201
    USERNAME_TAKEN = 202
    EMAIL_TAKEN = 203
    SESSION_REQUIRED = 206
    PASSWORD_MISMATCH = 210
    USER_NOT_FOUND = 211
    PHONE_NUMBER_MISSING = 212
    PHONE_NUMBER_NOT_FOUND = 213
    PHONE_NUMBER_TAKEN = 214
    PHONE_NUMBER_NOT_VERIFIED = 215
    INVALID_USERNAME = 217
    INVALID_PASSWORD = 218
    LOGIN_LOCKED = 219
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    TOO_MANY_REQUESTS = 429
    INVALID_SIGNATURE = 600
    SEND_TOO_FREQUENT = 601
    PROVIDER_SEND_FAILED = 602
    INVALID_CODE = 603
    TEMPLATE_NOT_FOUND = 604
    TEMPLATE_NOT_VERIFIED = 605
    TEMPLATE_RENDER_FAILED = 606
    VALIDATE_TOKEN_MISSING = 608


class SmsServiceError(Exception):
    """Root of every business error. Subclasses override the class attributes only."""

    code: ErrorCode = ErrorCode.OTHER
    http_status: int = 400
    #: LeanCloud's English text. Marked for translation only: the API answers in
    #: English unless the app opts in, the bundled pages in the page's language.
    default_message: str = gettext_noop("Internal server error. No information available.")

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        **context: Any,
    ) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        self.context = context
        super().__init__(self.message)

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self.context.items())
        return f"{self.message} ({extra})" if extra else self.message

    def as_dict(self) -> dict[str, Any]:
        return {"code": int(self.code), "error": self.message}


class GenericError(SmsServiceError):
    """Code 1 with a specific message."""


class InternalError(SmsServiceError):
    """An unexpected failure, answered as HTTP 500 with LeanCloud's code 1."""

    http_status = 500


class DatabaseUnavailableError(SmsServiceError):
    """The database cannot be reached (a restart, a fail-over): HTTP 503 with
    LeanCloud's code 1 and Retry-After; nothing was written."""

    http_status = 503
    default_message = gettext_noop("The service is temporarily unavailable, please retry later.")

    def __init__(self, message: str | None = None, **kwargs):
        kwargs.setdefault("retry_after", 1)
        super().__init__(message, **kwargs)


class MalformedJsonError(SmsServiceError):
    code = ErrorCode.MALFORMED_JSON
    default_message = gettext_noop("Malformed json object. A json dictionary is expected.")
class InvalidParameterError(SmsServiceError):
    """A field has the wrong type, range or size (code 1 with a precise message)."""


class OperationForbiddenError(SmsServiceError):
    code = ErrorCode.OPERATION_FORBIDDEN
    default_message = gettext_noop("That operation isn't allowed for clients.")


class SendingHeldBackError(SmsServiceError):
    """The pumping defence holds back sends to this number range or country."""

    code = ErrorCode.OPERATION_FORBIDDEN
    default_message = gettext_noop(
        "Sending to this number range is held back: its verification codes are "
        "rarely used (suspected SMS pumping). The app's owner has been told."
    )


class InvalidPhoneNumberError(SmsServiceError, ValueError):
    code = ErrorCode.INVALID_PHONE_NUMBER
    default_message = gettext_noop("The mobile phone number was invalid.")


class CountryNotAllowedError(InvalidPhoneNumberError):
    """The app's geo permissions do not include the number's country."""

    default_message = gettext_noop("This app does not send to that country.")


class InternationalDisabledError(SmsServiceError):
    default_message = gettext_noop("International SMS is disabled, please enable it in console.")


class RegionNotPricedError(SmsServiceError):
    code = ErrorCode.OPERATION_FORBIDDEN
    default_message = gettext_noop("Sending to this region is not priced yet; nothing was sent.")


class PhoneNumberMissingError(SmsServiceError):
    code = ErrorCode.PHONE_NUMBER_MISSING
    default_message = gettext_noop("The mobile phone number is missing, and must be specified.")
class AppThresholdExceededError(SmsServiceError):
    code = ErrorCode.APP_THRESHOLD_EXCEEDED
    default_message = gettext_noop("Exceeded an application threshold setting.")
class InsufficientBalanceError(SmsServiceError):
    code = ErrorCode.INSUFFICIENT_BALANCE
    default_message = gettext_noop("Insufficient balance.")
class UnauthorizedError(SmsServiceError):
    code = ErrorCode.UNAUTHORIZED
    http_status = 401
    default_message = gettext_noop("Unauthorized.")
class MasterKeyRequiredError(SmsServiceError):
    http_status = 403
    default_message = gettext_noop("The request must be signed by master key.")
class NotFoundError(SmsServiceError):
    code = ErrorCode.NOT_FOUND
    http_status = 404
    default_message = gettext_noop("Not found.")
class MethodNotAllowedError(SmsServiceError):
    code = ErrorCode.METHOD_NOT_ALLOWED
    http_status = 405
    default_message = gettext_noop("Method not allowed.")
class TooManyRequestsError(SmsServiceError):
    code = ErrorCode.TOO_MANY_REQUESTS
    http_status = 429
    default_message = gettext_noop("Too many requests.")
class SendTooFastError(SmsServiceError):
    """LeanCloud's app-level limit: one SMS to a number per 10 seconds (code 1)."""

    default_message = gettext_noop("SMS request too fast(1 request per 10s).")
class SendTooFrequentError(SmsServiceError):
    code = ErrorCode.SEND_TOO_FREQUENT
    default_message = gettext_noop("Can't send SMS too frequently.")
class RateLimiterUnavailableError(SmsServiceError):
    """The shared counter store is down: sends are refused (fail closed)."""

    http_status = 503
    default_message = gettext_noop("SMS sending is temporarily unavailable, please retry later.")
class InvalidSignatureError(SmsServiceError):
    code = ErrorCode.INVALID_SIGNATURE
    default_message = gettext_noop("Invalid SMS signature.")
class InvalidCodeError(SmsServiceError):
    code = ErrorCode.INVALID_CODE
    default_message = gettext_noop("Invalid SMS code.")
class TemplateNotFoundError(SmsServiceError):
    code = ErrorCode.TEMPLATE_NOT_FOUND
    default_message = gettext_noop("SMS template not found.")
class TemplateNotVerifiedError(SmsServiceError):
    code = ErrorCode.TEMPLATE_NOT_VERIFIED
    default_message = gettext_noop("SMS template not verified.")
class SignatureNotVerifiedError(SmsServiceError):
    code = ErrorCode.TEMPLATE_NOT_VERIFIED
    default_message = gettext_noop("SMS sign not verified")
class TemplateRenderError(SmsServiceError):
    code = ErrorCode.TEMPLATE_RENDER_FAILED
    default_message = gettext_noop("Fails to render SMS template.")
class ValidateTokenMissingError(SmsServiceError):
    code = ErrorCode.VALIDATE_TOKEN_MISSING
    default_message = gettext_noop("Missing validate token.")


class InvalidValidateTokenError(SmsServiceError):
    """A validate_token that is unknown (or another app's), used or expired: the
    same number as a missing one, since the client's remedy is the same (solve a
    new CAPTCHA); the message says which."""

    code = ErrorCode.VALIDATE_TOKEN_MISSING
    default_message = gettext_noop("Invalid validate token.")


class InvalidCaptchaError(SmsServiceError):
    """verifyCaptcha refused: wrong answer, or a challenge that is unknown, already
    answered or expired. LeanCloud documents no number of its own for this; 603
    is its "wrong, expired or reused code" (the client asks for a new one)."""

    code = ErrorCode.INVALID_CODE
    default_message = gettext_noop("Invalid captcha code.")


class CaptchaImageNotFoundError(SmsServiceError):
    code = ErrorCode.NOT_FOUND
    http_status = 404
    default_message = gettext_noop("Captcha not found or expired.")


class MessageTooLongError(SmsServiceError):
    default_message = gettext_noop("The message is longer than the server's MAX_MESSAGE_LENGTH.")
# --- Phone users ------------------------------------------------------------------------


class InvalidEmailError(SmsServiceError):
    code = ErrorCode.INVALID_EMAIL
    default_message = gettext_noop("The email address was invalid.")
class DuplicateValueError(SmsServiceError):
    code = ErrorCode.DUPLICATE_VALUE
    default_message = gettext_noop("A unique field was given a value that is already taken.")
class UsernameMissingError(SmsServiceError):
    code = ErrorCode.USERNAME_MISSING
    default_message = gettext_noop("Username is missing or empty")
class PasswordMissingError(SmsServiceError):
    code = ErrorCode.PASSWORD_MISSING
    default_message = gettext_noop("Password is missing or empty.")
class UsernameTakenError(SmsServiceError):
    code = ErrorCode.USERNAME_TAKEN
    default_message = gettext_noop("Username has already been taken.")
class EmailTakenError(SmsServiceError):
    code = ErrorCode.EMAIL_TAKEN
    default_message = gettext_noop("Email has already been taken.")
class SessionRequiredError(SmsServiceError):
    code = ErrorCode.SESSION_REQUIRED
    http_status = 403
    default_message = gettext_noop("The user cannot be altered by a client without the session.")
class PasswordMismatchError(SmsServiceError):
    code = ErrorCode.PASSWORD_MISMATCH
    default_message = gettext_noop("The username and password mismatch.")
class UserNotFoundError(SmsServiceError):
    code = ErrorCode.USER_NOT_FOUND
    default_message = gettext_noop("Could not find user.")
class PhoneNumberNotFoundError(SmsServiceError):
    code = ErrorCode.PHONE_NUMBER_NOT_FOUND
    default_message = gettext_noop("A user with the specified mobile phone number was not found.")
class PhoneNumberTakenError(SmsServiceError):
    code = ErrorCode.PHONE_NUMBER_TAKEN
    default_message = gettext_noop("Mobile phone number has already been taken.")
class PhoneNumberNotVerifiedError(SmsServiceError):
    code = ErrorCode.PHONE_NUMBER_NOT_VERIFIED
    default_message = gettext_noop("Mobile phone number isn't verified.")
class InvalidUsernameError(SmsServiceError):
    code = ErrorCode.INVALID_USERNAME
    default_message = gettext_noop("Invalid username, it must be a non-blank string.")
class InvalidPasswordError(SmsServiceError):
    code = ErrorCode.INVALID_PASSWORD
    default_message = gettext_noop("Invalid password, it must be a non-blank string.")
class LoginLockedError(SmsServiceError):
    code = ErrorCode.LOGIN_LOCKED
    default_message = gettext_noop("登录失败次数超过限制，请稍候再试，或者通过忘记密码重设密码。")
# --- Provider errors (raised by backends, handled by the delivery service) ---------


class ProviderTemplateMissingError(SmsServiceError):
    """A template-based provider on the message's route has no template mapped
    for the text (raised before anything is held or charged)."""

    code = ErrorCode.TEMPLATE_NOT_FOUND
    default_message = gettext_noop("The template has no provider template for this provider.")


class ProviderError(SmsServiceError):
    """A provider call failed. ``raw`` keeps the provider's reply for the event log."""

    code = ErrorCode.PROVIDER_SEND_FAILED
    default_message = gettext_noop("Fails to send message.")
    def __init__(self, message: str | None = None, *, raw: Any = None, **context: Any):
        super().__init__(message, **context)
        self.raw = raw


class ProviderTemporaryError(ProviderError):
    """Safe to retry: the provider did not take the message (429, 5xx, connect error)."""


class ProviderRejectedError(ProviderError):
    """Permanent: the provider refused the message; retrying cannot help."""


class ProviderOutcomeUnknownError(ProviderError):
    """The request may have reached the provider (e.g. read timeout): never resend."""


class SendCancelled(ProviderError):
    """Raised by a ``pre_send`` receiver to stop a message before the provider is
    called. The outbox marks the message failed (not billed) with the reason."""

    default_message = gettext_noop("The send was cancelled.")
# --- Configuration errors: never swallowed by retry paths ----------------------------


class SmsServiceConfigurationError(ImproperlyConfigured):
    """A setting is missing or wrong; the message names the key to fix."""


class SmsServiceImproperlyInstalled(SmsServiceConfigurationError, ImportError):
    def __init__(self, missing_package: str, extra: str) -> None:
        super().__init__(
            f"{missing_package} is not installed: "
            f'pip install "django-sms-service[{extra}]"'
        )
