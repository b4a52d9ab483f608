"""The app's own signal receivers, connected from AppConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save


def _forget_app(sender: Any, instance: Any, **kwargs: Any) -> None:
    from .models import App
    from .services.apps import forget_app

    if isinstance(instance, App):
        forget_app(instance.app_id)
    elif getattr(instance, "app_id", None):
        app_id = App.objects.filter(pk=instance.app_id).values_list("app_id", flat=True).first()
        if app_id:
            forget_app(app_id)


def connect() -> None:
    from .models import App, Signature, TestNumber

    for model in (App, Signature, TestNumber):
        post_save.connect(_forget_app, sender=model, dispatch_uid=f"sms_forget_{model.__name__}")
        post_delete.connect(_forget_app, sender=model,
                            dispatch_uid=f"sms_forget_del_{model.__name__}")
