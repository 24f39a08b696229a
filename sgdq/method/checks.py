"""Argument checks shared by the method and the experiments: each names the parameter and what it accepts."""

from __future__ import annotations


def check_choice(name: str, value, choices) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_int(name: str, value, minimum: int = 1) -> None:
    """Refuse anything but an integer >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
