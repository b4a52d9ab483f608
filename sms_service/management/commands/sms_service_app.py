"""Create, update and show apps from the command line.

    manage.py sms_service_app create "My App" [--company …] [--app-id … --app-key … --master-key …]
    manage.py sms_service_app update APP_ID --set allow_international=true --set name="New name"
    manage.py sms_service_app show APP_ID
    manage.py sms_service_app rotate-key APP_ID --key master_key [--grace-hours 24] --reason "…"
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from sms_service.models import App
from sms_service.services import tenants


class Command(BaseCommand):
    help = "Create, update and show SMS apps (tenants)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create an app and print its keys as JSON")
        create.add_argument("name")
        create.add_argument("--company", default="")
        create.add_argument("--owner-email", default="")
        create.add_argument("--app-id")
        create.add_argument("--app-key")
        create.add_argument("--master-key")
        update = sub.add_parser("update", help="change settings: --set field=value")
        update.add_argument("app_id")
        update.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
        show = sub.add_parser("show", help="print an app's keys and settings as JSON")
        show.add_argument("app_id")
        rotate = sub.add_parser(
            "rotate-key",
            help="replace the app key or master key (audited) and print the new keys",
        )
        rotate.add_argument("app_id")
        rotate.add_argument("--key", required=True, choices=tenants.ROTATABLE_KEYS)
        rotate.add_argument(
            "--grace-hours", type=float, default=0,
            help="hours the old key keeps working (default 0: it stops at once)",
        )
        rotate.add_argument("--reason", default="", help="kept in the audit entry")
        self.add_extra_actions(sub)

    def add_extra_actions(self, sub) -> None:
        """Hook for more sub-commands (billing adds ``topup``)."""
        topup = sub.add_parser("topup", help="add money to an app's balance (audited)")
        topup.add_argument("app_id")
        topup.add_argument("amount", help="a decimal amount, e.g. 100 or 12.50")
        topup.add_argument("--reason", required=True, help="kept in the ledger")
        topup.add_argument("--idempotency-key", default="",
                           help="repeat-safe: a second run with the same key adds nothing")

    def do_topup(self, *, app_id, amount, reason, idempotency_key, **_):
        import getpass

        from sms_service.exceptions import SmsServiceError
        from sms_service.services import billing

        app = self.get_app(app_id)
        try:
            # No Django user runs a command: name the OS account in the audit trail.
            billing.top_up(app=app, amount=amount, actor=None,
                           reason=f"{reason} [manage.py by {getpass.getuser()}]",
                           idempotency_key=idempotency_key)
        except SmsServiceError as exc:
            raise CommandError(exc.message) from exc
        return app

    def handle(self, *args, action: str, **options):
        try:
            app = getattr(self, f"do_{action.replace('-', '_')}")(**options)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if app is not None:
            self.stdout.write(json.dumps(tenants.describe_app(app), indent=2, ensure_ascii=False))

    def get_app(self, app_id: str) -> App:
        app = App.objects.filter(app_id=app_id).first()
        if app is None:
            raise CommandError(f"No app with app id {app_id!r}.")
        return app

    def do_create(self, *, name, company, owner_email, app_id, app_key, master_key, **_):
        if app_id and App.objects.filter(app_id=app_id).exists():
            raise CommandError(f"An app with app id {app_id!r} exists already.")
        return tenants.create_app(name=name, company_name=company, owner_email=owner_email,
                               app_id=app_id, app_key=app_key, master_key=master_key)

    def do_update(self, *, app_id, set, **_):  # noqa: A002 (argparse name)
        changes = {}
        for item in set:
            field, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--set takes FIELD=VALUE, not {item!r}")
            changes[field.strip()] = value
        if not changes:
            raise CommandError("Nothing to change: give at least one --set FIELD=VALUE.")
        return tenants.update_app(app=self.get_app(app_id), changes=changes)

    def do_show(self, *, app_id, **_):
        return self.get_app(app_id)

    def do_rotate_key(self, *, app_id, key, grace_hours, reason, **_):
        import getpass
        from datetime import timedelta

        if grace_hours != grace_hours or grace_hours < 0:  # NaN or negative
            raise CommandError("--grace-hours takes a number of hours, 0 or more.")
        app = self.get_app(app_id)
        tenants.rotate_key(app=app, which=key, grace=timedelta(hours=grace_hours),
                        via=f"manage.py by {getpass.getuser()}", reason=reason)
        until = getattr(app, f"previous_{key}_until")
        self.stderr.write(
            f"The old {key.replace('_', ' ')} works until {until:%Y-%m-%d %H:%M %Z}."
            if until else f"The old {key.replace('_', ' ')} stopped working now."
        )
        return app
