"""One checker per kind of setting value, each with its own message.

Settings come from TOML (numbers, strings, booleans, any of them where
another was meant) and from the command line (always strings). Each checker
takes either, refuses what is not finite, not in range or not written in
ASCII digits (``str.isdigit()`` takes "¹", which ``int()`` then refuses;
``float()`` takes Arabic-Indic digits), and raises :class:`ConfigError`
naming the setting: ``--rrl-rate must be responses per second ..., not 'inf'``.
"""

from __future__ import annotations

from typing import Any

from dnsbl.zonefile import parse_time

#: Longest value quoted back in a message: a setting may hold any text.
_SHOWN = 40
#: Seconds the time settings may reach: a day is past any sane interval or timeout.
DAY = 86400.0
_UNITS = "smhdw"


class ConfigError(Exception):
    """The configuration cannot be used; the message says why."""


def shown(value: Any) -> str:
    """``value`` as written back to the user: quoted, and cut when long."""
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    return f"{text[:_SHOWN]}... ({len(str(value))} characters)"


def _refuse(what: str, rule: str, value: Any) -> ConfigError:
    return ConfigError(f"{what} must be {rule}, not {shown(value)}")


def _number(value: Any) -> float | None:
    """A finite-or-not float from a TOML number or an ASCII decimal string; None for
    anything else (booleans too, though Python counts them as ints)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.isascii():
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _seconds(value: Any) -> float | None:
    """Seconds from a number or a string, with rbldnsd's units (``90s``, ``5m``, ``2h``)."""
    if isinstance(value, str) and value.strip()[-1:].lower() in _UNITS and value.isascii():
        try:
            return float(parse_time(value.strip()))
        except ValueError:
            return None
    return _number(value)


def count(value: Any, what: str, low: int, high: int | None = None) -> int:
    """A whole number from ``low`` to ``high`` (None: no upper bound): workers,
    connections, a sample rate, a prefix length."""
    number = value
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        number = int(value)
    if not _whole(number, low, high):
        raise _refuse(what, f"a whole number {_bounds(low, high)}", value)
    return number


def _whole(number: Any, low: int, high: int | None) -> bool:
    """``number`` is an int (not a bool) from ``low`` to ``high``."""
    return (isinstance(number, int) and not isinstance(number, bool) and number >= low
            and (high is None or number <= high))


def _bounds(low: int, high: int | None) -> str:
    return f"from {low} up" if high is None else f"from {low} to {high}"


def interval(value: Any, what: str) -> float:
    """Seconds between periodic checks; 0 turns them off."""
    seconds = _seconds(value)
    if seconds is None or not 0 <= seconds <= DAY:  # NaN fails the comparison too
        raise _refuse(what, f"an interval in seconds from 0 to {DAY:.0f} (0: off)", value)
    return seconds


def duration(value: Any, what: str, high: float = DAY) -> float:
    """Seconds something may last or be old, more than 0 (0 would mean at once)."""
    seconds = _seconds(value)
    if seconds is None or not 0 < seconds <= high:
        raise _refuse(what, f"a duration in seconds (or with a unit: 90s, 5m, 2h), more than "
                            f"0 and at most {high:.0f}", value)
    return seconds


def ttl(value: Any, what: str) -> int:
    """A DNS TTL: whole seconds, or with a unit (``35m``), as in a ``$TTL`` line."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(value)
        return parse_time(str(value).strip())
    except ValueError:
        raise _refuse(what, "a TTL in whole seconds, or with a unit (35m, 1h, 2d, 1w), at "
                            "most 4294967295", value) from None


def rate(value: Any, what: str, high: float = 1e9, zero: str = "") -> float:
    """Events per second, more than 0 and finite (inf would limit everything);
    0 too when ``zero`` says what it means."""
    number = _number(value)
    if zero and number == 0:
        return 0.0
    if number is None or not 0 < number <= high:
        low = f"0 ({zero}) or more" if zero else "more than 0"
        raise _refuse(what, f"a rate per second, {low} and at most {high:.0f}", value)
    return number


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size(value: Any, what: str, low: int, high: int | None = None) -> int:
    """Bytes: a whole number, or a string with a unit (``"1232"``, ``"512K"``, ``"4G"``)."""
    number = value
    if isinstance(value, str) and value.isascii():
        text = value.strip().upper().removesuffix("B")
        unit = _SIZE_UNITS.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in _SIZE_UNITS else text
        if digits.isdigit():
            number = int(digits) * unit
    if not _whole(number, low, high):
        raise _refuse(what, f"a size in bytes (or with a unit: 512K, 4M) {_bounds(low, high)}",
                      value)
    return number


def fraction(value: Any, what: str) -> float:
    """A share from 0 to 1."""
    number = _number(value) if not isinstance(value, str) else None
    if number is None or not 0 <= number <= 1:
        raise _refuse(what, "a number from 0 to 1", value)
    return number


def text(value: Any, what: str, rule: str = "a string") -> str:
    """A string where TOML could give anything."""
    if not isinstance(value, str):
        raise _refuse(what, rule, value)
    return value
