"""Checks and conversions shared by the mask families' parameters.

Each check raises ``ValueError`` naming the parameter; the registry turns it into a one-line
``UsageError`` naming the family.
"""

from __future__ import annotations

import numpy as np


def integer(name: str, value: object, minimum: int) -> int:
    """``value`` as an int of at least ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def fraction(name: str, value: object, allow_zero: bool = False) -> float:
    """``value`` as a float in (0, 1], or [0, 1] with ``allow_zero`` (bools refused)."""
    low = "[0" if allow_zero else "(0"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (0 <= value <= 1 if allow_zero else 0 < value <= 1)
    ):
        raise ValueError(f"{name} must be a fraction in {low}, 1], got {value!r}")
    return float(value)


def ordered(low_name: str, low: float, high_name: str, high: float) -> None:
    """Refuse a range whose lower end exceeds its upper end."""
    if low > high:
        raise ValueError(f"{low_name} ({low}) must not exceed {high_name} ({high})")


def pixels(value: float, side: int, floor: int = 1) -> int:
    """``value`` (a fraction of ``side``) in whole pixels, at least ``floor``.

    >>> pixels(10 / 256, 256), pixels(10 / 256, 32), pixels(0.001, 32)
    (10, 1, 1)
    """
    return max(floor, round(value * side))
