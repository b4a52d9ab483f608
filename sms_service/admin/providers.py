"""Admin for provider templates (what Aliyun or Tencent Cloud sends for a text)
and for the blocks of the SMS pumping defence.

Mappings of a template version are edited on the version's own page (linked
from the template's version rows); the default verification text's mappings
are listed under *Provider templates*.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .._types import StrOrPromise
from ..conf import app_settings
from ..models import ProviderTemplate, PumpingBlock, TemplateVersion
from ..services import provider_templates, pumping
from .localtime import LocalTimesMixin


def _template_aliases() -> list[tuple[str, str]]:
    return [(alias, alias) for alias in app_settings.BACKENDS
            if provider_templates.uses_templates(alias)]


class ProviderTemplateForm(forms.ModelForm):
    backend = forms.ChoiceField(
        label=_("backend alias"), choices=_template_aliases,
        help_text=_("Backends whose provider sends registered templates only."),
    )
    parameters = forms.CharField(
        label=_("parameters"), required=False,
        help_text=_("Names in the provider template's order, separated by commas: "
                    "code, name, ttl, sign, template, op (default text) or the "
                    "template's own variables."),
    )

    class Meta:
        model = ProviderTemplate
        fields = ["backend", "app", "channel", "provider_template_id", "parameters"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["parameters"] = ", ".join(self.instance.parameters)

    def clean_parameters(self) -> list[str]:
        names = [n.strip() for n in self.cleaned_data["parameters"].split(",") if n.strip()]
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise ValidationError(_("Not a variable name: %s") % ", ".join(bad))
        if len(set(names)) != len(names):
            raise ValidationError(_("A name is listed twice."))
        return names


class ProviderTemplateInline(LocalTimesMixin, admin.TabularInline):
    model = ProviderTemplate
    form = ProviderTemplateForm
    fields = ["backend", "provider_template_id", "parameters"]
    extra = 1
    verbose_name = _("provider template")
    verbose_name_plural = _("provider templates (Aliyun, Tencent Cloud…)")


@admin.register(TemplateVersion)
class TemplateVersionAdmin(LocalTimesMixin, admin.ModelAdmin):
    """A version's page: its text (read-only, versions are immutable) and the
    provider templates it maps to, which stay editable."""

    fields = readonly_fields = ("template", "number", "status", "signature", "body")
    list_display = ["__str__", "status"]
    list_filter = ["status"]
    search_fields = ["template__name", "body"]
    list_select_related = ["template"]
    inlines = [ProviderTemplateInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        return {}  # reached from the template's page, not the index


@admin.register(ProviderTemplate)
class ProviderTemplateAdmin(LocalTimesMixin, admin.ModelAdmin):
    """The default verification text's mappings (and a list of all)."""

    form = ProviderTemplateForm
    list_display = ["__str__", "backend", "channel", "app", "provider_template_id", "updated_at"]
    list_filter = ["backend", "channel"]
    list_select_related = ["template_version__template", "app"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("template_version__template", "app")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["template_version"] if obj is not None and obj.template_version_id else []


class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        return [("active", _("Holding back")), ("lifted", _("Lifted"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "active":
            return queryset.filter(lifted_at__isnull=True)
        if self.value() == "lifted":
            return queryset.filter(lifted_at__isnull=False)
        return queryset


@admin.register(PumpingBlock)
class PumpingBlockAdmin(LocalTimesMixin, admin.ModelAdmin):
    """What the pumping defence held back and why; lifting is the undo."""

    list_display = ["value", "scope", "app", "created_at", "refused", "active", "lifted_by"]
    list_filter = [ActiveFilter, "scope", "app"]
    list_select_related = ["app", "lifted_by"]
    fields = readonly_fields = ("app", "scope", "value", "reason", "stats", "refused",
                                "created_at", "lifted_at", "lifted_by")
    actions = ["lift_blocks"]

    @admin.display(description=_("active"), boolean=True)
    def active(self, obj: PumpingBlock) -> bool:
        return obj.is_active

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # lifted blocks stay as the record of what was done

    @admin.action(description=_("Lift selected blocks (sends resume)"), permissions=["change"])
    def lift_blocks(self, request: HttpRequest, queryset: Any) -> None:
        lifted = sum(pumping.lift(block=block, by=request.user)
                     for block in queryset.select_related("app"))
        self.message_user(request, _("%d block(s) lifted.") % lifted, messages.SUCCESS)
