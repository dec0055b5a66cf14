"""Allowed hours, as a regional administrator writes them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from region.windows import allowed, parse, seconds_until_allowed

LONDON = ZoneInfo("Europe/London")
NIGHTS_AND_WEEKENDS = "mon-fri 19:00-07:00, sat-sun"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2026: the 7th is a Monday."""
    return datetime(2026, 12, 7 + day, hour, minute, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(0, 12), False),  # Monday midday
        (at(0, 19), True),  # Monday evening
        (at(1, 6, 59), True),  # Tuesday before seven: Monday night's window
        (at(1, 7), False),
        (at(4, 23), True),  # Friday night
        (at(5, 12), True),  # Saturday
        (at(6, 23, 59), True),  # Sunday
        (at(0, 6), False),  # Monday early: Sunday's window is the whole day, ending at midnight
    ],
)
def test_nights_and_weekends(settings, moment, expected):
    settings.TIME_ZONE = "Europe/London"
    assert allowed(NIGHTS_AND_WEEKENDS, moment) is expected


def test_blank_means_any_time():
    assert allowed("", at(0, 12))
    assert seconds_until_allowed("", at(0, 12)) == 0


def test_outside_its_hours_it_knows_when_to_look_again(settings):
    settings.TIME_ZONE = "Europe/London"
    assert seconds_until_allowed(NIGHTS_AND_WEEKENDS, at(0, 12)) == pytest.approx(7 * 3600, abs=300)


@pytest.mark.parametrize("spec", ["weekdays", "mon-fri 25:00-07:00", "19-07", "mon-fri 19:00"])
def test_a_spec_it_cannot_read_is_refused_saying_which_part(spec):
    with pytest.raises(ValidationError, match="allowed_hours"):
        parse(spec)
