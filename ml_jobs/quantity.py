"""Kubernetes resource quantities (``500m``, ``2``, ``16Gi``, ``1e3``) and durations (``90s``, ``1h30m``).

The grammar is Kubernetes' own (``k8s.io/apimachinery/pkg/api/resource``); tests check it against the
``kubernetes`` client's ``parse_quantity``. It lives here rather than importing that client because importing
the client takes half a second, and every ``ml-jobs validate`` and ``render`` would pay it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DURATION = re.compile(r"^(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$")


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity; ``ValueError`` if ``text`` is not one (``16gb``, ``2 cores``)."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(text)
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    try:
        return number.scaleb(int(suffix[1:]))
    except InvalidOperation as e:  # an exponent too large for Decimal's context
        raise ValueError(text) from e


def parse_duration(value: int | str) -> int:
    """Seconds from ``3600``, ``"90s"``, ``"45m"``, ``"1h30m"`` or ``"7d"``; ``ValueError`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(value)
    if value.isdigit():
        return int(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(value)
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def format_duration(seconds: int) -> str:
    """``5400`` -> ``"1h30m"`` (for messages and tables)."""
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


def format_quantity(value: Decimal, binary: bool) -> str:
    """A quantity for a Decimal: whole Gi/Mi for memory where exact, plain (or milli) numbers otherwise."""
    if value <= 0:
        return "0"
    if binary:
        for suffix, power in (("Gi", 3), ("Mi", 2), ("Ki", 1)):
            unit = Decimal(1024) ** power
            if value % unit == 0:
                return f"{int(value / unit)}{suffix}"
        return str(int(value))
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int(value * 1000)}m"
