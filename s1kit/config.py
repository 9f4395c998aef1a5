"""Validated dataclass configs that double as the command line, and YAML recipes.

The style follows TRL's `HfArgumentParser`: every config is a dataclass whose fields carry a
``help`` text in their metadata. A YAML recipe (``--config recipe.yaml``) sets defaults and
command-line flags override them. Every config validates itself in ``__post_init__`` and fails
at once with a :class:`ConfigError` naming the field and the allowed range.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from s1kit.forcing.validation import (  # noqa: F401  (re-exported: the config API lives here)
    ConfigError, _is_tuple_hint, check_choice, check_float, check_int, from_dict)

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe into a dict (an empty file gives an empty dict)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "a YAML file whose top level is a mapping")
    return data


# ---------------------------------------------------------------------------------------------
# dataclass -> argparse
# ---------------------------------------------------------------------------------------------


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, group: str | None = None) -> None:
    """Add one ``--flag`` per dataclass field, with its help text and type.

    Defaults are left as ``None`` (SUPPRESS) so that a YAML recipe can set them and explicit
    flags still win: see :func:`resolve`.
    """
    target = parser.add_argument_group(group) if group else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {default!r})"
        kind = _cli_type(hints[f.name])
        if kind is bool:
            # a bare flag means true: `--smoke` as well as `--smoke false`
            target.add_argument(flag, type=_parse_bool, metavar="BOOL", nargs="?", const=True,
                                default=argparse.SUPPRESS, help=help_text)
        elif kind is tuple:
            target.add_argument(flag, type=_parse_list, metavar="A,B,...", default=argparse.SUPPRESS, help=help_text)
        else:
            target.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=help_text)


def _cli_type(hint: Any):
    if _is_tuple_hint(hint):
        return tuple
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if bool in args:
        return bool
    if int in args and str in args:
        return _int_or_str
    if int in args:
        return _parse_int_or_none if type(None) in typing.get_args(hint) else int
    if float in args:
        return float
    return _parse_str_or_none if type(None) in typing.get_args(hint) else str


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",")) if text else ()


def _int_or_str(text: str) -> int | str | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _parse_int_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _parse_str_or_none(text: str) -> str | None:
    return None if text.lower() == "none" else text


def resolve(cls: type[T], namespace: argparse.Namespace, recipe: dict[str, Any] | None = None,
            section: str | None = None) -> T:
    """Merge recipe values (defaults) with explicit flags (overrides) into a validated config."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    if recipe:
        block = recipe.get(section, {}) if section else recipe
        values.update(block or {})
    values.update({k: v for k, v in vars(namespace).items() if k in names})
    return from_dict(cls, values, where=section or "")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config (tuples become lists)."""
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
