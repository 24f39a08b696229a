"""Argument checks shared by the method and the experiments: each names the parameter and what it accepts."""

from __future__ import annotations

import math
import numbers


def check_choice(name: str, value, choices) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_int(name: str, value, minimum: int = 1, maximum: int | None = None) -> None:
    """Refuse anything but an integer >= ``minimum`` (and <= ``maximum`` when given)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum \
            or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")


def is_number(value) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_number(name: str, value, minimum: float = 0, strict: bool = False) -> None:
    """Refuse anything but a finite number >= ``minimum`` (> ``minimum`` when ``strict``)."""
    if not is_number(value) or value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")
