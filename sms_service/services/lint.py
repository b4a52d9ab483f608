"""Pre-review lint for signatures and templates, and the sample preview.

Reviewers and authors see the same findings: signature text rules, the
mainland-China carrier rules, 【】 in variables, URLs that are only a variable,
marketing and banned wording, and the length of the final text. Findings are advice with a severity: ``error`` means the rules say no
(a reviewer should reject), ``warning`` means "look closely". Only the
signature errors block saving; template findings never block submission,
because the reviewer has the last word (word lists produce false positives).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from .. import segments, templating
from ..conf import app_settings
from ..exceptions import SmsServiceError, TemplateRenderError
from ..models import App, MessageKind, Signature, TemplateVersion
from ..validators import (  # noqa: F401  (the lint's public names; models use them too)
    ERROR,
    WARNING,
    Finding,
    _errors_first,
    lint_signature_text,
    signature_name_error,
    template_name_error,
)

# Longest ``name`` a requestSmsCode caller may pass (services.sending).
_MAX_NAME_LENGTH = 64
_URL = re.compile(r"(?:https?://|www\.)[^\s，。、；！？“”‘’（）()<>\"'【】]*", re.IGNORECASE)
_URLISH_NAME = re.compile(r"url|link|href|uri|website|domain|download", re.IGNORECASE)
_TD_SUFFIX = re.compile(r"TD\s*退[订訂]", re.IGNORECASE)


@dataclass(frozen=True)
class Preview:
    """A sample rendering as the recipient would see it, with its billing."""

    text: str
    length: int
    segments: int
    error: str = ""


# --- Signatures -----------------------------------------------------------------


def lint_signature(signature: Signature) -> list[Finding]:
    """Findings for a stored signature, as the review queue shows them."""
    findings = lint_signature_text(
        signature.text,
        enforce_carrier_rules=signature.app.enforce_carrier_signature_rules,
    )
    if not signature.source:
        findings.append(
            Finding(
                "sig-source",
                WARNING,
                _("Check that it names the app, the company, a brand or a website."),
            )
        )
    return findings


# --- Templates ------------------------------------------------------------------


def lint_template(
    *,
    body: str,
    kind: str,
    signature_text: str,
    app: App | None = None,
    template_name: str = "",
) -> list[Finding]:
    """All template findings for a body of type ``kind`` sent with a signature."""
    try:
        templating.get_compiled(body)
    except templating.TemplateSyntaxError as exc:
        return [Finding("syntax", ERROR, _("Not valid Handlebars: %s") % exc)]
    findings = [
        *_bracket_findings(body),
        *_url_findings(body),
        *_code_findings(body, kind),
        *_word_findings(body, kind),
        *_marketing_findings(body, kind, app),
    ]
    findings.extend(
        _length_findings(
            body=body,
            kind=kind,
            signature_text=signature_text,
            app=app,
            template_name=template_name,
        )
    )
    return _errors_first(findings)


def lint_version(version: TemplateVersion) -> list[Finding]:
    """Findings for a stored template version, including its signature's state."""
    template = version.template
    findings = lint_template(
        body=version.body,
        kind=template.kind,
        signature_text=version.signature.text,
        app=template.app,
        template_name=template.name,
    )
    if not version.signature.is_approved:
        findings.append(
            Finding(
                "signature-unapproved",
                WARNING,
                _("Its signature 【%(text)s】 is %(status)s; approve the signature first.")
                % {
                    "text": version.signature.text,
                    "status": version.signature.get_status_display().lower(),
                },
            )
        )
    return findings


def _bracket_findings(body: str) -> list[Finding]:
    if "【" in body or "】" in body:
        return [
            Finding(
                "brackets",
                ERROR,
                _("Remove 【】 from the body: they are reserved for the signature."),
            )
        ]
    return []


def _url_findings(body: str) -> list[Finding]:
    """A URL may contain a variable but may not be entirely a variable."""
    findings = []
    url_spans = [(m.start(), m.end(), m.group(0)) for m in _URL.finditer(body)]
    for _start, _end, url in url_spans:
        host = re.sub(r"^(?:https?://)", "", url, flags=re.IGNORECASE).split("/")[0]
        if "{{" in host:
            findings.append(
                Finding(
                    "url-variable",
                    ERROR,
                    _("The site of a link may not be a variable: %s") % url,
                )
            )
    for name, start, end in templating.expansions(body):
        inside = any(s <= start and end <= e for s, e, _url in url_spans)
        if not inside and _URLISH_NAME.search(name):
            findings.append(
                Finding(
                    "url-variable",
                    WARNING,
                    _(
                        "{{%s}} looks like a whole link as a variable; write the "
                        "link in the template (a variable may fill part of it)."
                    )
                    % name,
                )
            )
    return findings


def _code_findings(body: str, kind: str) -> list[Finding]:
    uses = sum(1 for name, _s, _e in templating.expansions(body) if name == "code")
    if kind == MessageKind.VERIFICATION and uses != 1:
        return [
            Finding(
                "code-count",
                ERROR,
                _("A verification template shows {{code}} exactly once (found %d).")
                % uses,
            )
        ]
    if kind != MessageKind.VERIFICATION and uses:
        return [
            Finding(
                "code-unused",
                WARNING,
                _("Only verification templates get a code; {{code}} will be empty."),
            )
        ]
    return []


def _matches(body: str, words: list[str]) -> list[str]:
    folded = body.casefold()
    return [w for w in words if w and w.casefold() in folded]


def _word_findings(body: str, kind: str) -> list[Finding]:
    findings = []
    if kind != MessageKind.MARKETING:
        found = _matches(body, list(app_settings.MARKETING_WORDS))
        if found:
            findings.append(
                Finding(
                    "marketing-words",
                    ERROR,
                    _(
                        "Marketing wording in a %(kind)s template (%(words)s): "
                        "choose the marketing type."
                    )
                    % {"kind": MessageKind(kind).label.lower(), "words": "、".join(found)},
                )
            )
    found = _matches(body, list(app_settings.BANNED_WORDS))
    if found:
        findings.append(
            Finding(
                "banned-words",
                ERROR,
                _("Words carriers refuse in any message: %s") % "、".join(found),
            )
        )
    return findings


def _marketing_findings(body: str, kind: str, app: App | None) -> list[Finding]:
    if kind != MessageKind.MARKETING:
        return []
    findings = []
    if app is not None and not app.company_name.strip():
        findings.append(
            Finding(
                "company-name",
                ERROR,
                _("Marketing messages need the company name set on the app."),
            )
        )
    if _TD_SUFFIX.search(body):
        findings.append(
            Finding(
                "td-suffix",
                WARNING,
                _("回复TD退订 is appended automatically; remove it from the body."),
            )
        )
    return findings


def _system_values(
    *, app: App | None, signature_text: str, template_name: str, worst: bool
) -> dict[str, Any]:
    if worst:
        return {
            "name": "N" * _MAX_NAME_LENGTH,
            "code": "0" * app_settings.CODE_LENGTH,
            "ttl": app_settings.CODE_MAX_TTL_MINUTES,
            "sign": signature_text,
            "template": template_name,
        }
    return {
        "name": app.name if app is not None else "",
        "code": "1" * app_settings.CODE_LENGTH,
        "ttl": app_settings.CODE_TTL_MINUTES,
        "sign": signature_text,
        "template": template_name,
    }


def _length_findings(
    *, body: str, kind: str, signature_text: str, app: App | None, template_name: str
) -> list[Finding]:
    limit = app_settings.MAX_MESSAGE_LENGTH
    marketing = kind == MessageKind.MARKETING
    try:
        shortest = templating.render_with_filler(
            body,
            filler="",
            values=_system_values(
                app=app, signature_text=signature_text, template_name=template_name,
                worst=False,
            ),
        )
        longest = templating.render_with_filler(
            body,
            filler="x" * app_settings.MAX_VARIABLE_LENGTH,
            values=_system_values(
                app=app, signature_text=signature_text, template_name=template_name,
                worst=True,
            ),
        )
    except TemplateRenderError:
        return [Finding("render", WARNING, _("The body could not be rendered with samples."))]
    shortest_text = templating.compose(
        signature_text=signature_text, body=shortest, marketing=marketing
    )
    longest_text = templating.compose(
        signature_text=signature_text, body=longest, marketing=marketing
    )
    if len(shortest_text) > limit:
        return [
            Finding(
                "too-long",
                ERROR,
                _("Even with empty variables the message has %(n)d characters; "
                  "more than %(limit)d are refused.")
                % {"n": len(shortest_text), "limit": limit},
            )
        ]
    if len(longest_text) > limit:
        count = segments.count(longest_text)
        return [
            Finding(
                "may-be-too-long",
                WARNING,
                _(
                    "With the longest allowed variable values the message reaches "
                    "%(n)d characters (%(segments)d billed messages); sends over "
                    "%(limit)d characters are refused."
                )
                % {"n": count.length, "segments": count.segments, "limit": limit},
            )
        ]
    return []


# --- Preview --------------------------------------------------------------------


def sample_values(body: str, samples: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sample values for a body's custom variables: ``samples`` or ``<name>``."""
    samples = samples or {}
    return {
        name: samples.get(name, f"<{name}>")
        for name in templating.template_variables(body)
        if name not in templating.SYSTEM_VARIABLES
    }


def preview(
    *,
    body: str,
    kind: str,
    signature_text: str,
    app: App | None = None,
    template_name: str = "",
    samples: Mapping[str, Any] | None = None,
) -> Preview:
    """Render a body with sample values exactly as it would be sent, with its billed length."""
    system = _system_values(
        app=app, signature_text=signature_text, template_name=template_name, worst=False
    )
    system["code"] = "123456"[: app_settings.CODE_LENGTH].ljust(app_settings.CODE_LENGTH, "0")
    try:
        compiled = templating.get_compiled(body)
        rendered = templating.render(
            compiled, templating.build_context(sample_values(body, samples), system)
        )
    except (templating.TemplateSyntaxError, SmsServiceError) as exc:
        # Shown to the author next to the body, never raised.
        return Preview(text="", length=0, segments=0, error=str(exc))
    text = templating.compose(
        signature_text=signature_text,
        body=rendered,
        marketing=kind == MessageKind.MARKETING,
    )
    count = segments.count(text)
    return Preview(text=text, length=count.length, segments=count.segments)


def preview_version(
    version: TemplateVersion, samples: Mapping[str, Any] | None = None
) -> Preview:
    """:func:`preview` for a stored version."""
    template = version.template
    return preview(
        body=version.body,
        kind=template.kind,
        signature_text=version.signature.text,
        app=template.app,
        template_name=template.name,
        samples=samples,
    )
