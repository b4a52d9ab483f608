"""Forms of the account pages: they shape and label input, nothing more.

Numbers, codes and passwords are judged by the services (the same rules as the
REST API); a service error is put back beside the field it concerns with
:func:`field_for_error`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms.utils import ErrorDict
from django.utils.translation import gettext_lazy as _

from .. import exceptions as errors

#: Which field a service error belongs beside; anything else is a form error.
ERROR_FIELDS: tuple[tuple[tuple[type[errors.SmsServiceError], ...], str], ...] = (
    ((errors.ValidateTokenMissingError,), "captcha_answer"),
    ((errors.InvalidPhoneNumberError, errors.InternationalDisabledError,
      errors.PhoneNumberMissingError, errors.PhoneNumberNotFoundError,
      errors.PhoneNumberTakenError, errors.PhoneNumberNotVerifiedError,
      errors.UserNotFoundError), "phone"),
    ((errors.InvalidCodeError,), "code"),
    ((errors.PasswordMismatchError, errors.PasswordMissingError,
      errors.InvalidPasswordError), "password"),
)


def field_for_error(form: forms.Form, exc: errors.SmsServiceError,
                    default: str | None = None) -> str | None:
    """The form field ``exc`` is about, else ``default`` (None: the whole form)."""
    for classes, name in ERROR_FIELDS:
        if isinstance(exc, classes) and name in form.fields:
            return name
    return default if default in form.fields else None


class PhoneInput(forms.TextInput):
    input_type = "tel"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"autocomplete": "tel", "inputmode": "tel", "spellcheck": "false",
                          **(attrs or {})})


class CodeInput(forms.TextInput):
    """A one-time code: numeric keyboard, filled from the SMS by the phone, and
    never written back into a page."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"autocomplete": "one-time-code", "inputmode": "numeric",
                          "spellcheck": "false", "data-code-input": "", **(attrs or {})})

    def get_context(self, name, value, attrs):
        return super().get_context(name, None, attrs)


def phone_field(label=None) -> forms.CharField:
    return forms.CharField(label=label or _("Phone number"), max_length=32,
                           widget=PhoneInput(),
                           help_text=_("Mainland China numbers need no +86; others start with +."))


def code_field() -> forms.CharField:
    return forms.CharField(label=_("Verification code"), max_length=16, widget=CodeInput(),
                           help_text=_("The code in the SMS we send you."))


def password_field(label, autocomplete: str, required: bool = True, help_text="") -> forms.CharField:
    return forms.CharField(label=label, required=required, max_length=4096, strip=False,
                           help_text=help_text,
                           widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}))


class AccountForm(forms.Form):
    """Base of the page forms: errors tied to their fields for screen readers.

    ``send_fields`` are the fields the "send code" step needs; the other fields
    are not required for it.
    """

    #: Django's error store (None until the form is cleaned); not in the stubs.
    _errors: ErrorDict | None

    send_fields: tuple[str, ...] = ("phone",)
    error_css_class = "has-error"
    required_css_class = "required"

    def __init__(self, *args: Any, captcha: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if captcha:
            self.fields["captcha_token"] = forms.CharField(widget=forms.HiddenInput, required=False)
            self.fields["captcha_answer"] = forms.CharField(
                label=_("Characters in the image"), max_length=16, required=False,
                widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "off",
                                              "spellcheck": "false"}),
                help_text=_("Needed before we send a code."),
            )
        self.order_fields(self.field_order)

    def for_sending(self) -> AccountForm:
        """Only the fields of the send step are judged (the page still shows the
        others as they are)."""
        self._sending = True
        return self

    def full_clean(self) -> None:
        if getattr(self, "_sending", False):
            required = {name: field.required for name, field in self.fields.items()}
            for name, field in self.fields.items():
                field.required = field.required and name in self.send_fields
            try:
                super().full_clean()
            finally:
                for name, field in self.fields.items():
                    field.required = required[name]
            for name in list(self.errors):
                if name not in self.send_fields and not name.startswith("captcha"):
                    del self.errors[name]
        else:
            super().full_clean()
        self.describe_errors()

    def add_service_error(self, exc: errors.SmsServiceError, message: str,
                          default: str | None = None, field: str | None = None) -> None:
        """Show a service error (already translated) beside its field: ``field``,
        else the one the error is about, else ``default``, else the whole form."""
        name = field if field in self.fields else field_for_error(self, exc, default)
        if self._errors is None:
            self._errors = ErrorDict()
        self._errors.setdefault(name or NON_FIELD_ERRORS,
                                self.error_class(renderer=self.renderer)).append(message)
        self.describe_errors()

    def describe_errors(self) -> None:
        """``aria-describedby`` / ``aria-invalid`` on fields with errors."""
        for name, field in self.fields.items():
            attrs = field.widget.attrs
            ids = [i for i in attrs.get("aria-describedby", "").split() if i]
            auto_id = self[name].auto_id
            if field.help_text and f"{auto_id}_helptext" not in ids:
                ids.append(f"{auto_id}_helptext")
            error_id = f"{auto_id}_error"
            if self._errors and name in self._errors:
                attrs["aria-invalid"] = "true"
                if error_id not in ids:
                    ids.insert(0, error_id)
            else:
                attrs.pop("aria-invalid", None)
                ids = [i for i in ids if i != error_id]
            if ids:
                attrs["aria-describedby"] = " ".join(ids)


class SignupForm(AccountForm):
    phone = phone_field()
    code = code_field()
    password = password_field(_("Password"), "new-password", required=False,
                              help_text=_("Optional: lets you log in without a code."))
    field_order = ["phone", "captcha_token", "captcha_answer", "code", "password"]


class CodeLoginForm(AccountForm):
    phone = phone_field()
    code = code_field()
    field_order = ["phone", "captcha_token", "captcha_answer", "code"]


class PasswordLoginForm(AccountForm):
    phone = phone_field()
    password = password_field(_("Password"), "current-password")
    send_fields = ()


class VerifyPhoneForm(AccountForm):
    code = code_field()
    send_fields = ()
    field_order = ["captcha_token", "captcha_answer", "code"]


class ResetPasswordForm(AccountForm):
    phone = phone_field()
    code = code_field()
    password = password_field(_("New password"), "new-password")
    password_again = password_field(_("New password again"), "new-password")
    field_order = ["phone", "captcha_token", "captcha_answer", "code", "password",
                   "password_again"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password"), data.get("password_again")
        if first and second and first != second:
            self.add_error("password_again", _("The two passwords differ."))
        return data


class ChangePhoneForm(AccountForm):
    phone = phone_field(label=_("New phone number"))
    code = code_field()
    field_order = ["phone", "captcha_token", "captcha_answer", "code"]
