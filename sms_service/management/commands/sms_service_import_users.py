"""Import the users of a LeanCloud app from its ``_User`` export.

    manage.py sms_service_import_users APP_ID EXPORT_FILE [--no-progress]

JSON lines or a JSON array. Each row is imported in a transaction of its own; a
bad row is reported with its line number and skipped; rows whose ``objectId``
the app already has are skipped, so the command can be run again safely.
Passwords keep LeanCloud's hash (``sms_service.hashers.LeanCloudPasswordHasher``,
which must be in ``PASSWORD_HASHERS``) and are re-hashed on first login.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from sms_service.models import App
from sms_service.services.user_import import ExportReader, RowError, import_row

HASHER = "sms_service.hashers.LeanCloudPasswordHasher"


class Command(BaseCommand):
    help = "Import users from a LeanCloud _User export (JSON lines or a JSON array)."

    def add_arguments(self, parser):
        parser.add_argument("app_id", help="the app (tenant) the users join")
        parser.add_argument("export_file", help="LeanCloud's _User export")
        parser.add_argument("--no-progress", action="store_true",
                            help="no progress bar (it is off anyway when stderr is not a terminal)")

    def execute(self, *args, **options):
        # tqdm redraws its bar with "\r" on the raw stream (OutputWrapper would
        # end every write with a newline).
        self._progress_stream = options.get("stderr") or sys.stderr
        return super().execute(*args, **options)

    def handle(self, *, app_id, export_file, no_progress, **options):
        try:
            app = App.objects.get(app_id=app_id)
        except App.DoesNotExist as exc:
            raise CommandError(f"No app with id {app_id!r}.") from exc
        if HASHER not in settings.PASSWORD_HASHERS:
            raise CommandError(
                f"Add {HASHER!r} to PASSWORD_HASHERS (after your default hasher), or "
                "imported users could not log in with their LeanCloud passwords."
            )
        try:
            reader = ExportReader(export_file)
        except OSError as exc:
            raise CommandError(f"Cannot read {export_file}: {exc.strerror or exc}") from exc

        created = existing = bad = 0
        # tqdm draws on stderr; disable=None turns it off when that is not a terminal.
        progress = tqdm(total=reader.total, unit="B", unit_scale=True, desc="users",
                        disable=True if no_progress else None, file=self._progress_stream)
        done = 0
        try:
            for row in reader:
                progress.update(row.position - done)
                done = row.position
                try:
                    if row.error:
                        raise RowError(row.error)
                    if import_row(app=app, data=row.data):
                        created += 1
                    else:
                        existing += 1
                except RowError as exc:
                    bad += 1
                    progress.write(f"{export_file}:{row.line}: skipped: {exc}",
                                   file=self._progress_stream)
        except UnicodeDecodeError as exc:
            raise CommandError(f"{export_file} is not UTF-8 text.") from exc
        finally:
            progress.close()
        self.stdout.write(
            f"{created} users imported, {existing} already there, {bad} rows skipped."
        )
