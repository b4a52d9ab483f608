"""Seed the demo: an app with content and credit, and an admin user. Idempotent."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.test.utils import override_settings
from django.urls import NoReverseMatch, reverse

from sms_service.conf import app_settings
from sms_service.models import App, Price
from sms_service.services import billing, content, tenants

DEMO_APP_NAME = "Demo"


class Command(BaseCommand):
    help = "Create (or show) the demo app and an admin user, and print their credentials."

    def add_arguments(self, parser):
        parser.add_argument("--admin-username", default="admin")

    def handle(self, *args, admin_username: str, **options):
        # The account pages use the app named by SITE_APP_ID: the demo app is that one.
        site_app_id = app_settings.SITE_APP_ID
        app = App.objects.filter(**({"app_id": site_app_id} if site_app_id
                                    else {"name": DEMO_APP_NAME})).first()
        if app is None:
            app = tenants.create_app(name=DEMO_APP_NAME, company_name="Demo Company Ltd",
                                  owner_email="owner@example.com",
                                  app_id=site_app_id or None)
            if site_app_id:  # the demo's account pages show logging in by code too
                app = tenants.update_app(app=app, changes={"allow_sms_login": "true"})
        # The demo approves its own content: no decision emails to the demo owner.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            content.seed_demo_content(app)
        self._seed_billing(app)
        app.refresh_from_db()
        password = secrets.token_urlsafe(9)
        user_model = get_user_model()
        user = user_model.objects.filter(username=admin_username).first()
        if user is None:
            user = user_model.objects.create_superuser(admin_username, "admin@example.com", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        out = self.stdout.write
        out(self.style.SUCCESS("Demo ready on http://127.0.0.1:8000"))
        out(f"  App id:      {app.app_id}")
        out(f"  App key:     {app.app_key}")
        out(f"  Master key:  {app.master_key}")
        out(f"  Balance:     {app.balance} (CN SMS 0.05 per message)")
        out(f"  Admin:       http://127.0.0.1:8000/admin/  user {admin_username!r}  "
            f"password {password!r}")
        out("  API docs:    http://127.0.0.1:8000/sms_service/docs")
        signup_path = self._signup_path() if site_app_id else None
        if signup_path:
            out(f"  Sign up:     http://127.0.0.1:8000{signup_path}  (the code is printed "
                "below)")
        out("  Try it:\n"
            f"    curl -X POST http://127.0.0.1:8000/1.1/requestSmsCode \\\n"
            f"      -H 'X-LC-Id: {app.app_id}' -H 'X-LC-Key: {app.app_key}' \\\n"
            "      -H 'Content-Type: application/json' -d '{\"mobilePhoneNumber\": \"18612345678\"}'\n"
            "  Messages are printed below by the console backend.")

    @staticmethod
    def _signup_path() -> str | None:
        """Where the project mounted the account pages, if it did."""
        try:
            return reverse("sms_service_accounts:signup")
        except NoReverseMatch:
            return None

    def _seed_billing(self, app: App) -> None:
        """Mainland prices and 100 of credit, so the demo shows billing at work."""
        for channel, price in (("sms", "0.05"), ("voice", "0.10")):
            Price.objects.get_or_create(region="CN", channel=channel,
                                        defaults={"unit_price": Decimal(price)})
        billing.top_up(app=app, amount="100", reason="demo credit",
                       idempotency_key="demo-credit")
