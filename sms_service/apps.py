from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SmsServiceConfig(AppConfig):
    name = "sms_service"
    verbose_name = _("SMS service")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            receivers,
            tasks,  # noqa: F401  (registers the tasks the services enqueue)
        )
        from .api import schema  # noqa: F401  (OpenAPI extension for the auth headers)

        receivers.connect()
        self._add_admin_index_section()

    @staticmethod
    def _add_admin_index_section() -> None:
        """Give the default admin index an SMS section (dashboard, review queue
        with its pending count, balances, export, API docs), unless the project
        chose its own index template or switched it off (``ADMIN_INDEX_SECTION``)."""
        from django.apps import apps
        from django.contrib import admin

        from .conf import app_settings

        if not apps.is_installed("django.contrib.admin"):
            return  # an API-only project: no admin site to add to
        if app_settings.ADMIN_INDEX_SECTION and admin.site.index_template is None:
            admin.site.index_template = "sms_service/admin/index.html"
