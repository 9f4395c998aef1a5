"""Validated dataclass configs that double as the command line, and YAML recipes.

The style follows TRL's `HfArgumentParser`: every config is a dataclass whose fields carry a
``help`` text in their metadata. A YAML recipe (``--config recipe.yaml``) sets defaults and
command-line flags override them. Every config validates itself in ``__post_init__`` and fails
at once with a :class:`ConfigError` naming the field and the allowed range.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from s1kit.forcing.validation import (  # noqa: F401  (re-exported: the config API lives here)
    ConfigError, _is_tuple_hint, check_choice, check_float, check_int, from_dict)

T = TypeVar("T")
log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------------------------
# resumable outputs
# ---------------------------------------------------------------------------------------------


def guard_resume(record: str | Path, settings: dict[str, Any], has_rows: bool, field: str, value: Any) -> None:
    """Refuse to resume an output whose rows were made under other settings; record this run's.

    A resumable stage appends to its output and skips the rows already there. Rows from another
    model, policy or seed would be mixed into the results without a trace, so the settings that
    decide a row are kept beside the output (``record``) and compared on every resume; a change
    is a :class:`ConfigError` naming the settings that differ and ``field`` (the output option).
    """
    record = Path(record)
    settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
    if has_rows and record.exists():
        old = json.loads(record.read_text())
        changed = sorted(k for k in old.keys() | settings.keys() if old.get(k) != settings.get(k))
        if changed:
            raise ConfigError(field, value, f"a new output, or the settings its rows were made with: it holds "
                                            f"rows made with another {', '.join(changed)} ({record}); choose "
                                            f"another {field} or delete the old output")
    elif has_rows:
        log.warning("%s has rows but no record of their settings (%s): resuming without a check", value, record.name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(settings, indent=2, sort_keys=True))


def model_identity(model: str, revision: str | None = None) -> dict[str, Any]:
    """What identifies a model's weights for :func:`guard_resume`: the id and revision, and for a
    local folder the size and modification time of its files (a retrained model in the same folder
    differs; hashing the weights of a 32B model would take minutes)."""
    path = Path(model)
    files = {}
    if path.is_dir():
        files = {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir())
                 if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".model"}}
    return {"model": model, "revision": revision, "files": files}
