"""The date range and app chosen on the dashboard, the bill and the exports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import App
from ..services.exports import DateRange

PRESETS = {"today": 1, "7d": 7, "30d": 30}

#: Longest custom range, in days.
MAX_DAYS = 366


class RangeForm(forms.Form):
    """GET form: a preset (today, 7 days, 30 days) or a custom start and end."""

    range = forms.ChoiceField(
        label=_("Period"),
        choices=[("today", _("Today")), ("7d", _("Last 7 days")), ("30d", _("Last 30 days")),
                 ("custom", _("Custom"))],
        required=False,
        initial="7d",
    )
    start = forms.DateField(label=_("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False,
                          widget=forms.DateInput(attrs={"type": "date"}))
    app = forms.ModelChoiceField(label=_("App"), queryset=App.objects.only("pk", "name"),
                                 required=False, empty_label=_("All apps"))

    def __init__(self, data: Any = None, *, default: str = "7d", **kwargs: Any) -> None:
        super().__init__(data if data else None, **kwargs)
        self.default = default
        self.fields["range"].initial = default

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("range") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise forms.ValidationError(_("Give both dates of a custom period."))
            if end < start:
                raise forms.ValidationError(_("The end date is before the start date."))
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(
                    _("A period is at most %(days)d days.") % {"days": MAX_DAYS})
        return data

    @property
    def period(self) -> DateRange:
        """The chosen period (the default one while the form is unbound or invalid)."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        choice = data.get("range") or self.default
        if choice == "custom":
            return DateRange(start=data["start"], end=data["end"])
        today = timezone.localdate()
        return DateRange(start=today - timedelta(days=PRESETS[choice] - 1), end=today)

    @property
    def selected_app(self) -> App | None:
        return self.cleaned_data.get("app") if self.is_bound and self.is_valid() else None
