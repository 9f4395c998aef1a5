"""The wire protocol: errors, field validation and field tables (pure: no HTTP, no model).

Request parsing builds on these in :mod:`s1kit.serve.parse`; responses in
:mod:`s1kit.serve.responses`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from s1kit.serve.budget import BUDGET_ALIASES
from s1kit.serve.config import MIN_TEMPERATURE


class ApiError(Exception):
    """An OpenAI-style error response: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type, code

    def body(self) -> dict[str, Any]:
        msg = self.message if len(self.message) <= 1000 else self.message[:1000] + "..."
        return {"error": {"message": msg, "type": self.type, "param": self.param, "code": self.code}}


def bad(param: str | None, message: str) -> ApiError:
    return ApiError(400, message, param)


def show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# -- fields --------------------------------------------------------------------------------------

BUDGET_FIELDS = ("max_thinking_tokens", "min_thinking_tokens", "num_ignore", "ignore_strings", "max_answer_tokens")
EXTENSION_FIELDS = ("top_k", "min_tokens", "ignore_eos", "stop_token_ids", "return_token_ids",
                    "skip_special_tokens", "include_stop_str_in_output")
SUPPORTED_COMMON = ("model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream",
                    "stream_options", "stop", "seed", "user") + BUDGET_FIELDS + BUDGET_ALIASES + EXTENSION_FIELDS
SUPPORTED_COMPLETION = SUPPORTED_COMMON + ("prompt", "logprobs", "echo")
SUPPORTED_CHAT = SUPPORTED_COMMON + ("messages",)
STREAM_OPTIONS = ("include_usage", "continuous_usage_stats", "include_obfuscation")


def _is_none_or(*allowed):
    return lambda v: v is None or any(v == a and type(v) is type(a) for a in allowed)


def _is_zero(v) -> bool:
    return v is None or (not isinstance(v, bool) and isinstance(v, (int, float)) and v == 0)


def _is_one(v) -> bool:
    return v is None or (not isinstance(v, bool) and isinstance(v, (int, float)) and v == 1)


def is_short_str(v) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= 512)


# Standard fields we do not implement: accepted only with their default (no-op) values.
DEFAULT_ONLY_COMMON: dict[str, Any] = {
    "presence_penalty": _is_zero, "frequency_penalty": _is_zero, "repetition_penalty": _is_one,
    "min_p": _is_zero, "logit_bias": lambda v: v is None or v == {},
    "safety_identifier": is_short_str, "prompt_cache_key": is_short_str,
}
DEFAULT_ONLY_COMPLETION: dict[str, Any] = {"suffix": _is_none_or(""), "best_of": _is_none_or(1)}
DEFAULT_ONLY_CHAT: dict[str, Any] = {
    "logprobs": _is_none_or(False), "top_logprobs": _is_zero,
    "response_format": lambda v: v is None or v == {"type": "text"},
    "tools": lambda v: v is None or v == [], "tool_choice": _is_none_or("none"),
    "parallel_tool_calls": _is_none_or(True), "functions": lambda v: v is None or v == [],
    "function_call": _is_none_or("none"), "store": _is_none_or(False),
    "metadata": lambda v: v is None or v == {}, "service_tier": _is_none_or("auto", "default"),
    "modalities": lambda v: v is None or v == ["text"],
    "audio": lambda v: v is None, "prediction": lambda v: v is None,
    "web_search_options": lambda v: v is None, "verbosity": _is_none_or("medium"),
    "moderation": lambda v: v is None, "prompt_cache_options": lambda v: v is None,
    "prompt_cache_retention": lambda v: v is None,
}
MESSAGE_ROLES = ("system", "developer", "user", "assistant")
MAX_STOPS = 16
MAX_STOP_CHARS = 512
MAX_IGNORE_STRINGS = 16
MAX_IGNORE_CHARS = 256
MAX_MESSAGES = 1024
MAX_SEED = (1 << 63) - 1
MAX_LOGPROBS = 20
MAX_CHOICES = 256


def check_fields(body: dict, supported, default_only: dict[str, Any], strict: bool, log) -> None:
    """Unknown fields: 400 when strict, else a logged warning (vLLM); default-only fields checked."""
    unknown = sorted(k for k in body if k not in supported and k not in default_only)
    if unknown and strict:
        raise bad(unknown[0], f"Unrecognized request argument supplied: {unknown[0][:100]}")
    if unknown:
        log.warning("ignoring unknown request fields: %s", ", ".join(repr(k[:100]) for k in unknown[:10]))
    for name, ok in default_only.items():
        if name in body and not ok(body[name]):
            raise bad(name, f"'{name}' is not supported by this server beyond its default value "
                            f"(got {show(body[name])})")


def check_text(value: Any, where: str = "") -> None:
    """Refuse strings that cannot be encoded as UTF-8 (lone surrogates such as "\\ud800"),
    anywhere in a parsed body, naming the first such field."""
    stack = [(where, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            _encodable(v, path)
        elif isinstance(v, dict):
            for k, item in v.items():
                _encodable(k, path or "body")
                stack.append((f"{path}.{k}" if path else k, item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))


def _encodable(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as err:
        raise bad(path or None, f"'{path[:200]}' holds a character that is not valid Unicode text "
                                f"(a lone surrogate at position {err.start}); send UTF-8 text") from None


# -- values --------------------------------------------------------------------------------------


def get_int(body: dict, name: str, lo: int, hi: int | None, default: Any) -> Any:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad(name, f"'{name}' must be an integer, got {show(v)}")
    if v < lo or (hi is not None and v > hi):
        raise bad(name, f"'{name}' must be in [{lo}, {hi if hi is not None else 'inf'}], got {show(v)}")
    return v


def get_num(body: dict, name: str, lo: float, hi: float, default: float, lo_open: bool = False) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad(name, f"'{name}' must be a finite number, got {show(v)}")
    if v > hi or v < lo or (lo_open and v == lo):
        raise bad(name, f"'{name}' must be in {'(' if lo_open else '['}{lo}, {hi}], got {show(v)}")
    return float(v)


def get_temperature(body: dict, default: float) -> float:
    """[0, 2]; below MIN_TEMPERATURE (1e-5) is greedy: 0 (see config.MIN_TEMPERATURE)."""
    t = get_num(body, "temperature", 0.0, 2.0, default)
    return 0.0 if t < MIN_TEMPERATURE else t


def get_bool(body: dict, name: str, default: bool = False) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad(name, f"'{name}' must be a boolean, got {show(v)}")
    return v


def str_list(value: Any, name: str, max_items: int, max_chars: int, allow_single: bool) -> tuple[str, ...]:
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list):
        raise bad(name, f"'{name}' must be a list of strings, got {show(value)}")
    if len(value) > max_items:
        raise bad(name, f"'{name}' has {len(value)} items; at most {max_items} are allowed")
    for i, s in enumerate(value):
        if not isinstance(s, str) or not s:
            raise bad(f"{name}[{i}]", f"'{name}[{i}]' must be a non-empty string, got {show(s)}")
        if len(s) > max_chars:
            raise bad(f"{name}[{i}]", f"'{name}[{i}]' is longer than {max_chars} characters")
    return tuple(value)


def id_list(value: Any, name: str, vocab: int, max_len: int) -> list[int] | None:
    """A list of token ids (None if ``value`` is not a non-empty list of ints)."""
    if not (isinstance(value, list) and value and all(isinstance(t, int) and not isinstance(t, bool) for t in value)):
        return None
    if len(value) > max_len:
        raise bad(name, f"'{name}' has {len(value)} tokens; this server accepts at most {max_len}")
    if any(not 0 <= t < vocab for t in value):
        raise bad(name, f"token ids in '{name}' must be in [0, {vocab})")
    return list(value)


def max_tokens_of(body: dict, limit: int, default: int) -> tuple[str, int]:
    """vLLM's precedence: max_completion_tokens when given, else max_tokens (both are checked)."""
    mct = get_int(body, "max_completion_tokens", 1, limit, None)
    mt = get_int(body, "max_tokens", 1, limit, None)
    if mct is not None:
        return "max_completion_tokens", mct
    return "max_tokens", mt if mt is not None else default


def stream_options(body: dict, stream: bool) -> tuple[bool, bool]:
    """(include_usage, continuous_usage_stats); include_obfuscation is accepted and ignored."""
    so = body.get("stream_options")
    if so is None:
        return False, False
    if not stream:
        raise bad("stream_options", "'stream_options' is only allowed when 'stream' is true")
    if not isinstance(so, dict):
        raise bad("stream_options", "'stream_options' must be an object")
    extra = sorted(set(so) - set(STREAM_OPTIONS))
    if extra:
        raise bad(f"stream_options.{extra[0][:100]}", f"Unrecognized stream option: {extra[0][:100]}")
    flags = []
    for key in STREAM_OPTIONS:
        v = so.get(key)
        if v is not None and not isinstance(v, bool):
            raise bad(f"stream_options.{key}", f"'stream_options.{key}' must be a boolean")
        flags.append(bool(v))
    return flags[0], flags[1]


def reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
