"""OpenAI-compatible server over the budget-forcing engine (``s1kit serve``).

    s1kit serve --model ./my-model                       # http://127.0.0.1:8000/v1
    S1KIT_API_KEY=... s1kit serve --model simplescaling/s1.1-32B --api-key-env S1KIT_API_KEY

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (both stream over SSE with
``"stream": true``), ``GET /v1/models``, ``GET /health``. Every request is one sequence in the
engine's shared continuous batch (:mod:`s1kit.serve.engine`).

Budget forcing per request (extension fields next to the OpenAI ones; the openai client sends
them with ``extra_body=``): ``max_thinking_tokens`` (int, "auto" or null = no thinking phase),
``min_thinking_tokens``, ``num_ignore``, ``ignore_strings``, ``max_answer_tokens``. The answer
reserve lives inside ``max_tokens``: the thinking cap is ``min(max_thinking_tokens, max_tokens -
max_answer_tokens - forced overhead)``, the overhead being the thinking delimiters, the answer
prefix and ``num_ignore`` ignore strings, so ``usage.completion_tokens <= max_tokens`` always.
Chat requests think by default (``ServeConfig.default_max_thinking_tokens``) and answer with
``message.reasoning_content`` and ``message.content``; completions are plain OpenAI
continuations unless a budget field is given, and then return the full text (thinking, forced
delimiters, answer). ``usage`` adds ``completion_tokens_details.reasoning_tokens`` (model-
generated thinking tokens), ``waits_injected``, ``forced_end``, ``forced_tokens`` and
``answer_tokens``.

vLLM-style extensions for exact multi-round clients (:mod:`s1kit.backends.remote`):
``prompt`` as a list of token ids, ``return_token_ids`` (adds ``token_ids`` and
``prompt_token_ids`` to the choice), ``stop_token_ids``, ``ignore_eos``, ``min_tokens``, ``top_k``,
``skip_special_tokens`` and ``include_stop_str_in_output``.

Safe by default: binds 127.0.0.1; optional Bearer API key read from the environment variable
named by ``api_key_env`` (never logged); limits on body size, ``max_tokens``, prompt length and
sequences in flight (429 when full); every malformed request gets an OpenAI-style 4xx error body
naming the field; request content is only ever parsed as JSON; ``trust_remote_code`` is off
unless the operator turns it on; a client that disconnects frees its sequence.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from s1kit.forcing import BudgetPolicy, ConfigError, PromptTooLong
from s1kit.forcing.policy import AUTO, PRESETS
from s1kit.forcing.validation import check_choice, check_float, check_int

log = logging.getLogger(__name__)


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ServeConfig:
    """The server: model, network, limits and the default budget."""

    model: str = field(default="", metadata=_doc("Local model folder or Hub id."))
    revision: str | None = field(default=None, metadata=_doc("Hub revision (commit) to pin."))
    served_model_name: str | None = field(default=None, metadata=_doc(
        "Name clients put in 'model' (default: --model as given)."))
    host: str = field(default="127.0.0.1", metadata=_doc(
        "Interface to bind; 127.0.0.1 (this machine only) unless you mean to expose the server."))
    port: int = field(default=8000, metadata=_doc("TCP port (0: any free port)."))
    api_key_env: str | None = field(default=None, metadata=_doc(
        "Name of the environment variable holding the API key; when set, /v1/* needs "
        "'Authorization: Bearer <key>'. The key itself is never put on the command line or logged."))
    trust_remote_code: bool = field(default=False, metadata=_doc(
        "Run code shipped with the model (only for models you trust)."))
    device: str | None = field(default=None, metadata=_doc("cpu, cuda, cuda:1 ... (default: cuda if present)."))
    dtype: str | None = field(default=None, metadata=_doc("float32, bfloat16 ... (default: fp32 on CPU, bf16 on GPU)."))
    preset: str = field(default="s1", metadata=_doc("Thinking delimiters: s1 (Qwen ChatML think/answer) or r1 (<think>)."))
    chat_template: str = field(default="auto", metadata=_doc(
        "auto (the tokenizer's chat template, ChatML if it has none) or chatml."))
    max_num_seqs: int = field(default=16, metadata=_doc("Sequences decoded together (the running batch)."))
    max_queue: int = field(default=256, metadata=_doc(
        "Requests that may wait for a batch slot; beyond that new requests get 429."))
    max_body_bytes: int = field(default=1_000_000, metadata=_doc("Largest request body accepted (413 beyond)."))
    max_tokens_limit: int = field(default=4096, metadata=_doc("Largest max_tokens a request may ask for."))
    default_max_tokens: int = field(default=1024, metadata=_doc("max_tokens when a request gives none."))
    max_prompt_tokens: int = field(default=8192, metadata=_doc("Longest prompt accepted, in tokens."))
    default_max_thinking_tokens: int | str | None = field(default=AUTO, metadata=_doc(
        "Thinking cap of chat requests that give none (and of completions that set another budget "
        "field): an int, 'auto' (whatever max_tokens leaves) or none (no thinking by default)."))
    default_max_answer_tokens: int = field(default=512, metadata=_doc(
        "Answer reserve when a request gives no max_answer_tokens (at most max_tokens // 4 then)."))
    default_temperature: float = field(default=0.0, metadata=_doc(
        "Temperature when a request gives none (0: greedy, as s1's evaluation)."))
    request_timeout_s: float = field(default=600.0, metadata=_doc(
        "A request still running after this many seconds is cancelled (504)."))
    num_threads: int | None = field(default=None, metadata=_doc(
        "torch CPU threads (default: torch's choice; 1 is often fastest for tiny models on busy CPUs)."))

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ConfigError("model", self.model, "a local model folder or a Hub id")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError("host", self.host, "an interface address such as 127.0.0.1")
        check_int("port", self.port, 0, 65535)
        if self.api_key_env is not None and (not isinstance(self.api_key_env, str) or not self.api_key_env):
            raise ConfigError("api_key_env", self.api_key_env, "the name of an environment variable")
        check_choice("preset", self.preset, sorted(PRESETS))
        check_choice("chat_template", self.chat_template, ("auto", "chatml"))
        check_int("max_num_seqs", self.max_num_seqs, 1, 4096)
        check_int("max_queue", self.max_queue, 0, 1_000_000)
        check_int("max_body_bytes", self.max_body_bytes, 1024, 1 << 30)
        check_int("max_tokens_limit", self.max_tokens_limit, 1)
        check_int("default_max_tokens", self.default_max_tokens, 1, self.max_tokens_limit)
        check_int("max_prompt_tokens", self.max_prompt_tokens, 1)
        mt = self.default_max_thinking_tokens
        if mt is not None and mt != AUTO:
            check_int("default_max_thinking_tokens", mt, 0)
        check_int("default_max_answer_tokens", self.default_max_answer_tokens, 1)
        check_float("default_temperature", self.default_temperature, 0.0, 2.0)
        check_float("request_timeout_s", self.request_timeout_s, 0.0, 1e7, lo_open=True)
        if self.num_threads is not None:
            check_int("num_threads", self.num_threads, 1, 1024)

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An OpenAI-style error response: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 type: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type, code

    def body(self) -> dict[str, Any]:
        msg = self.message if len(self.message) <= 1000 else self.message[:1000] + "..."
        return {"error": {"message": msg, "type": self.type, "param": self.param, "code": self.code}}


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------
# request parsing (pure: no HTTP, testable on its own)
# ---------------------------------------------------------------------------------------------

BUDGET_FIELDS = ("max_thinking_tokens", "min_thinking_tokens", "num_ignore", "ignore_strings", "max_answer_tokens")
EXTENSION_FIELDS = ("top_k", "min_tokens", "ignore_eos", "stop_token_ids", "return_token_ids",
                    "skip_special_tokens", "include_stop_str_in_output")
SUPPORTED_COMMON = ("model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop",
                    "seed", "user") + BUDGET_FIELDS + EXTENSION_FIELDS


def _is_none_or(*allowed):
    return lambda v: v is None or any(v == a and type(v) is type(a) for a in allowed)


def _is_zero(v) -> bool:
    return v is None or (not isinstance(v, bool) and isinstance(v, (int, float)) and v == 0)


def _is_str_or_none(v) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= 512)


# Standard OpenAI fields we do not implement: accepted only with their default (no-op) values.
DEFAULT_ONLY_COMMON: dict[str, Any] = {
    "presence_penalty": _is_zero, "frequency_penalty": _is_zero,
    "logit_bias": lambda v: v is None or v == {},
    "safety_identifier": _is_str_or_none, "prompt_cache_key": _is_str_or_none,
}
DEFAULT_ONLY_COMPLETION: dict[str, Any] = {
    "echo": _is_none_or(False), "suffix": _is_none_or(""), "best_of": _is_none_or(1),
    "logprobs": lambda v: v is None,
}
DEFAULT_ONLY_CHAT: dict[str, Any] = {
    "logprobs": _is_none_or(False), "top_logprobs": _is_zero,
    "response_format": lambda v: v is None or v == {"type": "text"},
    "tools": lambda v: v is None or v == [], "tool_choice": _is_none_or("none"),
    "parallel_tool_calls": _is_none_or(True), "functions": lambda v: v is None or v == [],
    "function_call": _is_none_or("none"), "store": _is_none_or(False),
    "metadata": lambda v: v is None or v == {}, "service_tier": _is_none_or("auto", "default"),
    "modalities": lambda v: v is None or v == ["text"], "reasoning_effort": lambda v: v is None,
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


@dataclass
class Prepared:
    """A validated request, tokenized, with its machine built (nothing queued yet)."""

    kind: str  # "chat" | "completion"
    prompt_ids: list[int]
    policy: BudgetPolicy
    machine: Any
    key: str
    stream: bool = False
    include_usage: bool = False
    return_token_ids: bool = False
    skip_special_tokens: bool = False
    include_stop: bool = False


def _int(body: dict, name: str, lo: int, hi: int | None, default: Any) -> Any:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(name, f"'{name}' must be an integer, got {_show(v)}")
    if v < lo or (hi is not None and v > hi):
        raise _bad(name, f"'{name}' must be in [{lo}, {hi if hi is not None else 'inf'}], got {_show(v)}")
    return v


def _num(body: dict, name: str, lo: float, hi: float, default: float, lo_open: bool = False) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(name, f"'{name}' must be a number, got {_show(v)}")
    if v > hi or v < lo or (lo_open and v == lo):
        raise _bad(name, f"'{name}' must be in {'(' if lo_open else '['}{lo}, {hi}], got {_show(v)}")
    return float(v)


def _bool(body: dict, name: str, default: bool = False) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _bad(name, f"'{name}' must be a boolean, got {_show(v)}")
    return v


def _str_list(value: Any, name: str, max_items: int, max_chars: int, allow_single: bool) -> tuple[str, ...]:
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list):
        raise _bad(name, f"'{name}' must be a list of strings, got {_show(value)}")
    if len(value) > max_items:
        raise _bad(name, f"'{name}' has {len(value)} items; at most {max_items} are allowed")
    for i, s in enumerate(value):
        if not isinstance(s, str) or not s:
            raise _bad(f"{name}[{i}]", f"'{name}[{i}]' must be a non-empty string, got {_show(s)}")
        if len(s) > max_chars:
            raise _bad(f"{name}[{i}]", f"'{name}[{i}]' is longer than {max_chars} characters")
    return tuple(value)


class RequestParser:
    """Turns request bodies into :class:`Prepared` requests for one engine and config."""

    def __init__(self, cfg: ServeConfig, engine: Any):
        self.cfg = cfg
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.base_policy = BudgetPolicy.preset(cfg.preset)
        self.names = {cfg.model_name, cfg.model}

    # -- shared ------------------------------------------------------------------------------

    def _check_fields(self, body: dict, supported: Sequence[str], default_only: dict[str, Any]) -> None:
        unknown = sorted(k for k in body if k not in supported and k not in default_only)
        if unknown:
            name = unknown[0]
            raise _bad(name, f"Unrecognized request argument supplied: {name[:100]}")
        for name, ok in default_only.items():
            if name in body and not ok(body[name]):
                raise _bad(name, f"'{name}' is not supported by this server beyond its default value "
                                 f"(got {_show(body[name])})")

    def _model(self, body: dict) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("model", "'model' is required and must be a string")
        if model not in self.names:
            raise ApiError(404, f"The model '{model[:200]}' does not exist; this server serves "
                                f"'{self.cfg.model_name}'", "model")

    def _prepare(self, body: dict, kind: str, prompt_ids: list[int], max_tokens_field: str,
                 max_tokens: int) -> Prepared:
        cfg, engine = self.cfg, self.engine
        prompt_param = "messages" if kind == "chat" else "prompt"
        if not prompt_ids:
            raise _bad(prompt_param, "the prompt is empty")
        if len(prompt_ids) > cfg.max_prompt_tokens:
            raise _bad(prompt_param, f"the prompt has {len(prompt_ids)} tokens; this server accepts at most "
                                     f"{cfg.max_prompt_tokens}")
        if body.get("n") not in (None, 1) or isinstance(body.get("n"), bool):
            raise _bad("n", "only n=1 is supported")
        stream = _bool(body, "stream")
        include_usage = False
        so = body.get("stream_options")
        if so is not None:
            if not stream:
                raise _bad("stream_options", "'stream_options' is only allowed when 'stream' is true")
            if not isinstance(so, dict):
                raise _bad("stream_options", "'stream_options' must be an object")
            extra = sorted(set(so) - {"include_usage"})
            if extra:
                raise _bad(f"stream_options.{extra[0][:100]}", f"Unrecognized stream option: {extra[0][:100]}")
            include_usage = so.get("include_usage") or False
            if not isinstance(include_usage, bool):
                raise _bad("stream_options.include_usage", "'stream_options.include_usage' must be a boolean")
        temperature = _num(body, "temperature", 0.0, 2.0, cfg.default_temperature)
        top_p = _num(body, "top_p", 0.0, 1.0, 1.0, lo_open=True)
        top_k = _int(body, "top_k", -1, None, 0)
        seed = _int(body, "seed", 0, MAX_SEED, None)
        stops = () if body.get("stop") is None else _str_list(body["stop"], "stop", MAX_STOPS, MAX_STOP_CHARS, True)
        stop_ids: tuple[int, ...] = ()
        if body.get("stop_token_ids") is not None:
            raw = body["stop_token_ids"]
            if not isinstance(raw, list) or len(raw) > 64:
                raise _bad("stop_token_ids", "'stop_token_ids' must be a list of at most 64 token ids")
            for i, t in enumerate(raw):
                if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < engine.vocab_size:
                    raise _bad(f"stop_token_ids[{i}]", f"token ids must be integers in [0, {engine.vocab_size})")
            stop_ids = tuple(raw)
        min_tokens = _int(body, "min_tokens", 0, max_tokens, 0)
        ignore_eos = _bool(body, "ignore_eos")
        if body.get("user") is not None and not _is_str_or_none(body["user"]):
            raise _bad("user", "'user' must be a string of at most 512 characters")

        # -- the budget ------------------------------------------------------------------------
        budget_given = any(body.get(f) is not None for f in BUDGET_FIELDS if f != "max_thinking_tokens")
        default_mt = cfg.default_max_thinking_tokens
        if "max_thinking_tokens" in body:
            mt = body["max_thinking_tokens"]
        elif kind == "chat" or budget_given:
            mt = default_mt if default_mt is not None else (AUTO if budget_given else None)
        else:
            mt = None
        if mt is not None and mt != AUTO and (isinstance(mt, bool) or not isinstance(mt, int)):
            raise _bad("max_thinking_tokens", f"'max_thinking_tokens' must be an integer, \"auto\" or null, got {_show(mt)}")
        values = self.base_policy.to_dict()
        values.update(temperature=temperature, top_p=top_p, top_k=max(0, top_k), seed=seed or 0)
        base_stops = tuple(self.base_policy.answer_stops) if (kind == "chat" or mt is not None) else ()
        answer_stops = tuple(dict.fromkeys(base_stops + stops))
        if mt is not None:
            if body.get("ignore_strings") is not None:
                values["ignore_strings"] = _str_list(body["ignore_strings"], "ignore_strings", MAX_IGNORE_STRINGS,
                                                     MAX_IGNORE_CHARS, False)
            if "max_answer_tokens" in body and body["max_answer_tokens"] is not None:
                answer = _int(body, "max_answer_tokens", 1, None, None)
                if answer > max_tokens:
                    raise _bad("max_answer_tokens", f"'max_answer_tokens' ({answer}) must not exceed "
                                                    f"'{max_tokens_field}' ({max_tokens})")
            else:
                answer = min(cfg.default_max_answer_tokens, max(1, max_tokens // 4))
            values.update(max_thinking_tokens=mt, max_answer_tokens=answer, answer_stops=answer_stops)
            for f in ("min_thinking_tokens", "num_ignore"):
                if body.get(f) is not None:
                    values[f] = body[f]
        else:
            for f in BUDGET_FIELDS[1:]:
                if body.get(f) is not None and f != "max_answer_tokens":
                    raise _bad(f, f"'{f}' needs a thinking phase (max_thinking_tokens is null)")
            answer = max_tokens
            if body.get("max_answer_tokens") is not None:
                answer = min(max_tokens, _int(body, "max_answer_tokens", 1, None, None))
            values.update(max_thinking_tokens=None, max_answer_tokens=answer, answer_stops=answer_stops)
        try:
            policy = BudgetPolicy.from_dict(values)
            machine = engine.prepare(prompt_ids, policy, max_tokens=max_tokens, stop_ids=stop_ids,
                                     ignore_eos=ignore_eos, min_tokens=min_tokens)
        except PromptTooLong as err:
            raise _bad(prompt_param, str(err)) from None
        except ConfigError as err:
            param = max_tokens_field if err.field == "max_tokens" else err.field
            raise _bad(param, str(err)) from None
        return Prepared(kind, prompt_ids, policy, machine,
                        key="" if seed is not None else secrets.token_hex(8), stream=stream,
                        include_usage=include_usage, return_token_ids=_bool(body, "return_token_ids"),
                        skip_special_tokens=_bool(body, "skip_special_tokens"),
                        include_stop=_bool(body, "include_stop_str_in_output"))

    def _max_tokens(self, body: dict, name: str) -> int:
        return _int(body, name, 1, self.cfg.max_tokens_limit, self.cfg.default_max_tokens)

    def _encode(self, text: str) -> list[int]:
        return self.engine.codec.encode(text)

    # -- endpoints ---------------------------------------------------------------------------

    def completion(self, body: Any) -> Prepared:
        if not isinstance(body, dict):
            raise _bad(None, "the request body must be a JSON object")
        self._check_fields(body, SUPPORTED_COMMON + ("prompt",), {**DEFAULT_ONLY_COMMON, **DEFAULT_ONLY_COMPLETION})
        self._model(body)
        max_tokens = self._max_tokens(body, "max_tokens")
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str):
            ids = self._encode(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            if len(prompt) > self.cfg.max_prompt_tokens:
                raise _bad("prompt", f"the prompt has {len(prompt)} tokens; this server accepts at most "
                                     f"{self.cfg.max_prompt_tokens}")
            if any(not 0 <= t < self.engine.vocab_size for t in prompt):
                raise _bad("prompt", f"token ids must be in [0, {self.engine.vocab_size})")
            ids = list(prompt)
        elif isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, (str, list)) for p in prompt):
            raise _bad("prompt", "only one prompt per request is supported")
        else:
            raise _bad("prompt", "'prompt' must be a string, a list of token ids, or a list holding one of these")
        return self._prepare(body, "completion", ids, "max_tokens", max_tokens)

    def chat(self, body: Any) -> Prepared:
        if not isinstance(body, dict):
            raise _bad(None, "the request body must be a JSON object")
        self._check_fields(body, SUPPORTED_COMMON + ("messages", "max_completion_tokens"),
                           {**DEFAULT_ONLY_COMMON, **DEFAULT_ONLY_CHAT})
        self._model(body)
        name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = self._max_tokens(body, name)
        if name == "max_completion_tokens" and body.get("max_tokens") is not None:
            if self._max_tokens(body, "max_tokens") != max_tokens:
                raise _bad("max_tokens", "'max_tokens' and 'max_completion_tokens' disagree; give one")
        messages = self._messages(body.get("messages"))
        text = self._render(messages)
        return self._prepare(body, "chat", self._encode(text), name, max_tokens)

    def _messages(self, raw: Any) -> list[dict[str, str]]:
        if not isinstance(raw, list) or not raw:
            raise _bad("messages", "'messages' must be a non-empty list of messages")
        if len(raw) > MAX_MESSAGES:
            raise _bad("messages", f"at most {MAX_MESSAGES} messages are allowed")
        out = []
        for i, msg in enumerate(raw):
            where = f"messages[{i}]"
            if not isinstance(msg, dict):
                raise _bad(where, f"'{where}' must be an object with 'role' and 'content'")
            role = msg.get("role")
            if role not in MESSAGE_ROLES:
                raise _bad(f"{where}.role", f"'{where}.role' must be one of {', '.join(MESSAGE_ROLES)}")
            allowed = {"role", "content", "name"} | ({"reasoning_content", "refusal", "tool_calls"} if role == "assistant" else set())
            extra = sorted(set(msg) - allowed)
            if extra:
                raise _bad(f"{where}.{extra[0][:100]}", f"Unrecognized message field: {extra[0][:100]}")
            for key in ("refusal", "tool_calls"):
                if msg.get(key) not in (None, []):
                    raise _bad(f"{where}.{key}", f"'{where}.{key}' is not supported")
            for key in ("name", "reasoning_content"):
                if msg.get(key) is not None and not isinstance(msg[key], str):
                    raise _bad(f"{where}.{key}", f"'{where}.{key}' must be a string")
            out.append({"role": "system" if role == "developer" else role,
                        "content": self._content(msg.get("content"), f"{where}.content")})
        return out

    @staticmethod
    def _content(content: Any, where: str) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise _bad(f"{where}[{j}]", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported")
                if set(part) - {"type", "text"}:
                    raise _bad(f"{where}[{j}]", "a text part has only 'type' and 'text'")
                parts.append(part["text"])
            return "".join(parts)
        raise _bad(where, f"'{where}' must be a string or a list of text parts")

    def _render(self, messages: list[dict[str, str]]) -> str:
        tok = self.tokenizer
        if self.cfg.chat_template == "auto" and getattr(tok, "chat_template", None):
            try:
                return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception as err:  # the template rejected the conversation (e.g. role order)
                raise _bad("messages", f"the chat template rejected the messages: {str(err)[:200]}") from None
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"


# ---------------------------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------------------------


def usage_of(prep: Prepared, fin) -> dict[str, Any]:
    r = fin.result
    prompt, completion = len(prep.prompt_ids), len(fin.completion_ids)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": r.thinking_tokens},
            "waits_injected": r.waits_injected, "forced_end": r.forced_end,
            "forced_tokens": r.forced_tokens, "answer_tokens": r.answer_tokens}


def _finish_reason(fin) -> str:
    return fin.result.finish_reason


def completion_body(prep: Prepared, fin, rid: str, created: int, model: str) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "text": fin.text, "logprobs": None, "finish_reason": _finish_reason(fin)}
    if prep.return_token_ids:
        choice["token_ids"] = fin.completion_ids
        choice["prompt_token_ids"] = prep.prompt_ids
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [choice], "usage": usage_of(prep, fin)}


def chat_body(prep: Prepared, fin, rid: str, created: int, model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": fin.content, "reasoning_content": fin.reasoning}
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(fin)}
    if prep.return_token_ids:
        choice["token_ids"] = fin.completion_ids
        choice["prompt_token_ids"] = prep.prompt_ids
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": usage_of(prep, fin)}


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


# ---------------------------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------------------------


def _require(module: str, extra: str = "serve"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"`s1kit serve` needs {module}: pip install 's1kit[{extra}]'") from err


def _api_key(cfg: ServeConfig) -> str | None:
    if cfg.api_key_env is None:
        return None
    key = os.environ.get(cfg.api_key_env, "")
    if not key:
        raise ConfigError("api_key_env", cfg.api_key_env, "the name of a set, non-empty environment variable")
    return key


def load_backend(cfg: ServeConfig):
    """The transformers backend for cfg.model (trust_remote_code only when the operator set it)."""
    from s1kit.backends.hf import HFBackend

    return HFBackend.from_pretrained(cfg.model, revision=cfg.revision, batch_size=cfg.max_num_seqs,
                                     device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)


def create_app(cfg: ServeConfig, backend: Any = None, engine: Any = None):
    """The FastAPI app. ``backend`` (an HFBackend) or ``engine`` may be given (tests, embedding);
    the engine thread starts with the app and stops with it."""
    fastapi = _require("fastapi")
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response, StreamingResponse

    from s1kit.serve.engine import EngineClosed, EngineService, Failed, Finished, Job, QueueFull
    from s1kit.backends.base import Request as GenRequest

    api_key = _api_key(cfg)
    if engine is None:
        engine = EngineService(backend if backend is not None else load_backend(cfg),
                               max_num_seqs=cfg.max_num_seqs, max_queue=cfg.max_queue)
    parser = RequestParser(cfg, engine)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        try:
            yield
        finally:
            await run_in_threadpool(engine.stop)

    app = fastapi.FastAPI(title="s1kit", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.config = cfg

    def error_response(err: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, err: ApiError):
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):
        return error_response(ApiError(err.status_code, str(err.detail), None,
                                       "invalid_request_error" if err.status_code < 500 else "server_error"))

    @app.exception_handler(Exception)
    async def _internal(request, err):  # pragma: no cover - a bug; the fuzz test asserts none
        log.exception("internal error")
        return error_response(ApiError(500, "internal server error", None, "server_error"))

    def check_auth(request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'", None,
                           "invalid_request_error", "invalid_api_key")

    async def read_json(request) -> Any:
        ctype = request.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                raise ApiError(415, f"Content-Type must be application/json, got {ctype[:100]!r}")
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(400, "invalid Content-Length header") from None
            if declared > cfg.max_body_bytes:
                raise ApiError(413, f"request body larger than {cfg.max_body_bytes} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > cfg.max_body_bytes:
                    raise ApiError(413, f"request body larger than {cfg.max_body_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise ApiError(400, "client disconnected while sending the body") from None
        raw = b"".join(chunks)
        if not raw:
            raise ApiError(400, "the request body is empty; send a JSON object")
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise ApiError(400, "the request body is not valid UTF-8") from None
        except RecursionError:
            raise ApiError(400, "the request body is nested too deeply") from None
        except ValueError as err:
            raise ApiError(400, f"invalid JSON: {str(err)[:200]}") from None

    async def wait_disconnect(request) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    def submit(prep: Prepared, queue: asyncio.Queue) -> int:
        loop = asyncio.get_running_loop()

        def sink(event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        job = Job(GenRequest(prep.prompt_ids, prep.policy, key=prep.key), prep.machine, sink, stream=prep.stream,
                  split=prep.kind == "chat", skip_special_tokens=prep.skip_special_tokens,
                  include_stop=prep.include_stop)
        try:
            return engine.submit(job)
        except QueueFull:
            raise ApiError(429, "the server is at capacity (running and queued sequences); retry later",
                           None, "rate_limit_error") from None
        except EngineClosed:
            raise ApiError(503, "the server is shutting down", None, "server_error") from None

    def failure(event: Failed) -> ApiError:
        log.error("generation failed: %r", event.error)
        return ApiError(500, "generation failed", None, "server_error")

    async def serve(request, prep: Prepared) -> Response:
        queue: asyncio.Queue = asyncio.Queue()
        tag = submit(prep, queue)
        rid = ("chatcmpl-" if prep.kind == "chat" else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        if prep.stream:
            gen = stream_chat(prep, queue, tag, rid, created) if prep.kind == "chat" else \
                stream_completion(prep, queue, tag, rid, created)
            return StreamingResponse(gen, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        finished = False
        disconnect = asyncio.ensure_future(wait_disconnect(request))
        deadline = time.monotonic() + cfg.request_timeout_s
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, disconnect}, timeout=max(0.0, deadline - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    if disconnect in done:
                        return Response(status_code=499)  # nobody is listening any more
                    raise ApiError(504, f"the request did not finish within {cfg.request_timeout_s} s",
                                   None, "timeout_error")
                event = get.result()
                if isinstance(event, Failed):
                    finished = True
                    raise failure(event)
                if isinstance(event, Finished):
                    finished = True
                    build = chat_body if prep.kind == "chat" else completion_body
                    return JSONResponse(build(prep, event, rid, created, cfg.model_name))
        finally:
            disconnect.cancel()
            if not finished:
                engine.cancel(tag)

    async def events(queue: asyncio.Queue):
        """Engine events until Finished or Failed (a timeout ends it with Failed(TimeoutError))."""
        deadline = time.monotonic() + cfg.request_timeout_s
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                yield Failed(TimeoutError(f"the request did not finish within {cfg.request_timeout_s} s"))
                return
            yield event
            if isinstance(event, (Finished, Failed)):
                return

    def error_event(event: Failed) -> bytes:
        if isinstance(event.error, TimeoutError):
            return _sse(ApiError(504, str(event.error), None, "timeout_error").body())
        return _sse(failure(event).body())

    async def stream_chat(prep: Prepared, queue, tag, rid, created):
        head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": cfg.model_name}
        try:
            yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                             "logprobs": None, "finish_reason": None}]})
            async for event in events(queue):
                if isinstance(event, Failed):
                    yield error_event(event)
                    break
                if isinstance(event, Finished):
                    last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": _finish_reason(event)}
                    if prep.return_token_ids:
                        last["token_ids"] = event.completion_ids
                    yield _sse({**head, "choices": [last]})
                    if prep.include_usage:
                        yield _sse({**head, "choices": [], "usage": usage_of(prep, event)})
                    break
                delta = {}
                if event.reasoning:
                    delta["reasoning_content"] = event.reasoning
                if event.content:
                    delta["content"] = event.content
                yield _sse({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": None}]})
            yield DONE
        finally:
            engine.cancel(tag)  # a no-op once finished; frees the sequence of a client that left

    async def stream_completion(prep: Prepared, queue, tag, rid, created):
        head = {"id": rid, "object": "text_completion", "created": created, "model": cfg.model_name}
        try:
            async for event in events(queue):
                if isinstance(event, Failed):
                    yield error_event(event)
                    break
                if isinstance(event, Finished):
                    last = {"index": 0, "text": "", "logprobs": None, "finish_reason": _finish_reason(event)}
                    if prep.return_token_ids:
                        last["token_ids"] = event.completion_ids
                    yield _sse({**head, "choices": [last]})
                    if prep.include_usage:
                        yield _sse({**head, "choices": [], "usage": usage_of(prep, event)})
                    break
                yield _sse({**head, "choices": [{"index": 0, "text": event.content, "logprobs": None,
                                                 "finish_reason": None}]})
            yield DONE
        finally:
            engine.cancel(tag)

    async def completions(request):
        check_auth(request)
        body = await read_json(request)
        prep = await run_in_threadpool(parser.completion, body)
        return await serve(request, prep)

    async def chat_completions(request):
        check_auth(request)
        body = await read_json(request)
        prep = await run_in_threadpool(parser.chat, body)
        return await serve(request, prep)

    async def models(request):
        check_auth(request)
        card = {"id": cfg.model_name, "object": "model", "created": int(time.time()), "owned_by": "s1kit",
                "max_model_len": engine.context_window}
        return JSONResponse({"object": "list", "data": [card]})

    async def health(request):
        if not engine.alive:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", **engine.load()})

    # plain Starlette routes: the handlers parse and validate the bodies themselves
    app.add_route("/v1/completions", completions, methods=["POST"])
    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/models", models, methods=["GET"])
    app.add_route("/health", health, methods=["GET"])
    return app


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


# ---------------------------------------------------------------------------------------------
# running it
# ---------------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def run_serve(cfg: ServeConfig, backend: Any = None) -> None:
    """Load the model and serve until interrupted (``s1kit serve``)."""
    uvicorn = _require("uvicorn")
    if not _is_loopback(cfg.host):
        log.warning("binding %s: the server is reachable from other machines%s", cfg.host,
                    "" if cfg.api_key_env else " and has no API key (set --api-key-env)")
    if cfg.num_threads is not None:
        import torch

        torch.set_num_threads(cfg.num_threads)
    app = create_app(cfg, backend=backend)
    log.info("serving %s on http://%s:%d/v1", cfg.model_name, cfg.host, cfg.port)
    level = "info" if log.getEffectiveLevel() <= logging.INFO else "warning"
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=level, access_log=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m s1kit.serve.app --model PATH`` (the same flags as ``s1kit serve``)."""
    import argparse

    from s1kit.config import add_dataclass_arguments, resolve

    parser = argparse.ArgumentParser(prog="s1kit serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO")
    add_dataclass_arguments(parser, ServeConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = resolve(ServeConfig, args)
    except ConfigError as err:
        parser.error(str(err))
    run_serve(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
