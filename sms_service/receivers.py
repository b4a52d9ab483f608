"""The app's own signal receivers, connected from AppConfig.ready().

Cache invalidation has one mechanism: the models whose rows are cached are
listed in :func:`connect`, and saving or deleting one drops the cache entries
built from it (:func:`sms_service.caching.forget`): the app's API view for apps,
signatures and fixed-code numbers, the price table for prices. Changes made with
``QuerySet.update()`` send no signal and wait for the entries to expire.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save


def _forget_app(sender: Any, instance: Any, **kwargs: Any) -> None:
    from .models import App
    from .services.tenants import forget_app

    if isinstance(instance, App):
        forget_app(instance.app_id)
    elif getattr(instance, "app_id", None):
        app_id = App.objects.filter(pk=instance.app_id).values_list("app_id", flat=True).first()
        if app_id:
            forget_app(app_id)


def _forget_prices(sender: Any, **kwargs: Any) -> None:
    from .services.billing import forget_prices

    forget_prices()


def connect() -> None:
    from .models import App, FixedCodeNumber, Price, Signature

    cached = [(App, _forget_app), (Signature, _forget_app), (FixedCodeNumber, _forget_app),
              (Price, _forget_prices)]
    for model, forget in cached:
        post_save.connect(forget, sender=model, dispatch_uid=f"sms_forget_{model.__name__}")
        post_delete.connect(forget, sender=model,
                            dispatch_uid=f"sms_forget_del_{model.__name__}")
