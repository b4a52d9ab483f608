"""Provider templates: what template-based providers send for our texts.

Aliyun and Tencent Cloud send only templates registered with them. A
:class:`~sms_service.models.ProviderTemplate` maps a template version (or the
default verification text) to the provider's template id and its ordered
parameters, per backend alias. :func:`check_route` refuses a send whose route
has such a backend without a mapping, before anything is held or charged;
:func:`fill` gives the outbox what the backend needs at delivery.
"""

from __future__ import annotations

from functools import cache

from django.db.models import F, Q
from django.utils.module_loading import import_string

from ..conf import app_settings
from ..exceptions import ProviderRejectedError, ProviderTemplateMissingError
from ..models import App, ProviderTemplate, TemplateVersion


def uses_templates(alias: str) -> bool:
    """Whether the backend under ``alias`` sends provider templates only."""
    config = app_settings.BACKENDS.get(alias) or {}
    return _class_uses_templates(config.get("BACKEND", ""))


@cache
def _class_uses_templates(dotted: str) -> bool:
    try:
        return bool(getattr(import_string(dotted), "uses_templates", False))
    except ImportError:
        return False


def find(
    *, app: App, version: TemplateVersion | None, alias: str, channel: str
) -> ProviderTemplate | None:
    """The mapping for a text on a backend: the version's own, else (default
    text) the app's, else the one for every app."""
    if version is not None:
        return ProviderTemplate.objects.filter(template_version=version, backend=alias).first()
    rows = ProviderTemplate.objects.filter(
        Q(app=app) | Q(app__isnull=True),
        template_version__isnull=True, backend=alias, channel=channel,
    ).order_by(F("app_id").asc(nulls_last=True))  # the app's own first
    return rows.first()


def check_route(
    *, app: App, version: TemplateVersion | None, channel: str, aliases: list[str]
) -> bool:
    """Refuse a route with a template-based backend lacking a mapping; returns
    whether any backend on the route sends templates."""
    templated = [alias for alias in aliases if uses_templates(alias)]
    for alias in templated:
        if find(app=app, version=version, alias=alias, channel=channel) is None:
            what = (f'Template "{version.template.name}" v{version.number}' if version
                    else f"The default verification {'call' if channel == 'voice' else 'text'}")
            raise ProviderTemplateMissingError(
                f'{what} has no provider template for backend "{alias}"; '
                "map it in the admin (Provider templates)."
            )
    return bool(templated)


def fill(
    *, mapping: ProviderTemplate | None, values: dict[str, str], alias: str
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(provider template id, ordered (name, value) pairs) for a delivery.
    Raises ProviderRejectedError (the provider's side: another may send it)."""
    if mapping is None:
        raise ProviderRejectedError(
            f'no provider template is mapped for backend "{alias}"', provider_fault=True
        )
    missing = [name for name in mapping.parameters if name not in values]
    if missing:
        raise ProviderRejectedError(
            f'provider template {mapping.provider_template_id} of backend "{alias}" '
            f"needs {', '.join(missing)}, which the message does not have",
            provider_fault=True,
        )
    return mapping.provider_template_id, tuple((name, values[name]) for name in mapping.parameters)
