"""Re-send messages stuck in ``queued`` (e.g. after a broker outage)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sms_service.services import recovery


class Command(BaseCommand):
    help = "Re-dispatch messages stuck in 'queued'; mark abandoned 'sending' rows 'unknown'."

    def handle(self, *args, **options):
        result = recovery.redispatch_stuck()
        self.stdout.write(
            f"re-dispatched {result['requeued']} queued message(s); "
            f"marked {result['unknown']} abandoned message(s) unknown"
        )
