"""Helpers shared by the staff pages' forms."""

from __future__ import annotations

from datetime import date

from django import forms
from django.core.exceptions import ValidationError


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: under the field it names, else at the top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


# --- dates as the NHS service manual asks: three fields, day, month and year --------------------------------

_PARTS = ("day", "month", "year")


class DatePartsWidget(forms.MultiWidget):
    """Three text boxes, `<name>_day`, `<name>_month`, `<name>_year` (never the browser's own date picker,
    whose format follows the browser's locale). A plain `<name>=YYYY-MM-DD` is read too: links, bookmarks
    and the REST API's query parameters keep working."""

    template_name = "django/forms/widgets/multiwidget.html"

    def __init__(self, attrs: dict | None = None) -> None:
        widgets = {part: forms.TextInput(attrs={"inputmode": "numeric"}) for part in _PARTS}
        super().__init__(widgets, attrs)

    def decompress(self, value) -> list:
        if isinstance(value, date):
            return [value.day, value.month, value.year]
        if isinstance(value, str):
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                return [None, None, None]
            return [parsed.day, parsed.month, parsed.year]
        return [None, None, None]

    def value_from_datadict(self, data, files, name):
        plain = data.get(name)
        if plain not in (None, ""):
            return plain
        return [data.get(f"{name}_{part}", "") for part in _PARTS]

    def value_omitted_from_data(self, data, files, name) -> bool:
        return name not in data and all(f"{name}_{part}" not in data for part in _PARTS)


class DatePartsField(forms.Field):
    """A date typed as day, month and year, with the service manual's messages ("must include a month",
    "must be a real date"). Accepts an ISO date string as well (see DatePartsWidget)."""

    widget = DatePartsWidget
    hint = "For example, 15 3 1984"

    def __init__(self, *, past_only: bool = False, **kwargs) -> None:
        self.past_only = past_only
        super().__init__(**kwargs)

    def to_python(self, value) -> date | None:
        label = self.label or "Date"
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                raise ValidationError(f"{label} must be a real date", code="invalid") from None
        parts = [str(p).strip() for p in (value or ["", "", ""])]
        if not any(parts):
            return None
        missing = [name for name, text in zip(_PARTS, parts, strict=True) if not text]
        if missing:
            raise ValidationError(f"{label} must include a {' and a '.join(missing)}", code="incomplete")
        if not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
            raise ValidationError(f"{label} must be a real date, with a 4-digit year", code="invalid")
        try:
            value = date(int(parts[2]), int(parts[1]), int(parts[0]))
        except ValueError:
            raise ValidationError(f"{label} must be a real date", code="invalid") from None
        return value

    def validate(self, value) -> None:
        super().validate(value)
        if value and self.past_only and value > date.today():  # noqa: DTZ011 - a calendar date, not an instant
            raise ValidationError(f"{self.label or 'Date'} must be today or in the past", code="future")
