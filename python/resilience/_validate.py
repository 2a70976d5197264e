"""Field validation shared by every config class.

Each checker names the field and the bad value in its message. Wrong types raise ``TypeError``;
out-of-range values, NaN and infinities raise ``ValueError``. ``bool`` is never a number here.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

__all__ = ["check_duration", "check_int", "check_name", "check_number"]


def _real(owner: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{field} must be a number, got {value!r} ({type(value).__name__})")
    result = float(value)
    if math.isnan(result) or math.isinf(result):
        raise ValueError(f"{owner}.{field} must be a finite number, got {value!r}")
    return result


def check_number(
    owner: str,
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite float within ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    result = _real(owner, field, value)
    if low is not None and (result < low or (low_open and result == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{owner}.{field} must be {bound}, got {value!r}")
    if high is not None and result > high:
        raise ValueError(f"{owner}.{field} must be <= {high}, got {value!r}")
    return result


def check_duration(owner: str, field: str, value: Any, *, positive: bool = False) -> float:
    """Seconds as a finite float ``>= 0`` (``> 0`` when ``positive``); a timedelta is accepted."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{owner}.{field} must be seconds (float) or a timedelta, "
            f"got {value!r} ({type(value).__name__})"
        )
    return check_number(owner, field, value, low=0.0, low_open=positive)


def check_int(owner: str, field: str, value: Any, *, low: int, high: int | None = None) -> int:
    """An int in ``[low, high]``.

    A finite integral float (``10.0``) is taken as that int; a bool, a non-integral float or any
    other type is a wrong type.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{field} must be an int, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{owner}.{field} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{owner}.{field} must be <= {high}, got {value!r}")
    return int(value)


def check_name(owner: str, field: str, value: Any) -> str:
    """A non-empty, non-blank string."""
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{field} must be a str, got {value!r} ({type(value).__name__})")
    if not value.strip():
        raise ValueError(f"{owner}.{field} must be a non-empty string, got {value!r}")
    return value
