"""Field validators: leaf code shared by models, admin forms and services."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .conf import app_settings


def validate_fixed_code(value: str) -> None:
    """A fixed code has exactly ``CODE_LENGTH`` digits, like every issued code."""
    length = app_settings.CODE_LENGTH
    if not (value.isascii() and value.isdigit() and len(value) == length):
        raise ValidationError(_("The fixed code must be %(length)d digits.") % {"length": length})
