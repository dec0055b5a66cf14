"""NHS number rules: the one place that parses, validates and formats them.

Django-free so the DICOM layer, forms, the API and the synthetic data generator all share it.
"""

from __future__ import annotations

import random

WEIGHTS = range(10, 1, -1)


class InvalidNHSNumber(ValueError):
    """Raised with a message a clinician can act on."""


def check_digit(first_nine: str) -> int | None:
    """Modulus-11 check digit for nine digits; None when no valid number exists (remainder 10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, WEIGHTS, strict=True))
    digit = 11 - (total % 11)
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def normalise(value: str) -> str:
    """Return the ten bare digits of an NHS number typed with spaces or dashes, or raise."""
    digits = "".join(ch for ch in str(value) if ch not in " -")
    if len(digits) != 10 or not digits.isdigit():
        raise InvalidNHSNumber("An NHS number has 10 digits (spaces allowed), e.g. 943 476 5919.")
    expected = check_digit(digits[:9])
    if expected is None or expected != int(digits[9]):
        raise InvalidNHSNumber(f"{format_nhs(digits)} is not a valid NHS number: the check digit is wrong.")
    return digits


def is_valid(value: str) -> bool:
    try:
        normalise(value)
    except InvalidNHSNumber:
        return False
    return True


def format_nhs(digits: str) -> str:
    """Display form `943 476 5919`."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def synthetic(rng: random.Random | None = None) -> str:
    """A valid, obviously synthetic NHS number from the 999 range reserved for testing."""
    rng = rng or random.Random()  # noqa: S311  (test data, not secrets)
    while True:
        first_nine = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        digit = check_digit(first_nine)
        if digit is not None:
            return first_nine + str(digit)
