"""Display forms of DICOM values: NHS numbers as `943 476 5919`, dates as `14 Feb 1980`, names readable."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template

from dicomkit import nhs

register = template.Library()


@register.filter
def nhs_format(value: str) -> str:
    digits = str(value or "")
    return nhs.format_nhs(digits) if len(digits) == 10 and digits.isdigit() else digits


@register.filter
def dicom_date(value: str) -> str:
    try:
        return datetime.strptime(str(value or "").strip(), "%Y%m%d").replace(tzinfo=UTC).strftime("%d %b %Y")
    except ValueError:
        return value or "—"


@register.filter
def person_name(value: str) -> str:
    """`Family^Given^Middle` as `FAMILY, Given Middle`, the way NHS systems show names."""
    family, _, rest = str(value or "").partition("^")
    given = " ".join(p for p in rest.split("^")[:2] if p)
    if not family:
        return given or "—"
    return f"{family.upper()}, {given}" if given else family.upper()
