"""Parsing the AUDIT_* settings (imported by portal.settings, so no Django models here). Nonsense fails loudly."""

from __future__ import annotations

import re
from datetime import date, time

from django.core.exceptions import ImproperlyConfigured

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINIMUM_RETENTION_YEARS = 8


def working_hours(text: str) -> tuple[time, time]:
    """`08:00-18:00` → (08:00, 18:00). Access outside this window, local time, is "out of hours"."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise ImproperlyConfigured(f"AUDIT_WORKING_HOURS must look like 08:00-18:00, not {text!r}.")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise ImproperlyConfigured(f"AUDIT_WORKING_HOURS has an impossible time: {text!r}.") from exc
    if start >= end:
        raise ImproperlyConfigured(f"AUDIT_WORKING_HOURS must start before it ends: {text!r}.")
    return start, end


def working_days(names: list[str]) -> frozenset[int]:
    """`mon,tue,...` → weekday numbers (Monday 0)."""
    days = set()
    for name in names:
        key = name.strip().lower()[:3]
        if key not in DAY_NAMES:
            raise ImproperlyConfigured(f"AUDIT_WORKING_DAYS names days as mon..sun, not {name!r}.")
        days.add(DAY_NAMES.index(key))
    return frozenset(days)


def holidays(values: list[str]) -> frozenset[date]:
    try:
        return frozenset(date.fromisoformat(value.strip()) for value in values if value.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"AUDIT_HOLIDAYS lists dates as YYYY-MM-DD: {exc}.") from exc


def at_least(name: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value
