"""The app's own signal receivers, connected from AppConfig.ready().

Cache invalidation has one mechanism: the models whose rows are cached are
listed in :func:`connect`, and saving or deleting one drops the cache entries
built from it (:func:`sms_service.caching.forget`): the app's API view for apps,
signatures and fixed-code numbers, the price table for prices, an app's
webhook subscriptions for webhooks. Changes made with
``QuerySet.update()`` send no signal and wait for the entries to expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db.models.signals import post_delete, post_save

if TYPE_CHECKING:
    from django.db import models

logger = logging.getLogger(__name__)


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


def _forget_webhooks(sender: Any, instance: Any, **kwargs: Any) -> None:
    from .services.webhooks import forget_subscriptions

    forget_subscriptions(instance.app_id)


def connect() -> None:
    from .models import App, FixedCodeNumber, Price, Signature, Webhook

    cached: list[tuple[type[models.Model], Callable[..., None]]] = [
        (App, _forget_app), (Signature, _forget_app), (FixedCodeNumber, _forget_app),
        (Price, _forget_prices), (Webhook, _forget_webhooks),
    ]
    for model, forget in cached:
        post_save.connect(forget, sender=model, dispatch_uid=f"sms_forget_{model.__name__}")
        post_delete.connect(forget, sender=model,
                            dispatch_uid=f"sms_forget_del_{model.__name__}")
    connect_webhooks()


# --- Outbound webhooks: the signals of the services, turned into events -------------

_MESSAGE_EVENTS = {
    "accepted": "message.accepted",
    "delivered": "message.delivered",
    "undelivered": "message.failed",
    "failed": "message.failed",
}


def _emit(*, app: Any, event: str, data: dict[str, Any]) -> None:
    from .services import webhooks

    try:
        webhooks.emit(app=app, event=event, data=data)
    except Exception:
        # A webhook must never break what it reports on.
        logger.exception("could not queue the %s webhook", event)


def _on_status_change(sender: Any, message: Any, new_status: str, **kwargs: Any) -> None:
    event = _MESSAGE_EVENTS.get(new_status)
    if event is None:
        return
    _emit(app=message.app_id, event=event, data={
        "message_id": message.pk,
        "status": new_status,
        "mobilePhoneNumber": message.phone,
        "channel": message.channel,
        "kind": message.kind,
        "segments": message.segments,
        "cost": str(message.cost),
        "provider_message_id": message.provider_message_id,
        "error_code": message.error_code,
        "error_message": message.error_message,
    })


def _on_code_verified(sender: Any, app: Any, phone: str, purpose: str, **kwargs: Any) -> None:
    _emit(app=app, event="code.verified", data={"mobilePhoneNumber": phone, "purpose": purpose})


def _on_balance_low(sender: Any, app: Any, balance: Any, threshold: Any, **kwargs: Any) -> None:
    _emit(app=app, event="balance.low", data={"balance": str(balance),
                                              "threshold": str(threshold)})


def _content_data(item: Any) -> dict[str, Any]:
    from .models import Signature

    if isinstance(item, Signature):
        data = {"type": "signature", "name": item.name, "text": item.text}
    else:
        data = {"type": "template", "name": item.template.name, "version": item.number}
    data["override_reason"] = item.override_reason
    return data


def _on_content_approved(sender: Any, item: Any, app: Any, **kwargs: Any) -> None:
    _emit(app=app, event="content.approved", data=_content_data(item))


def _on_content_rejected(sender: Any, item: Any, app: Any, reason: str, **kwargs: Any) -> None:
    _emit(app=app, event="content.rejected", data={**_content_data(item), "reason": reason})


def connect_webhooks() -> None:
    from . import signals

    for signal, receiver in (
        (signals.delivery_status_changed, _on_status_change),
        (signals.code_verified, _on_code_verified),
        (signals.balance_low, _on_balance_low),
        (signals.content_approved, _on_content_approved),
        (signals.content_rejected, _on_content_rejected),
    ):
        signal.connect(receiver, dispatch_uid=f"sms_webhook_{receiver.__name__}")
