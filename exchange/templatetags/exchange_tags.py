"""Display forms of DICOM values, one convention everywhere: NHS numbers as `943 476 5919`, dates as
`30 Dec 1992`, names as NHS systems write them, `KHAN, Priya`."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django import template

from dicomkit import nhs

register = template.Library()


@register.filter
def nhs_format(value: str) -> str:
    digits = str(value or "")
    return nhs.format_nhs(digits) if len(digits) == 10 and digits.isdigit() else digits


def _as_date(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    for pattern in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC).date()
        except ValueError:
            continue
    return None


@register.filter
def dicom_date(value) -> str:
    """A DICOM DA (19921230), an ISO date (1992-12-30) or a date, as `30 Dec 1992`; "—" when absent."""
    parsed = _as_date(value)
    if parsed is None:
        return str(value) if value else "—"
    return f"{parsed.day} {parsed:%b %Y}"  # as Django's "j M Y" elsewhere: 1 Nov 2026


@register.filter
def person_name(value: str) -> str:
    """A DICOM PN, `Family^Given^Middle^Prefix^Suffix` (its alphabetic group, already decoded from the
    file's character set), as NHS systems show a patient: `FAMILY, Given Middle (Prefix)`."""
    alphabetic = str(value or "").split("=")[0]
    parts = [*alphabetic.split("^"), "", "", "", ""][:5]
    family, given, middle, prefix, suffix = (p.strip() for p in parts)
    forenames = " ".join(p for p in (given, middle) if p)
    if not family:
        return forenames or "—"
    name = f"{family.upper()}, {forenames}" if forenames else family.upper()
    extras = " ".join(p for p in (prefix, suffix) if p)
    return f"{name} ({extras})" if extras else name


@register.filter
def sex_label(value: str) -> str:
    return {"M": "Male", "F": "Female", "O": "Other", "U": "Not known"}.get(str(value or "").upper(), "Not known")


@register.inclusion_tag("includes/patient_banner.html")
def patient_banner(patient: dict, heading: str = "") -> dict:
    """The patient, before anything is done with their images: name, NHS number, local ID with its
    issuer, birth date and sex. `patient` is a study summary (exchange.services.StudyRow.as_json shape)."""
    return {"p": patient or {}, "heading": heading}
