"""Field validation shared by every config (kept here so that `forcing/` stays self-contained).

Each check raises :class:`ConfigError`, whose message names the field, the bad value and the
allowed range, e.g. ``min_thinking_tokens=-1 is invalid: allowed an integer in [0, inf]``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Sequence, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is invalid; the message names the field and the allowed values."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is invalid: allowed {allowed}")


def check_int(field: str, value: Any, lo: int | None = None, hi: int | None = None) -> None:
    """Raise ConfigError unless ``value`` is an int (not a bool) within [lo, hi]."""
    rng = f"an integer in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, value, rng)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(field, value, rng)


def check_float(field: str, value: Any, lo: float, hi: float, lo_open: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a real number in [lo, hi] (or (lo, hi])."""
    rng = f"a number in {'(' if lo_open else '['}{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, value, rng)
    if value != value or value > hi or value < lo or (lo_open and value == lo):  # NaN is no number
        raise ConfigError(field, value, rng)


def check_choice(field: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(field, value, "one of " + ", ".join(repr(c) for c in choices))


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(where or cls.__name__, data, "a mapping of field names to values")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(prefix + unknown[0], data[unknown[0]], "known keys: " + ", ".join(sorted(names)))
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce_tuple(hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def _coerce_tuple(hint: Any, value: Any) -> Any:
    # YAML and JSON give lists; frozen configs hold tuples so they stay hashable.
    if isinstance(value, list) and _is_tuple_hint(hint):
        return tuple(value)
    return value


def _is_tuple_hint(hint: Any) -> bool:
    if typing.get_origin(hint) is tuple:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple_hint(a) for a in typing.get_args(hint))
    return False
