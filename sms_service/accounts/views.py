"""The account pages: thin views over the phone-user and CAPTCHA services.

Every page with a code has two steps posted to the same URL: ``action=send_code``
asks the service for a code (with JavaScript the page posts it in the
background and gets JSON back; without, the page re-renders), and the plain
submit completes the flow. Errors come from the services, translated into the
page's language, and are shown beside their field; what the user typed is kept
except passwords and codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from ..adapter import client_ip
from ..conf import app_settings
from ..exceptions import SmsServiceError
from ..models import App, AppUser
from ..services import users
from ..services.tenants import get_site_app
from . import forms as account_forms


def resend_wait() -> int:
    """Seconds before "send code" may be pressed again after a send: LeanCloud's
    one message per number and signature per minute."""
    return int(app_settings.RATE_LIMITS.get("signature_number_interval", 60))


def error_text(exc: SmsServiceError) -> str:
    """The service's message in the page's language (LeanCloud's English when
    the catalogue has no translation for it)."""
    return gettext(exc.message)


def safe_next(request: HttpRequest, value: str | None) -> str | None:
    """``value`` when it points into this site, else None."""
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return None


def log_member_in(request: HttpRequest, member: AppUser) -> None:
    """A Django session for the member's host user (``request.user`` from now on),
    remembered under the project's first authentication backend."""
    login(request, member.user, backend=settings.AUTHENTICATION_BACKENDS[0])


@method_decorator([never_cache, csrf_protect, sensitive_post_parameters(
    "code", "password", "password_again", "captcha_answer")], name="dispatch")
class AccountView(View):
    """One page with a form. Subclasses set the form, the template and the two
    service calls: :meth:`send` (the code) and :meth:`complete` (the flow)."""

    form_class: ClassVar[type[account_forms.AccountForm]]
    template_name: ClassVar[str]
    title: ClassVar[Any] = ""
    #: Pages without a "send code" step set this to False.
    sends_code: ClassVar[bool] = True

    app: App

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.app = get_site_app()
        return super().dispatch(request, *args, **kwargs)

    # --- the steps ------------------------------------------------------------------

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(self.make_form())

    def post(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action", "")
        if self.sends_code and action == "send_code":
            return self.send_step(self.make_form(data=request.POST).for_sending())
        if self.sends_code and action == "refresh_captcha":
            return self.captcha_step()
        form = self.make_form(data=request.POST)
        if form.is_valid():
            try:
                return self.complete(form)
            except SmsServiceError as exc:
                form.add_service_error(exc, error_text(exc))
        return self.render(form, status=200)

    def send_step(self, form: account_forms.AccountForm) -> HttpResponse:
        sent, wait = False, 0
        if form.is_valid():
            try:
                validate_token = self.validate_token(form)
            except SmsServiceError as exc:  # every CAPTCHA refusal belongs to its answer
                form.add_service_error(exc, error_text(exc), field="captcha_answer")
            else:
                try:
                    self.send(form, validate_token=validate_token)
                    sent, wait = True, resend_wait()
                except SmsServiceError as exc:
                    form.add_service_error(exc, error_text(exc), default=self.send_error_field)
                    wait = exc.retry_after or 0
        message = self.sent_message(form) if sent else ""
        if self.wants_json():
            return JsonResponse({
                "ok": sent, "message": message, "wait": wait,
                "errors": {name: list(errs) for name, errs in (form.errors or {}).items()},
                "captcha": self.new_captcha(form),
            }, status=200 if sent else 400)
        return self.render(form, sent_message=message, wait=wait)

    def captcha_step(self) -> HttpResponse:
        """A new CAPTCHA picture; what was typed stays (a new picture is no mistake,
        so nothing is judged)."""
        form = self.make_form(initial=self.request.POST.dict())
        if self.wants_json():
            return JsonResponse({"ok": True, "captcha": self.new_captcha(form)})
        return self.render(form)

    # --- for subclasses -------------------------------------------------------------

    #: The field beside which a refused send is shown when the error is not
    #: about a particular field (sending limits, a closed service).
    send_error_field: ClassVar[str | None] = "phone"

    def send(self, form: account_forms.AccountForm, *, validate_token: str | None) -> None:
        """Ask the service for the page's code (each page view implements this)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement send()")

    def complete(self, form: account_forms.AccountForm) -> HttpResponse:
        """Finish the page's step with a checked form (each page view implements this)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement complete()")

    def sent_message(self, form: account_forms.AccountForm) -> str:
        return gettext("We sent a code to %(phone)s.") % {"phone": form.cleaned_data.get("phone", "")}

    # --- helpers --------------------------------------------------------------------

    def captcha_required(self) -> bool:
        return self.sends_code and self.app.require_captcha and self.app.captcha_enabled

    def make_form(self, data=None, initial=None) -> account_forms.AccountForm:
        return self.form_class(data=data, initial=initial, captcha=self.captcha_required())

    def validate_token(self, form: account_forms.AccountForm) -> str | None:
        """The CAPTCHA's validate token when the app requires one (the answer is
        checked, and the challenge spent, here)."""
        if not self.captcha_required():
            return None
        from ..services import captcha as captcha_service

        return captcha_service.verify_captcha(
            app=self.app, token=form.cleaned_data.get("captcha_token", ""),
            answer=form.cleaned_data.get("captcha_answer", ""))

    def new_captcha(self, form: account_forms.AccountForm) -> dict[str, str] | None:
        """A fresh challenge for the form (every answer spends one)."""
        if not self.captcha_required():
            return None
        from ..services import captcha as captcha_service

        challenge = captcha_service.request_captcha(app=self.app,
                                                    client_ip=client_ip(self.request))
        if form.is_bound:
            data = cast(QueryDict, form.data).copy()  # a bound form holds request.POST
            data["captcha_token"] = challenge.token
            data["captcha_answer"] = ""
            form.data = data
        else:
            form.initial["captcha_token"] = challenge.token
        return {"token": challenge.token, "image": challenge.path}

    def wants_json(self) -> bool:
        return "application/json" in self.request.headers.get("Accept", "")

    def next_url(self) -> str | None:
        return safe_next(self.request, self.request.POST.get("next") or self.request.GET.get("next"))

    def redirect_after(self, default: str) -> HttpResponseRedirect:
        return HttpResponseRedirect(self.next_url() or default)

    def logged_in(self, member: AppUser, message: str) -> HttpResponseRedirect:
        """Log the member in, say so, and go to ``next`` or ``LOGIN_REDIRECT_URL``."""
        log_member_in(self.request, member)
        messages.success(self.request, message)
        return self.redirect_after(default_redirect())

    def member(self) -> AppUser | None:
        return users.member_for_user(app=self.app, user=self.request.user)

    def render(self, form: account_forms.AccountForm, *, status: int = 200,
               sent_message: str = "", wait: int = 0, **context: Any) -> HttpResponse:
        captcha = self.new_captcha(form)
        context = {
            "form": form, "title": self.title, "app": self.app, "captcha": captcha,
            "sent_message": sent_message, "wait": wait, "next": self.next_url() or "",
            "sends_code": self.sends_code, **self.extra_context(), **context,
        }
        return render(self.request, self.template_name, context, status=status)

    def extra_context(self) -> dict[str, Any]:
        return {}


class SignupView(AccountView):
    form_class = account_forms.SignupForm
    template_name = "sms_service/accounts/signup.html"
    title = _("Sign up")

    def send(self, form, *, validate_token):
        users.request_signup_code(app=self.app, phone=form.cleaned_data["phone"],
                                  validate_token=validate_token, client_ip=client_ip(self.request))

    def complete(self, form):
        member, created = users.signup_or_login_by_code(
            app=self.app, phone=form.cleaned_data["phone"], code=form.cleaned_data["code"],
            password=form.cleaned_data.get("password") or None,
            client_ip=client_ip(self.request))
        return self.logged_in(member, gettext("Welcome! Your account is ready.") if created
                              else gettext("This number already had an account: you are logged in."))


class CodeLoginView(AccountView):
    form_class = account_forms.CodeLoginForm
    template_name = "sms_service/accounts/login_code.html"
    title = _("Log in with a code")

    def get(self, request: HttpRequest) -> HttpResponse:
        if not self.app.allow_sms_login:  # the app's option: passwords only
            target = reverse("sms_service_accounts:login-password")
            query = request.GET.urlencode()
            return HttpResponseRedirect(f"{target}?{query}" if query else target)
        return super().get(request)

    def send(self, form, *, validate_token):
        users.request_login_code(app=self.app, phone=form.cleaned_data["phone"],
                                 validate_token=validate_token, client_ip=client_ip(self.request))

    def complete(self, form):
        member = users.login_with_code(app=self.app, phone=form.cleaned_data["phone"],
                                       code=form.cleaned_data["code"],
                                       client_ip=client_ip(self.request))
        return self.logged_in(member, gettext("You are logged in."))


class PasswordLoginView(AccountView):
    form_class = account_forms.PasswordLoginForm
    template_name = "sms_service/accounts/login_password.html"
    title = _("Log in with a password")
    sends_code = False

    def complete(self, form):
        member = users.login_with_password(app=self.app, phone=form.cleaned_data["phone"],
                                           password=form.cleaned_data["password"],
                                           client_ip=client_ip(self.request))
        return self.logged_in(member, gettext("You are logged in."))


class ResetPasswordView(AccountView):
    form_class = account_forms.ResetPasswordForm
    template_name = "sms_service/accounts/reset_password.html"
    title = _("Reset your password")

    def send(self, form, *, validate_token):
        users.request_password_reset(app=self.app, phone=form.cleaned_data["phone"],
                                     validate_token=validate_token,
                                     client_ip=client_ip(self.request))

    def complete(self, form):
        users.reset_password(app=self.app, phone=form.cleaned_data["phone"],
                             code=form.cleaned_data["code"],
                             password=form.cleaned_data["password"],
                             client_ip=client_ip(self.request))
        messages.success(self.request,
                         gettext("Your password has been changed. Log in with the new one."))
        return HttpResponseRedirect(reverse("sms_service_accounts:login-password"))


class MemberRequiredMixin(LoginRequiredMixin):
    """Logged in; the page then works on the user's membership of the site app."""

    if TYPE_CHECKING:  # provided by AccountView, which follows this mixin

        def member(self) -> AppUser | None: ...

    def get_login_url(self) -> str:
        return reverse("sms_service_accounts:login")

    def extra_context(self) -> dict[str, Any]:
        return {"member": self.member()}


class VerifyPhoneView(MemberRequiredMixin, AccountView):
    form_class = account_forms.VerifyPhoneForm
    template_name = "sms_service/accounts/verify_phone.html"
    title = _("Verify your phone number")
    send_error_field = "code"

    def send(self, form, *, validate_token):
        member = self.member()
        users.request_phone_verification(app=self.app, phone=member.phone if member else None,
                                         validate_token=validate_token,
                                         client_ip=client_ip(self.request))

    def sent_message(self, form):
        member = self.member()
        return gettext("We sent a code to %(phone)s.") % {"phone": member.phone if member else ""}

    def complete(self, form):
        users.verify_phone(app=self.app, code=form.cleaned_data["code"], member=self.member(),
                           client_ip=client_ip(self.request))
        messages.success(self.request, gettext("Your phone number is verified."))
        return self.redirect_after(reverse("sms_service_accounts:verify"))


class ChangePhoneView(MemberRequiredMixin, AccountView):
    form_class = account_forms.ChangePhoneForm
    template_name = "sms_service/accounts/change_phone.html"
    title = _("Change your phone number")

    def send(self, form, *, validate_token):
        users.request_phone_change(app=self.app, member=self.required_member(),
                                   phone=form.cleaned_data["phone"],
                                   validate_token=validate_token,
                                   client_ip=client_ip(self.request))

    def complete(self, form):
        member = users.change_phone(app=self.app, member=self.required_member(),
                                    phone=form.cleaned_data["phone"],
                                    code=form.cleaned_data["code"],
                                    client_ip=client_ip(self.request))
        messages.success(self.request, gettext("Your phone number is now %(phone)s.")
                         % {"phone": member.phone})
        return self.redirect_after(reverse("sms_service_accounts:change-phone"))

    def required_member(self) -> AppUser:
        member = users.member_for_user(app=self.app, user=self.request.user, required=True)
        assert member is not None  # required=True raises instead of returning None
        return member


@method_decorator([never_cache, csrf_protect], name="dispatch")
class LogoutView(View):
    """POST logs out (a link cannot log anyone out); GET asks to confirm."""

    template_name = "sms_service/accounts/logout.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name,
                      {"title": _("Log out"), "next": safe_next(request, request.GET.get("next")) or ""})

    def post(self, request: HttpRequest) -> HttpResponse:
        logout(request)
        messages.info(request, gettext("You are logged out."))
        return HttpResponseRedirect(safe_next(request, request.POST.get("next"))
                                    or reverse("sms_service_accounts:login"))


def default_redirect() -> str:
    """Where a log-in goes without a ``next``: the project's ``LOGIN_REDIRECT_URL``."""
    return str(settings.LOGIN_REDIRECT_URL)
