"""Things that come in pairs, a fixed one and a moving one: both must be given, or neither."""

from __future__ import annotations

from .errors import InputError


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and value == "")


def check_pair(
    fixed: object, moving: object, what: str, fixed_name: str, moving_name: str, verb: str = "give"
) -> None:
    """Refuse half a pair (one given, the other None or ""): ``what`` needs both ``fixed_name`` and
    ``moving_name``; the message names the one missing and how to fix it (``verb``: "give", "select")."""
    if _given(fixed) != _given(moving):
        missing = moving_name if _given(fixed) else fixed_name
        raise InputError(f"{what} needs both {fixed_name} and {moving_name}: {verb} {missing} too, or neither")
