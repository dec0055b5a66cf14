"""Form fields the NHS service manual's way: label, hint, error message and input wired together by ids
that exist (`aria-describedby`), radios and checkbox groups in a fieldset with a legend, dates as day,
month and year, and an error summary at the top of the page linking to each field in error.

    {% load nhs_forms %}
    {% nhs_error_summary form %}
    {% nhs_field form.birth_date %}
"""

from __future__ import annotations

from django import forms, template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from portal.forms import DatePartsField

register = template.Library()


def _kind(field: forms.BoundField) -> str:
    widget = field.field.widget
    if isinstance(field.field, DatePartsField):
        return "date"
    if isinstance(widget, forms.CheckboxSelectMultiple):  # a RadioSelect subclass: ask first
        return "checkboxes"
    if isinstance(widget, forms.RadioSelect):
        return "radios"
    if isinstance(widget, forms.CheckboxInput):
        return "checkbox"
    if isinstance(widget, forms.Select):
        return "select"
    if isinstance(widget, forms.Textarea):
        return "textarea"
    if isinstance(widget, forms.HiddenInput | forms.MultipleHiddenInput):
        return "hidden"
    return "input"


_CLASSES = {"input": "nhsuk-input", "select": "nhsuk-select", "textarea": "nhsuk-textarea"}


def first_input_id(field: forms.BoundField) -> str:
    """Where the error summary's link for this field should land."""
    kind = _kind(field)
    if kind == "date":
        return f"{field.auto_id}_day"
    if kind in ("radios", "checkboxes"):
        return f"{field.auto_id}_0"
    return field.auto_id


@register.simple_tag
def nhs_field(field: forms.BoundField, width: str = "", hint: str = "") -> SafeString:
    kind = _kind(field)
    hint = hint or str(field.help_text or "") or (DatePartsField.hint if kind == "date" else "")
    hint_id = f"{field.auto_id}-hint" if hint else ""
    error_id = f"{field.auto_id}-error" if field.errors else ""
    described = " ".join(i for i in (hint_id, error_id) if i)
    context = {
        "field": field,
        "kind": kind,
        "hint": hint,
        "hint_id": hint_id,
        "error_id": error_id,
        "described": described,
        "value": field.value(),
    }
    if kind in _CLASSES:
        classes = [_CLASSES[kind]]
        if width:
            classes.append(f"nhsuk-input--width-{width}" if kind == "input" else f"nhsuk-u-width-{width}")
        if field.errors:
            classes.append(f"{_CLASSES[kind]}--error")
        attrs = {"class": " ".join(classes)}
        if described:
            attrs["aria-describedby"] = described
        context["widget"] = field.as_widget(attrs=attrs)
    elif kind == "checkbox":
        attrs = {"class": "nhsuk-checkboxes__input"}
        if described:
            attrs["aria-describedby"] = described
        context["widget"] = field.as_widget(attrs=attrs)
    elif kind == "date":
        parts = field.field.widget.decompress(field.value()) if not isinstance(field.value(), list) else field.value()
        context["parts"] = [
            {
                "name": f"{field.html_name}_{name}",
                "id": f"{field.auto_id}_{name}",
                "label": name.capitalize(),
                "value": "" if value is None else value,
                "width": 4 if name == "year" else 2,
            }
            for name, value in zip(("day", "month", "year"), parts, strict=True)
        ]
    elif kind in ("radios", "checkboxes"):
        chosen = field.value()
        chosen = {str(v) for v in (chosen if isinstance(chosen, list | tuple) else [chosen]) if v not in (None, "")}
        context["options"] = [
            {"value": value, "label": label, "id": f"{field.auto_id}_{i}", "checked": str(value) in chosen}
            for i, (value, label) in enumerate(c for c in field.field.choices if c[0] != "")
        ]
    elif kind == "hidden":
        return SafeString(str(field))
    return render_to_string("includes/field.html", context)


@register.simple_tag
def nhs_error_summary(*forms_: forms.Form) -> SafeString:
    """The box at the top of the page: every problem, each a link to its field."""
    problems = []
    for form in forms_:
        if form is None or not form.is_bound or not form.errors:
            continue
        for message in form.non_field_errors():
            problems.append({"message": message, "href": ""})
        for field in form:
            for message in field.errors:
                problems.append({"message": message, "href": f"#{first_input_id(field)}"})
    if not problems:
        return SafeString("")
    return render_to_string("includes/error_summary.html", {"problems": problems})
