"""requestSmsCode: verification codes (SMS and voice) and template messages.

One entry point, :func:`request_sms`, used by the REST API, the admin and the
bundled views. Order matters: everything that can refuse the request without
side effects runs first (switches, number, template, variables, length); then
the sending limits; then one transaction creates the message (and the code),
takes the billing hold and enqueues delivery on commit.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from .. import adapter, signals, sql, templating
from ..adapter import get_adapter
from ..conf import app_settings
from ..crypto import encrypt_message
from ..exceptions import (
    InvalidParameterError,
    OperationForbiddenError,
    SmsServiceConfigurationError,
    ValidateTokenMissingError,
)
from ..models import (
    App,
    Channel,
    CodePurpose,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
)
from ..phone import PhoneNumber, parse_destination
from . import (
    billing,
    captcha,
    codes,
    content,
    outbox,
    provider_templates,
    pumping,
    ratelimit,
)

#: Attempts at drawing a verification code that no other number holds.
_CODE_DRAWS = 5

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_VARIABLES = 30

#: Longest ``name`` / ``op`` a caller may put into the default text.
MAX_LABEL_LENGTH = 32

#: Stands for each digit of the code while the text is composed (a private-use
#: character that caller values may not contain).
PLACEHOLDER_CHAR = "\ue000"

@dataclass
class SmsRequest:
    """A parsed requestSmsCode call."""

    phone: object
    sms_type: object = "sms"
    ttl: object = None
    name: object = None
    op: object = None
    template: object = None
    sign: object = None
    validate_token: object = None
    variables: dict[str, Any] = field(default_factory=dict)
    purpose: str = CodePurpose.GENERIC
    client_ip: str | None = None


def request_sms(*, app: App, request: SmsRequest, is_master: bool = False) -> Message:
    """Validate, rate limit, create and enqueue one message. Returns the message."""
    _check_switches(app=app, request=request, is_master=is_master)
    if _given(request.validate_token):
        # Before any rate-limit counter moves: a request without a live token
        # must not use up the number's sending slots.
        captcha.check_validate_token(app=app, token=request.validate_token)
    channel = _channel(request.sms_type)
    phone = parse_destination(request.phone, allow_international=app.allow_international,
                              channel=channel, allow_landline_voice=app.allow_voice_to_landlines)
    pumping.check(app=app, phone=phone)
    ttl = _ttl(request.ttl)
    template_name = _optional_text(request.template, "template")
    sign_name = _optional_text(request.sign, "sign")
    name, op = _label(request.name, "name"), _label(request.op, "op")
    variables = _variables(request.variables)
    if channel == Channel.VOICE and template_name:
        raise InvalidParameterError(gettext_noop("A voice verification code cannot use a template."))
    if channel == Channel.VOICE:
        # A call reads the digits only: no template, no signature.
        resolved = content.ResolvedContent(signature=None, version=None,
                                           kind=MessageKind.VERIFICATION)
    else:
        resolved = content.resolve_content(app=app, template_name=template_name,
                                           sign_name=sign_name)
    with_code = channel == Channel.VOICE or resolved.kind == MessageKind.VERIFICATION
    fixed = codes.fixed_code_for(app, phone.e164) if with_code else None
    # The text is composed around a placeholder: the code itself is drawn inside
    # the transaction (it must be unique among active codes) and is the same
    # length, so length and price are already exact here.
    placeholder = PLACEHOLDER_CHAR * app_settings.CODE_LENGTH if with_code else ""
    text = _compose(app=app, name=name, op=op, resolved=resolved, variables=variables,
                    code=placeholder, ttl=ttl, channel=channel)
    kind = MessageKind.VERIFICATION if channel == Channel.VOICE else resolved.kind
    route = _route(app=app, phone=phone, channel=channel, kind=kind)
    # A template-based provider on the route needs its template mapped: refused
    # here, before anything is held or charged.
    values = None
    if provider_templates.check_route(app=app, version=resolved.version, channel=channel,
                                      aliases=route):
        values = _template_values(app=app, request=request, resolved=resolved,
                                  variables=variables, code=placeholder, ttl=ttl,
                                  channel=channel)
    quote = billing.quote(app=app, phone=phone, channel=channel, text=text)
    budget_signature: int | None
    if resolved.signature is not None:
        budget_signature = resolved.signature.pk
    else:
        budget_signature = content.voice_signature_id(app=app, sign_name=sign_name)
    # A code to a real number is counted for the pumping defence in the same
    # round trip as the limits, taken back if the send then fails.
    counting = None
    if with_code and fixed is None:
        counting = pumping.sent_counting(app=app, phone=phone.e164, region=phone.region,
                                         cache_alias=app_settings.RATE_LIMIT_CACHE)
    try:
        counted = ratelimit.check_send(app=app, phone=phone, channel=channel,
                                       kind=resolved.kind, signature_id=budget_signature,
                                       client_ip=request.client_ip, then=counting)
    except BaseException:
        if counting is not None:
            counting.not_counted(failed=False)
        raise
    if counted is None and counting is not None:
        counting.not_counted(failed=True)
        counting = None  # failed there: counted after the send
    try:
        message = _commit_drawing(app=app, request=request, phone=phone, channel=channel,
                                  resolved=resolved, text=text, placeholder=placeholder,
                                  quote=quote, ttl=ttl, with_code=with_code, fixed=fixed,
                                  backend=route[0], values=values)
    except BaseException:
        if counting is not None:
            counting.undo()
        raise
    if counting is not None:
        counting.judge(counted)
    elif with_code and not message.is_test:
        pumping.record_sent(app=app, phone=phone.e164, region=phone.region)
    if with_code:
        signals.code_sent.send_robust(sender=Message, app=app, phone=phone.e164,
                                      purpose=request.purpose, message=message)
    return message


def _commit_drawing(**kwargs: Any) -> Message:
    """:func:`_commit`, drawing another code when the one drawn is held by
    another number of the app (at most ``_CODE_DRAWS`` draws)."""
    draws = 1
    while True:
        try:
            return _commit(**kwargs)
        except codes.CodeCollisionError as collision:
            if draws == _CODE_DRAWS:
                raise
            draws += 1
            collision.retire_if_expired()


def _commit(*, app, request, phone, channel, resolved, text, placeholder, quote, ttl,
            with_code, fixed, backend, values) -> Message:
    """One transaction: the code, the message, the billing hold, the enqueue."""
    connection = connections[router.db_for_write(Message)]
    if (connection.vendor == "postgresql" and fixed is None
            and not _given(request.validate_token)):
        return _commit_one_statement(
            connection=connection, app=app, request=request, phone=phone, channel=channel,
            resolved=resolved, text=text, placeholder=placeholder, quote=quote, ttl=ttl,
            with_code=with_code, backend=backend, values=values)
    with transaction.atomic():
        if _given(request.validate_token):
            # Spent with the send: a send that fails leaves it unspent.
            captcha.consume_validate_token(app=app, token=request.validate_token)
        code = ""
        if with_code:
            code = codes.issue_code(app=app, phone=phone.e164, purpose=request.purpose,
                                    ttl_minutes=ttl, fixed_code=fixed).code
        message = _create_message(app=app, phone=phone, channel=channel, resolved=resolved,
                                  text=text, placeholder=placeholder, code=code, quote=quote,
                                  is_test=fixed is not None, client_ip=request.client_ip,
                                  backend=backend, values=values)
        if message.is_test:
            MessageEvent.objects.record(message, "test number: not sent, not billed",
                                status=message.status)
        else:
            billing.hold(message=message)
            outbox.enqueue(message)
    return message


def _commit_one_statement(*, connection, app, request, phone, channel, resolved, text,
                          placeholder, quote, ttl, with_code, backend, values) -> Message:
    """:func:`_commit` as ONE statement on PostgreSQL: the billing hold, then,
    only if it was taken, the code, the message and the ledger entry.

    Outside a transaction it runs on its own (one round trip, no BEGIN and
    COMMIT), so the app's balance row is locked only from the hold to the end
    of that statement's commit. Same rows, same constraints and the same errors
    as the transaction of :func:`_commit`.
    """
    issued = None
    if with_code:
        issued = codes.new_code(app=app, phone=phone.e164, purpose=request.purpose,
                                ttl_minutes=ttl)
    message = _build_message(app=app, phone=phone, channel=channel, resolved=resolved,
                             text=text, placeholder=placeholder,
                             code=issued.code if issued else "", quote=quote, is_test=False,
                             client_ip=request.client_ip, backend=backend, values=values)
    hold = billing.hold_statement(message=message)
    parts, params = [], []
    if hold is not None:
        statement, hold_params = hold
        table = connection.ops.quote_name(App._meta.db_table)
        parts.append(f"h AS ({statement.format(table=table)} RETURNING id)")
        params += hold_params
    else:
        parts.append("h AS (SELECT 1 AS id)")
    if issued is not None:
        statement, more = sql.insert_from(issued.row, connection, "h")
        parts.append(f"c AS ({statement} {codes.UPSERT})")
        params += more
    statement, more = sql.insert_from(message, connection, "h")
    parts.append(f"m AS ({statement} RETURNING id)")
    params += more
    if hold is not None:
        statement, more = sql.insert_from(billing.hold_entry(message=message), connection, "m",
                                          computed={"message_id": "m.id"})
        parts.append(f"l AS ({statement})")
        params += more
    found = ", (SELECT id FROM c)" if issued is not None else ""
    query = f"WITH {', '.join(parts)} SELECT (SELECT id FROM h), (SELECT id FROM m){found}"
    # Inside a caller's transaction a savepoint keeps it usable after a refusal.
    scope = transaction.atomic(using=connection.alias) if connection.in_atomic_block else (
        contextlib.nullcontext())
    try:
        with scope, sql.prepared_cursor(connection) as cursor:
            cursor.execute(query, params)
            held, message_pk, *code_pk = cursor.fetchone()
    except IntegrityError as exc:
        if issued is None:
            raise
        raise codes.CodeCollisionError(app=app, purpose=request.purpose,
                                       lookup=issued.row.lookup) from exc
    if held is None:
        raise billing.refusal(app_pk=app.pk, cost=message.cost)
    message.pk = message_pk
    message._state.adding, message._state.db = False, connection.alias
    if issued is not None:
        issued.row.pk = code_pk[0]
        issued.row._state.adding, issued.row._state.db = False, connection.alias
    if hold is not None:
        billing.after_hold(message=message)
    outbox.enqueue(message)
    return message


def _check_switches(*, app: App, request: SmsRequest, is_master: bool) -> None:
    if not app.sms_enabled:
        raise OperationForbiddenError()
    if request.purpose == CodePurpose.GENERIC and not is_master and not app.sms_api_enabled:
        raise OperationForbiddenError()
    if app.require_captcha and not is_master and not _given(request.validate_token):
        raise ValidateTokenMissingError()


def _given(value: object) -> bool:
    return value is not None and value != ""


def _channel(sms_type: object) -> str:
    if sms_type in (None, "", "sms"):
        return Channel.SMS
    if sms_type == "voice":
        return Channel.VOICE
    raise InvalidParameterError('smsType must be "sms" or "voice".')


def _ttl(value: object) -> int:
    if value is None or value == "":
        return app_settings.CODE_TTL_MINUTES
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidParameterError(gettext_noop("ttl must be a whole number of minutes."))
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 4:
            raise InvalidParameterError(gettext_noop("ttl must be a whole number of minutes."))
        value = int(value)
    if not 1 <= value <= app_settings.CODE_MAX_TTL_MINUTES:
        raise InvalidParameterError(
            f"ttl must be between 1 and {app_settings.CODE_MAX_TTL_MINUTES} minutes."
        )
    return value


def _optional_text(value: object, name: str, max_length: int = 64) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidParameterError(f"{name} must be a string of at most {max_length} characters.")
    templating.check_value(name, value)
    return value


def _label(value: object, name: str) -> str | None:
    """The caller's ``name`` or ``op`` for the default text (see templating.check_label)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameterError(f"{name} must be a string.")
    templating.check_label(name, value, max_length=MAX_LABEL_LENGTH)
    if PLACEHOLDER_CHAR in value:
        raise InvalidParameterError(f"{name} contains a reserved character.")
    return value


def _variables(raw: dict[str, Any]) -> dict[str, str]:
    """Caller variables as strings; bad names, types, sizes and 【】 are refused."""
    if len(raw) > _MAX_VARIABLES:
        raise InvalidParameterError(f"At most {_MAX_VARIABLES} template variables are allowed.")
    limit = app_settings.MAX_VARIABLE_LENGTH
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not _VARIABLE_NAME.fullmatch(key):
            raise InvalidParameterError(f"Invalid template variable name: {key[:64]!r}.")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidParameterError(f"Template variable {key} must be a string or a number.")
        text = str(value)
        if len(text) > limit:
            raise InvalidParameterError(
                f"Template variable {key} is longer than {limit} characters."
            )
        if PLACEHOLDER_CHAR in text:
            raise InvalidParameterError(f"Template variable {key} contains a reserved character.")
        templating.check_value(key, text)
        if key not in templating.SYSTEM_VARIABLES:
            out[key] = text
    return out


def _compose(*, app, name, op, resolved, variables, code, ttl, channel) -> str:
    """The message text. The caller's ``name`` and ``op`` only fill the default
    text; in a template every system variable comes from the system (``name`` is
    the app's name), whatever the request says."""
    if channel == Channel.VOICE:
        return code
    if resolved.version is None:
        return _default_text(app=app, signature_text=resolved.signature.text,
                             name=name or app.name, op=op, code=code, ttl=ttl)
    system = {"name": app.name, "code": code, "ttl": ttl, "sign": resolved.signature.text,
              "template": resolved.version.template.name}
    return content.render_message(content=resolved, variables=variables, system=system)


def _default_text(*, app: App, signature_text: str, name: str, op: str | None,
                  code: str, ttl: int) -> str:
    body = get_adapter().default_text(app=app, name=name, op=op, code=code, ttl=ttl,
                                      language=app.default_language)
    if not isinstance(body, str) or body.count(code) != 1:
        raise SmsServiceConfigurationError(
            "The adapter's default_text() must return a text containing the code once."
        )
    return templating.compose(signature_text=signature_text, body=body, marketing=False)


def _route(*, app: App, phone: PhoneNumber, channel: str, kind: str) -> list[str]:
    """The backend aliases a message may go through, in order (the adapter's)."""
    return outbox.route(app=app, phone=phone.e164, channel=channel, kind=kind)


def _template_values(*, app, request, resolved, variables, code, ttl, channel) -> dict[str, str]:
    """What a provider template's parameters may name: the system variables and,
    for a template version, the caller's variables."""
    if channel == Channel.VOICE:
        return {"code": code}
    values = {"name": _optional_text(request.name, "name") or app.name, "ttl": str(ttl)}
    if code:
        values["code"] = code
    if resolved.version is None:
        lang = app.default_language if app.default_language in adapter.DEFAULT_OPS else "zh"
        values["op"] = _optional_text(request.op, "op") or adapter.DEFAULT_OPS[lang]
    else:
        values.update(variables, sign=resolved.signature.text,
                      template=resolved.version.template.name)
    return values


def _create_message(**kwargs: Any) -> Message:
    message = _build_message(**kwargs)
    message.save(force_insert=True)
    return message


def _build_message(*, app, phone: PhoneNumber, channel, resolved, text, placeholder, code,
                   quote, is_test, client_ip, backend, values) -> Message:
    shown = text.replace(placeholder, "*" * len(placeholder)) if placeholder else text
    claimed = outbox.delivers_at_commit()
    kind = MessageKind.VERIFICATION if channel == Channel.VOICE else resolved.kind
    if placeholder:
        text = text.replace(placeholder, code)
        values = values and {name: value.replace(placeholder, code)
                             for name, value in values.items()}
    return Message(
        app=app,
        phone=phone.e164,
        region=phone.region,
        channel=channel,
        kind=kind,
        template_version=resolved.version,
        signature=resolved.signature,
        body=shown,
        payload=None if is_test else encrypt_message(text, values),
        length=quote.length,
        segments=quote.segments,
        cost=0 if is_test else quote.amount,
        is_test=is_test,
        # Delivered at commit by this process: claimed as it is written (the
        # claim a worker would make, without its statement).
        status=(MessageStatus.DELIVERED if is_test else MessageStatus.SENDING if claimed
                else MessageStatus.QUEUED),
        attempts=1 if claimed and not is_test else 0,
        backend="test-number" if is_test else backend,
        provider="test-number" if is_test else "",
        client_ip=client_ip,
        finished_at=timezone.now() if is_test else None,
    )
