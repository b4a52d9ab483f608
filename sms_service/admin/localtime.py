"""Times in the admin: in the active time zone, with the zone's name.

Django's admin shows a date-time field in the active time zone but without
saying which one ("Nov. 30, 2026, 1:05 p.m."). Every SMS admin page shows
``2026-11-30 13:05 CST`` instead: :class:`LocalTimesMixin` swaps each date-time
field of the change list and of the read-only fields of the change form for a
column that formats it that way (same label, same sort order), and the
``local_time`` template filter does the same on the SMS screens.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html

from ..localtime import local_time, zone_name

__all__ = ["LocalTimesMixin", "local_time", "zone_name"]

#: Suffixes of the admin attributes that stand in for a date-time field: a
#: change-list column (to the minute) and a read-only form field (to the second).
_COLUMN = "_local"
_FORM = "_local_time"


def _column(field: models.DateTimeField, local: str, *, seconds: bool) -> Any:
    name = field.name

    def show(obj: Any) -> str | None:
        text = local_time(getattr(obj, name), seconds=seconds)
        if not text:
            return None  # the admin's own empty value ("-"), as for its other fields
        # On one line (local-time.css): a narrow column would break it apart.
        return format_html('<span class="sms-local-time">{}</span>', text)

    show.short_description = field.verbose_name  # type: ignore[attr-defined]
    show.admin_order_field = name  # type: ignore[attr-defined]
    show.__name__ = local
    return show


class LocalTimesMixin:
    """Date-time fields of change lists and read-only fields in local time, named.

    For a ModelAdmin or an inline. Editable date-time fields keep Django's
    widgets.
    """

    model: type[models.Model]

    class Media:
        css = {"all": ["sms_service/admin/local-time.css"]}

    def _datetime_field(self, name: Any) -> models.DateTimeField | None:
        if not isinstance(name, str):
            return None
        try:
            field = self.model._meta.get_field(name)
        except Exception:  # FieldDoesNotExist, or a lookup such as "app__name"
            return None
        return field if isinstance(field, models.DateTimeField) else None

    def _local_name(self, name: Any, *, seconds: bool) -> Any:
        field = self._datetime_field(name)
        if field is None:
            return name
        local = name + (_FORM if seconds else _COLUMN)
        if local not in self.__dict__:
            # An attribute of the admin: lookup_field() and label_for_field() find it
            # by name, its label and sort order are the field's.
            setattr(self, local, _column(field, local, seconds=seconds))
        return local

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = super().get_list_display(request)  # type: ignore[misc]
        editable = set(getattr(self, "list_editable", ()) or ())
        return [name if name in editable else self._local_name(name, seconds=False)
                for name in shown]

    def get_list_display_links(self, request: HttpRequest, list_display: Any) -> Any:
        links = super().get_list_display_links(request, list_display)  # type: ignore[misc]
        if not links:
            return links
        return [self._local_name(name, seconds=False) for name in links]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The field itself stays read-only (kept out of the form); the fieldsets
        # show its local-time stand-in.
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            # A view-only page shows every field read-only: its times too.
            fields += [
                field.name for field in self.model._meta.concrete_fields
                if isinstance(field, models.DateTimeField) and field.name not in fields
            ]
        local = [self._local_name(name, seconds=True) for name in fields]
        return fields + [name for name in local if name not in fields]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = set(self.get_readonly_fields(request, obj))
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        seen: set[Any] = set()

        def swap(name: Any) -> Any:
            if isinstance(name, (list, tuple)):
                return type(name)(item for item in map(swap, name) if item is not None)
            if name in readonly:
                name = self._local_name(name, seconds=True)
            if name in seen:
                return None
            seen.add(name)
            return name

        result = []
        for title, options in fieldsets:
            fields = [item for item in map(swap, options["fields"]) if item is not None]
            result.append((title, {**options, "fields": fields}))
        return result

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> Any:
        # A stand-in keeps its field's help text.
        help_texts = {
            name + _FORM: field.help_text
            for name in self.get_readonly_fields(request, obj)
            if (field := self._datetime_field(name)) is not None and field.help_text
        }
        if help_texts:
            kwargs["help_texts"] = {**help_texts, **kwargs.get("help_texts", {})}
        return super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
