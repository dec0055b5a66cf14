"""Allowed hours of a migration, written as a person would: "mon-fri 19:00-07:00, sat-sun".

Each comma-separated part names days (`mon`, `mon-fri`, `sat-sun`, `daily`; none means every day) and
optionally a time range in local time; a range that ends before it starts runs past midnight, and counts
for the day it starts on ("fri 19:00-07:00" is Friday evening to Saturday morning). Blank: any time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(
    r"^(?:(?P<days>daily|(?:mon|tue|wed|thu|fri|sat|sun)(?:-(?:mon|tue|wed|thu|fri|sat|sun))?)\s*)?"
    r"(?:(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2}))?$"
)
STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time  # end <= start: runs past midnight

    def contains(self, moment: datetime) -> bool:
        clock, day = moment.time(), moment.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= clock < self.end
        if self.start == self.end:  # the whole day
            return day in self.days
        return (day in self.days and clock >= self.start) or ((day - 1) % 7 in self.days and clock < self.end)


def parse(spec: str) -> list[Window]:
    """The windows of a spec; ValidationError naming the part it cannot read. [] means any time."""
    windows = []
    for part in (p.strip().lower() for p in (spec or "").split(",")):
        if not part:
            continue
        match = _PART.match(part)
        if not match or not (match["days"] or match["start"]):
            raise ValidationError(
                {"allowed_hours": f'Cannot read "{part}": write e.g. "mon-fri 19:00-07:00, sat-sun".'}
            )
        windows.append(Window(_days(match["days"]), _clock(match["start"] or "0:00"), _clock(match["end"] or "0:00")))
    return windows


def _days(text: str | None) -> frozenset[int]:
    if not text or text == "daily":
        return frozenset(range(7))
    first, _, last = text.partition("-")
    a, b = DAYS.index(first), DAYS.index(last or first)
    return frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))


def _clock(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(0, 0)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValidationError({"allowed_hours": f"{text} is not a time of day."})
    return time(hours, minutes)


def allowed(spec: str, moment: datetime | None = None) -> bool:
    windows = parse(spec)
    local = timezone.localtime(moment or timezone.now())
    return not windows or any(w.contains(local) for w in windows)


def seconds_until_allowed(spec: str, moment: datetime | None = None) -> float:
    """0 when the spec allows `moment`; else the seconds to the next allowed moment (to within STEP)."""
    windows = parse(spec)
    local = timezone.localtime(moment or timezone.now())
    if not windows or any(w.contains(local) for w in windows):
        return 0.0
    probe = local.replace(second=0, microsecond=0)
    for _ in range(int(timedelta(days=8) / STEP)):
        probe += STEP
        if any(w.contains(probe) for w in windows):
            return max((probe - local).total_seconds(), 1.0)
    return timedelta(days=1).total_seconds()  # unreachable for a parsed spec; look again tomorrow
