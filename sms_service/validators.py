"""Field validators: leaf code shared by models, admin forms and services.

Models validate their fields here; :mod:`sms_service.services.lint` builds the
reviewers' findings on top of the same checks, so a model never imports a service.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .conf import app_settings

ERROR = "error"
WARNING = "warning"


_SIGNATURE_NAME = re.compile(r"^[\w.-]{1,64}$")


@dataclass(frozen=True)
class Finding:
    """One lint result. ``code`` is a stable id (tests and templates use it)."""

    code: str
    level: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.level == ERROR




def validate_fixed_code(value: str) -> None:
    """A fixed code has exactly ``CODE_LENGTH`` digits, like every issued code."""
    length = app_settings.CODE_LENGTH
    if not (value.isascii() and value.isdigit() and len(value) == length):
        raise ValidationError(_("The fixed code must be %(length)d digits.") % {"length": length})


# --- Signature and template names and texts ----------------------------------


def signature_name_error(name: str) -> str:
    """Why ``name`` cannot identify a signature in API calls ("" when it can)."""
    if not _SIGNATURE_NAME.match(name):
        return _(
            "Use 1-64 letters, digits, underscores, dots or dashes, without spaces."
        )
    return ""


def template_name_error(name: str) -> str:
    """Why ``name`` cannot identify a template in API calls ("" when it can)."""
    return signature_name_error(name)


def lint_signature_text(text: str, *, enforce_carrier_rules: bool) -> list[Finding]:
    """The text rules (always errors) and the mainland-China carrier rules (errors
    when the app enforces them, else warnings)."""
    findings: list[Finding] = []
    low, high = app_settings.SIGNATURE_MIN_LENGTH, app_settings.SIGNATURE_MAX_LENGTH
    if "【" in text or "】" in text:
        findings.append(Finding("sig-brackets", ERROR, _("Leave out the 【】 brackets.")))
    elif "{" in text or "}" in text or "$" in text:
        findings.append(Finding("sig-variable", ERROR, _("A signature cannot be a variable.")))
    elif not all(_is_letter_or_digit(c) for c in text):
        findings.append(
            Finding(
                "sig-characters",
                ERROR,
                _("Only letters and digits: no spaces, punctuation or symbols."),
            )
        )
    if not low <= len(text) <= high:
        findings.append(
            Finding(
                "sig-length",
                ERROR,
                _("A signature has %(low)d to %(high)d characters.")
                % {"low": low, "high": high},
            )
        )
    level = ERROR if enforce_carrier_rules else WARNING
    for code, message in _carrier_problems(text):
        findings.append(Finding(code, level, message))
    return _errors_first(findings)


def _is_letter_or_digit(char: str) -> bool:
    category = unicodedata.category(char)
    return category.startswith("L") or category == "Nd"


def _carrier_problems(text: str) -> list[tuple[str, str]]:
    problems = []
    if not 3 <= len(text) <= 8:
        problems.append(
            ("carrier-length", _("Mainland China carriers need 3 to 8 characters."))
        )
    if text and all(c.isascii() and c.isalpha() for c in text):
        problems.append(
            ("carrier-ascii", _("Mainland China carriers refuse all-English signatures."))
        )
    if text and text.isdigit():
        problems.append(
            ("carrier-digits", _("Mainland China carriers refuse all-digit signatures."))
        )
    return problems


def _errors_first(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: not f.is_error)  # stable within a level
