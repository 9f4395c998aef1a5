"""The server's configuration (``s1kit serve`` flags and a recipe's ``serve:`` section)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from s1kit.forcing import ConfigError
from s1kit.forcing.policy import AUTO, PRESETS
from s1kit.forcing.validation import check_choice, check_float, check_int

MIN_TEMPERATURE = 1e-5
"""Temperatures in (0, MIN_TEMPERATURE) are greedy (vLLM's sampling epsilon): dividing logits by
a smaller number overflows (1e-39 is subnormal in float32), so such a request decodes as 0."""

DEFAULT_EFFORTS = "none=none,minimal=256,low=1024,medium=4096,high=auto,xhigh=auto"
EFFORT_NAMES = ("none", "minimal", "low", "medium", "high", "xhigh")


def check_finite(name: str, value: Any, lo: float, hi: float, lo_open: bool = False) -> None:
    """check_float that also refuses NaN (every comparison with NaN is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, value, f"a finite number in {'(' if lo_open else '['}{lo}, {hi}]")
    check_float(name, value, lo, hi, lo_open=lo_open)


def parse_efforts(text: str) -> dict[str, int | str | None]:
    """'none=none,low=1024,high=auto' -> {'none': None, 'low': 1024, 'high': 'auto'}."""
    want = "name=budget pairs such as 'low=1024,high=auto' (budget: an int >= 0, auto or none)"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("reasoning_effort_budgets", text, want)
    out: dict[str, int | str | None] = {}
    for pair in text.split(","):
        name, sep, value = (p.strip() for p in pair.partition("="))
        if not sep or not name or not value:
            raise ConfigError("reasoning_effort_budgets", text, want)
        if value in ("none", "null"):
            out[name] = None
        elif value == AUTO:
            out[name] = AUTO
        elif value.isdigit():
            out[name] = int(value)
        else:
            raise ConfigError("reasoning_effort_budgets", text, want)
    return out


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
    strict_fields: bool = field(default=False, metadata=_doc(
        "Reject unknown request fields with 400 (default: accept them with a logged warning, as vLLM)."))
    reasoning_effort_budgets: str = field(default=DEFAULT_EFFORTS, metadata=_doc(
        "The thinking cap of each reasoning_effort value, as name=budget pairs (budget: an int, "
        "'auto' = whatever max_tokens leaves, 'none' = no thinking)."))

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
        check_finite("default_temperature", self.default_temperature, 0.0, 2.0)
        check_finite("request_timeout_s", self.request_timeout_s, 0.0, 1e7, lo_open=True)
        if self.num_threads is not None:
            check_int("num_threads", self.num_threads, 1, 1024)

        self.efforts = parse_efforts(self.reasoning_effort_budgets)

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model


