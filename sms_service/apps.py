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
        )
        from .api import schema  # noqa: F401  (OpenAPI extension for the auth headers)

        receivers.connect()
