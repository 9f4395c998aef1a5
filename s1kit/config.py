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
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from s1kit.forcing.validation import (  # noqa: F401  (re-exported: the config API lives here)
    ConfigError, _is_tuple_hint, check_choice, check_float, check_int, from_dict)

T = TypeVar("T")
log = logging.getLogger(__name__)


def load_yaml(path: str | Path, sections: Sequence[str] | None = None) -> dict[str, Any]:
    """Read a YAML recipe into a dict (an empty file gives an empty dict).

    Every problem is a :class:`ConfigError` naming the file: missing, a directory, not UTF-8, a
    YAML syntax error (with line and column; tabs included), a top level that is not a mapping,
    and, with ``sections``, a top-level key that is not one of them or a section that is not a
    mapping (``policy: 5``)."""
    check_input_file("config", path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except UnicodeDecodeError as err:
        raise ConfigError("config", str(path), f"a UTF-8 YAML file (invalid byte at offset {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError("config", str(path), f"valid YAML ({_yaml_problem(err)})") from None
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "a YAML file whose top level is a mapping")
    if sections is not None:
        check_sections(path, data, sections)
    return data


def _yaml_problem(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + problem


# A top-level recipe key that is a value rather than a section.
_SCALAR_KEYS = frozenset({"preset"})


def check_sections(path: str | Path, recipe: dict[str, Any], sections: Sequence[str]) -> None:
    """Unknown sections (``generat:``) are errors listing the known ones; a section is a mapping."""
    known = sorted(sections)
    for key, value in recipe.items():
        if key not in sections:
            raise ConfigError(str(key), value if not isinstance(value, dict) else "{…}",
                              f"a known section of {path}: {', '.join(known)}")
        if key not in _SCALAR_KEYS and value is not None and not isinstance(value, dict):
            raise ConfigError(str(key), value, f"a mapping of field names to values (the '{key}:' section of {path})")


def check_finite(values: dict[str, Any], where: str = "") -> None:
    """NaN and infinities are never a valid setting."""
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}.{key}" if where else key, value, "a finite number (not NaN or infinity)")


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
        return _parse_float
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


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


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
        if block is not None and not isinstance(block, dict):
            raise ConfigError(section or "config", block, "a mapping of field names to values")
        values.update(block or {})
    values.update({k: v for k, v in vars(namespace).items() if k in names})
    check_finite(values, section or "")
    return from_dict(cls, values, where=section or "")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config (tuples become lists)."""
    out = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# files and folders: checked before any model is loaded
# ---------------------------------------------------------------------------------------------


def check_input_file(field: str, path: str | Path) -> None:
    """An existing, readable regular file (ConfigError naming the field and what is wrong)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(field, str(path), "an existing file (it does not exist)")
    if p.is_dir():
        raise ConfigError(field, str(path), "a file (it is a directory)")
    if not os.access(p, os.R_OK):
        raise ConfigError(field, str(path), "a readable file (permission denied)")


def check_output_file(field: str, path: str | Path) -> None:
    """A file that can be created or appended to: not a directory, no file among its parents."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(field, str(path), "a file path (it is a directory)")
    _check_parents(field, p)


def check_output_dir(field: str, path: str | Path) -> None:
    """A folder that exists or can be created (not a file, no file among its parents)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(field, str(path), "a folder (it is a file)")
    _check_parents(field, p)


def _check_parents(field: str, p: Path) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(field, str(p), f"a path inside a folder ({parent} is a file)")
            return


def looks_local(model: str) -> bool:
    """A model given as a path (./m, ../m, /abs/m, ~/m, C:\\m, m.gguf) rather than a Hub id."""
    return (model.startswith(("./", "../", "/", "~", ".\\", "..\\")) or model in (".", "..")
            or model.endswith(".gguf") or Path(model).expanduser().exists()
            or (len(model) > 1 and model[1] == ":") or model.count("/") > 1)


def check_model_path(field: str, model: str) -> None:
    """A local model folder (with a config.json or weights) or GGUF file; a Hub id (org/name that
    is not a local path) is left to the loader."""
    if not looks_local(model):
        return
    p = Path(model).expanduser()
    if not p.exists():
        raise ConfigError(field, model, "an existing model folder or a Hub id (the folder does not exist)")
    if p.is_file():
        if p.suffix == ".gguf":
            return
        raise ConfigError(field, model, "a model folder or a .gguf file (it is a file)")
    if not any(p.iterdir()):
        raise ConfigError(field, model, "a model folder with config.json and weights (the folder is empty)")
    if not (p / "config.json").exists() and not any(p.glob("*.gguf")):
        raise ConfigError(field, model, "a model folder with config.json (there is none)")


def check_tokenizer_path(field: str, name: str) -> None:
    """A local tokenizer folder (tokenizer files, no weights needed) or a Hub id."""
    if not name:
        raise ConfigError(field, name, "a tokenizer folder or Hub id")
    if not looks_local(name):
        return
    p = Path(name).expanduser()
    if not p.is_dir():
        raise ConfigError(field, name, "an existing tokenizer folder or a Hub id (" +
                          ("it is a file)" if p.exists() else "the folder does not exist)"))
    if not any(p.glob("tokenizer*")) and not any(p.glob("*.gguf")):
        raise ConfigError(field, name, "a folder with tokenizer files (tokenizer.json or tokenizer_config.json)")


# resumable outputs: the settings check lives in s1kit.stagecache (re-exported here)
from s1kit.stagecache import guard_resume, model_identity  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------
# shared config groups: composed (as base classes, so flags and recipe keys stay flat) by the
# stage configs that load a model (GenerateConfig, EvalConfig)
# ---------------------------------------------------------------------------------------------

# Backend names; the backend registry (s1kit.backends) owns what each builds.
BACKENDS = ("hf", "reference", "openai", "vllm", "vllm-multiround")
CHAT_TEMPLATES = ("auto", "chatml", "none")


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclasses.dataclass
class ModelGroup:
    """Which model, at which revision, in which precision, on which device."""

    model: str = dataclasses.field(default="", metadata=_doc(
        "Local model folder, .gguf file or Hub id (with --backend openai: the name the server serves)."))
    revision: str | None = dataclasses.field(default=None, metadata=_doc("Hub revision (commit) to pin."))
    device: str | None = dataclasses.field(default=None, metadata=_doc(
        "cpu, cuda, cuda:1 ... (default: cuda if present)."))
    dtype: str | None = dataclasses.field(default=None, metadata=_doc(
        "float32, bfloat16, float16 or auto (bf16 on a CPU with AMX, detected; fp32 on other CPUs; bf16 "
        "on GPU). Default: fp32 on CPU, bf16 on GPU."))

    def check_model_group(self) -> None:
        if not self.model:
            raise ConfigError("model", self.model, "a local model folder or a Hub id")
        if self.dtype is not None:
            check_choice("dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))


@dataclasses.dataclass
class BackendGroup:
    """Which backend runs the model and how many sequences it decodes together."""

    backend: str = dataclasses.field(default="hf", metadata=_doc(
        "hf (transformers, default), reference (s1's multi-round algorithm), openai (any OpenAI-compatible "
        "server: --base-url, --tokenizer), vllm (budget forcing inside vLLM, extra: vllm) or vllm-multiround."))
    batch_size: int = dataclasses.field(default=8, metadata=_doc(
        "Sequences decoded together (vllm: its max_num_seqs)."))
    tensor_parallel_size: int = dataclasses.field(default=1, metadata=_doc(
        "vllm backends: GPUs per model. Range: >= 1."))
    engine_args: tuple[str, ...] = dataclasses.field(default=(), metadata=_doc(
        "vllm backends: more vllm.LLM arguments as key=value, values read as YAML "
        "(gpu_memory_utilization=0.9,max_model_len=32768)."))
    base_url: str | None = dataclasses.field(default=None, metadata=_doc(
        "openai backend: the server's root URL (http://host:8000 or …/v1)."))
    tokenizer: str | None = dataclasses.field(default=None, metadata=_doc(
        "openai backend: a local tokenizer folder matching the served model."))
    api_key_env: str | None = dataclasses.field(default=None, metadata=_doc(
        "openai backend: environment variable holding the API key (never logged or stored)."))

    def check_backend_group(self) -> None:
        check_choice("backend", self.backend, BACKENDS)
        check_int("batch_size", self.batch_size, 1)
        check_int("tensor_parallel_size", self.tensor_parallel_size, 1)
        vllm = self.backend.startswith("vllm")
        for item in self.engine_args:
            if "=" not in item or not vllm:
                raise ConfigError("engine_args", item, "key=value items, with backend vllm or vllm-multiround only")
        if not vllm and self.tensor_parallel_size != 1:
            raise ConfigError("tensor_parallel_size", self.tensor_parallel_size,
                              "1 unless backend is vllm or vllm-multiround")
        if vllm and getattr(self, "device", None) is not None:
            raise ConfigError("device", getattr(self, "device"), "unset with the vllm backends (vLLM places the "
                              "model: set CUDA_VISIBLE_DEVICES and tensor_parallel_size)")
        self._check_openai_fields()

    def _check_openai_fields(self) -> None:
        for name in ("base_url", "tokenizer", "api_key_env"):
            if self.backend != "openai" and getattr(self, name) is not None:
                raise ConfigError(name, getattr(self, name), "unset unless backend is openai")
        if self.backend == "openai":
            for name in ("base_url", "tokenizer"):
                if not getattr(self, name):
                    raise ConfigError(name, getattr(self, name), f"set with backend openai (--{name.replace('_', '-')})")
            for name in ("device", "dtype", "revision"):
                if getattr(self, name, None) is not None:
                    raise ConfigError(name, getattr(self, name), "unset with backend openai (the server holds the model)")
        if self.api_key_env is not None and not self.api_key_env.replace("_", "a").isalnum():
            raise ConfigError("api_key_env", self.api_key_env, "an environment variable name")


@dataclasses.dataclass
class PromptGroup:
    """How a question becomes the model's prompt."""

    chat_template: str = dataclasses.field(default="auto", metadata=_doc(
        "auto (the tokenizer's template, ChatML if none), chatml, or none (raw prompts)."))
    system_prompt: str | None = dataclasses.field(default=None, metadata=_doc("System turn for chat templates."))

    def check_prompt_group(self) -> None:
        check_choice("chat_template", self.chat_template, CHAT_TEMPLATES)


@dataclasses.dataclass
class RunGroup:
    """How much of the input to take, and whether to show progress."""

    limit: int | None = dataclasses.field(default=None, metadata=_doc("Only the first N input rows."))
    progress: bool = dataclasses.field(default=True, metadata=_doc("Show a progress bar."))

    def check_run_group(self) -> None:
        if self.limit is not None:
            check_int("limit", self.limit, 1)


def check_groups(cfg: Any) -> None:
    """Validate every shared group a stage config is composed of."""
    for group, check in ((ModelGroup, "check_model_group"), (BackendGroup, "check_backend_group"),
                         (PromptGroup, "check_prompt_group"), (RunGroup, "check_run_group")):
        if isinstance(cfg, group):
            getattr(cfg, check)()
