"""CAPTCHA before sending: challenges, images and single-use validate tokens.

Built on django-simple-captcha: its configured challenge function draws the text
(``CAPTCHA_CHALLENGE_FUNCT``), its ``CaptchaStore`` keeps the text, the
lower-cased answer and the expiry, and its image view draws the picture. This
module adds what LeanCloud's API needs on top:

* a challenge belongs to one app (:class:`~sms_service.models.CaptchaChallenge`)
  and is found only with that app's id;
* per-request size: simple-captcha's image size and text length are global
  settings, so the text is cut to ``size`` characters here and the image, drawn
  at the library's own size, is fitted into ``width`` x ``height``;
* ``verifyCaptcha`` spends the challenge whatever the answer; a right answer
  yields a random ``validate_token`` kept only as a keyed hash;
* every send consumes the token it is given, once (a conditional UPDATE: of two
  concurrent sends with one token exactly one passes).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO
from urllib.parse import urlencode

from captcha.conf import settings as captcha_settings
from captcha.models import CaptchaStore
from captcha.views import captcha_image
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from PIL import Image, ImageOps

from ..conf import app_settings
from ..crypto import token_digest, token_digests
from ..exceptions import (
    CaptchaImageNotFoundError,
    InvalidCaptchaError,
    InvalidParameterError,
    InvalidValidateTokenError,
    MasterKeyRequiredError,
    OperationForbiddenError,
    TooManyRequestsError,
)
from ..models import App, CaptchaChallenge, CaptchaValidateToken
from . import ratelimit

#: LeanCloud's bounds and defaults: (minimum, maximum, default).
WIDTH = (60, 200, 85)
HEIGHT = (30, 100, 30)
SIZE = (3, 6, 4)  # characters; master key only
TTL = (10, 180, 60)  # seconds; master key only

_TOKEN_LABEL = "captcha-validate-token"
_MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True)
class Challenge:
    """A new challenge: ``token`` is the ``captcha_token``; ``path`` the image's
    path and query (the API makes it absolute)."""

    token: str
    path: str
    expires_at: datetime


def request_captcha(
    *,
    app: App,
    width: object = None,
    height: object = None,
    size: object = None,
    ttl: object = None,
    is_master: bool = False,
    client_ip: str | None = None,
) -> Challenge:
    """Draw a challenge for ``app``. Values may be strings (query parameters);
    ``size`` and ``ttl`` need the master key."""
    _check_enabled(app)
    if not is_master and (_given(size) or _given(ttl)):
        raise MasterKeyRequiredError("size and ttl can only be set with the master key.")
    box = (_bounded(width, "width", WIDTH), _bounded(height, "height", HEIGHT))
    length = _bounded(size, "size", SIZE)
    seconds = _bounded(ttl, "ttl", TTL)
    if client_ip:
        ratelimit.take([
            ratelimit.Limit(ratelimit.WINDOW, f"captcha:ip:{client_ip}", TooManyRequestsError,
                            seconds=window, limit=count)
            for window, count in app_settings.CAPTCHA_REQUESTS_PER_IP
        ])
    text, answer = _draw(length)
    expires_at = timezone.now() + timedelta(seconds=seconds)
    token = secrets.token_urlsafe(24)
    with transaction.atomic():
        store = CaptchaStore.objects.create(challenge=text, response=answer,
                                            expiration=expires_at)
        CaptchaChallenge.objects.create(app=app, token=token, store=store,
                                        width=box[0], height=box[1])
    query = urlencode({"appId": app.app_id, "token": token})
    return Challenge(token=token, path=f"{reverse('sms_service:captcha-image')}?{query}",
                     expires_at=expires_at)


def render_image(*, app_id: object, token: object) -> bytes:
    """The PNG of a live challenge, found by app id and token together."""
    if not isinstance(app_id, str) or not isinstance(token, str):
        raise CaptchaImageNotFoundError()
    row = (
        CaptchaChallenge.objects.select_related("store", "app")
        .filter(app__app_id=app_id, token=token, store__expiration__gt=timezone.now())
        .first()
    )
    if row is None or not row.app.captcha_enabled:
        raise CaptchaImageNotFoundError()
    # Drawn at twice the size for large boxes, so they are shrunk, never blown up.
    scale = 2 if row.height > 2 * HEIGHT[2] and captcha_settings.CAPTCHA_2X_IMAGE else 1
    drawn = captcha_image(None, row.store.hashkey, scale=scale)
    if drawn.status_code != 200:  # answered (deleted) between the two queries
        raise CaptchaImageNotFoundError()
    image = Image.open(BytesIO(drawn.content))
    background = captcha_settings.CAPTCHA_BACKGROUND_COLOR
    fitted = ImageOps.pad(
        image, (row.width, row.height), method=Image.Resampling.LANCZOS,
        color=None if background == "transparent" else background,
    )
    out = BytesIO()
    fitted.save(out, "PNG")
    return out.getvalue()


def verify_captcha(*, app: App, token: object, answer: object) -> str:
    """Check ``answer`` (any case) and spend the challenge; return a validate token.

    The challenge is deleted whatever the answer: a wrong guess costs a new
    challenge. Of two concurrent answers only the one that deletes the row is
    judged; the other finds it gone.
    """
    _check_enabled(app)
    token = _required_text(token, "captcha_token")
    answer = _required_text(answer, "captcha_code")
    row = (
        CaptchaChallenge.objects.select_related("store")
        .filter(app=app, token=token)
        .first()
    )
    if row is None:
        raise InvalidCaptchaError("The captcha is unknown or has already been answered.")
    now = timezone.now()
    validate_token = secrets.token_urlsafe(32)
    with transaction.atomic():
        spent, _ = CaptchaChallenge.objects.filter(pk=row.pk).delete()
        CaptchaStore.objects.filter(pk=row.store_id).delete()
        expired = row.store.expiration <= now
        right = constant_time_compare(answer.strip().lower(), row.store.response)
        if spent and not expired and right:
            CaptchaValidateToken.objects.create(
                app=app,
                digest=token_digest(label=_TOKEN_LABEL, token=validate_token),
                expires_at=now + timedelta(seconds=app_settings.CAPTCHA_VALIDATE_TOKEN_TTL_SECONDS),
            )
    if not spent:
        raise InvalidCaptchaError("The captcha is unknown or has already been answered.")
    if expired:
        raise InvalidCaptchaError("The captcha has expired.")
    if not right:
        raise InvalidCaptchaError()
    return validate_token


def check_validate_token(*, app: App, token: object) -> None:
    """Raise unless ``token`` is a live, unused validate token of ``app``. Reads
    only: a send checks this before it touches any rate-limit counter."""
    digests = _token_digests(token)
    if not CaptchaValidateToken.objects.filter(
        app=app, digest__in=digests, used_at__isnull=True, expires_at__gt=timezone.now()
    ).exists():
        raise _refusal(app=app, digests=digests)


def consume_validate_token(*, app: App, token: object) -> None:
    """Spend ``token``: one conditional UPDATE, so it passes exactly one send.

    Call it inside the send's transaction: if the send fails afterwards the
    token is not spent.
    """
    digests = _token_digests(token)
    now = timezone.now()
    taken = CaptchaValidateToken.objects.filter(
        app=app, digest__in=digests, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if not taken:
        raise _refusal(app=app, digests=digests)


def remove_stale() -> dict[str, int]:
    """Periodic cleanup: expired challenges (with their simple-captcha rows) and
    validate tokens past their expiry, used or not."""
    now = timezone.now()
    _, by_model = CaptchaStore.objects.filter(expiration__lte=now).delete()
    tokens, _ = CaptchaValidateToken.objects.filter(expires_at__lte=now).delete()
    return {
        "challenges": by_model.get(CaptchaChallenge._meta.label, 0),
        "validate_tokens": tokens,
    }


# --- helpers -------------------------------------------------------------------------


def _check_enabled(app: App) -> None:
    if not app.captcha_enabled:
        raise OperationForbiddenError()


def _given(value: object) -> bool:
    return value is not None and value != ""


def _bounded(value: object, name: str, bounds: tuple[int, int, int]) -> int:
    """A whole number within ``bounds``; strings are coerced, blank is the default."""
    low, high, default = bounds
    if not _given(value):
        return default
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterError(f"{name} must be a whole number between {low} and {high}.")
    return value


#: simple-captcha's default challenge function, which draws with ``random``.
_LIBRARY_DEFAULT = "captcha.helpers.random_char_challenge"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _secret_letters() -> tuple[str, str]:
    """The library default's challenge (upper-case letters, answered in any
    case), drawn from the operating system's CSPRNG instead of ``random``."""
    answer = "".join(secrets.choice(_LETTERS) for _ in range(captcha_settings.CAPTCHA_LENGTH))
    return answer.upper(), answer


def _draw(length: int) -> tuple[str, str]:
    """Text and answer from simple-captcha's configured challenge function.

    Character challenges (the text is the answer, as with the default
    ``random_char_challenge``) are drawn until long enough and cut to ``length``;
    other kinds (arithmetic, words) are used as drawn and ignore ``length``.
    When the project keeps the library's default, the same letters are drawn
    with ``secrets``: ``random``'s sequence can be reconstructed from its output.
    """
    if captcha_settings.CAPTCHA_CHALLENGE_FUNCT == _LIBRARY_DEFAULT:
        generate = _secret_letters
    else:
        generate = captcha_settings.get_challenge()
    text, answer = generate()
    if text.lower() != answer.lower():
        return text, answer
    while len(text) < length:
        more_text, more_answer = generate()
        text, answer = text + more_text, answer + more_answer
    return text[:length], answer[:length]


def _required_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(f"{name} is missing, and must be a non-empty string.")
    if len(value) > _MAX_TOKEN_LENGTH:
        raise InvalidParameterError(f"{name} is longer than {_MAX_TOKEN_LENGTH} characters.")
    return value


def _token_digests(token: object) -> list[str]:
    """The token's digest under every secret key (keys rotate)."""
    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidValidateTokenError("Invalid validate token: not a token.")
    return token_digests(label=_TOKEN_LABEL, token=token)


def _refusal(*, app: App, digests: list[str]) -> InvalidValidateTokenError:
    """Why a token does not pass: said plainly (it is the caller's own token)."""
    row = CaptchaValidateToken.objects.filter(app=app, digest__in=digests).first()
    if row is None:
        return InvalidValidateTokenError("Invalid validate token: unknown to this app.")
    if row.used_at is not None:
        return InvalidValidateTokenError("Invalid validate token: already used.")
    return InvalidValidateTokenError("Invalid validate token: expired.")
