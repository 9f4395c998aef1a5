"""`BudgetPolicy`: what budget forcing should do for one request (flat, validated, documented).

    from s1kit.forcing import BudgetPolicy
    policy = BudgetPolicy(max_thinking_tokens=2048, num_ignore=2)        # s1 / Qwen ChatML format
    policy = BudgetPolicy.preset("r1", max_thinking_tokens=4096)         # <think> ... </think>

Like vLLM's ``SamplingParams`` every field is plain data with a documented meaning and range, and
a bad value fails at construction with a :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from s1kit.forcing.format import FORMATS, S1, ThinkingFormat
from s1kit.forcing.validation import ConfigError, check_float, check_int, from_dict

AUTO = "auto"


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class BudgetPolicy:
    """Two-way budget forcing for one sequence (s1 paper, section 3.1).

    Token counts are in tokens of the model's tokenizer. Thinking tokens count only tokens the
    model generated itself: forced tokens (ignore strings, the end delimiter, the answer prefix)
    are counted apart, as s1's reference does.
    """

    max_thinking_tokens: int | str | None = field(default=AUTO, metadata=_doc(
        "Cap on model-generated thinking tokens; at the cap the end-of-thinking delimiter and "
        "`forced_answer_prefix` are appended. 'auto' = context window - prompt - answer reserve; "
        "None = no thinking phase (plain generation). Range: int >= 0, 'auto' or None."))
    min_thinking_tokens: int = field(default=0, metadata=_doc(
        "Suppress every attempt to end thinking (appending an ignore string) until this many "
        "thinking tokens were generated, unless the cap comes first. Range: 0 <= min <= max."))
    num_ignore: int = field(default=0, metadata=_doc(
        "Suppress the first N attempts to end thinking early, appending an ignore string each "
        "time (s1's 'Wait' extension). Range: int >= 0."))
    ignore_strings: tuple[str, ...] = field(default=("Wait",), metadata=_doc(
        "Strings appended when an end of thinking is suppressed, used in turn (cycled). Each is "
        "tokenized on its own and appended as ids right after the last generated token: the "
        "generated text is never re-tokenized, so 'Wait' stays id 14190 in Qwen even after a "
        "space. Put a leading space or newline in the string to get ' Wait' or '\\nWait'."))
    thinking_start: str = field(default=S1.start, metadata=_doc(
        "Delimiter appended to the prompt to open thinking (may be empty when the chat template "
        "already opens it)."))
    thinking_end: str = field(default=S1.end, metadata=_doc(
        "Delimiter that closes thinking, forced after a natural end and at the cap."))
    thinking_stops: tuple[str, ...] = field(default=S1.thinking_stops, metadata=_doc(
        "Sequences whose generation means 'the model ends thinking'. Multi-token sequences are "
        "allowed and found at any token boundary (also inside merged tokens); the tokens that "
        "form the match are removed before forcing."))
    answer_stops: tuple[str, ...] = field(default=S1.answer_stops, metadata=_doc(
        "Sequences that end the answer (the tokenizer's EOS ids always do too)."))
    forced_answer_prefix: str = field(default=S1.answer_prefix, metadata=_doc(
        "Text forced after the end delimiter when the cap ends thinking, as s1: "
        "'[\\n]<thinking_end>\\n<prefix>'. Empty for none."))
    max_answer_tokens: int = field(default=1024, metadata=_doc(
        "Cap on model-generated answer tokens (the stop token included). Range: int >= 1."))
    temperature: float = field(default=0.0, metadata=_doc("Sampling temperature; 0 = greedy. Range: [0, 100]."))
    top_p: float = field(default=1.0, metadata=_doc("Nucleus sampling mass. Range: (0, 1]."))
    top_k: int = field(default=0, metadata=_doc("Keep the k most likely tokens; 0 = all. Range: int >= 0."))
    seed: int = field(default=0, metadata=_doc(
        "Sampling seed; each sample's generator is seeded from (seed, sample id), so results do "
        "not depend on batch composition. Range: int >= 0."))

    def __post_init__(self) -> None:
        mt = self.max_thinking_tokens
        if mt is not None and mt != AUTO:
            check_int("max_thinking_tokens", mt, 0)
        check_int("min_thinking_tokens", self.min_thinking_tokens, 0)
        if isinstance(mt, int) and self.min_thinking_tokens > mt:
            raise ConfigError("min_thinking_tokens", self.min_thinking_tokens,
                              f"an integer in [0, max_thinking_tokens={mt}]")
        check_int("num_ignore", self.num_ignore, 0, 1_000_000)
        if mt is None and (self.num_ignore or self.min_thinking_tokens):
            raise ConfigError("max_thinking_tokens", None,
                              "an int or 'auto' when num_ignore or min_thinking_tokens is set")
        _check_strings("ignore_strings", self.ignore_strings, allow_empty_tuple=False)
        _check_strings("thinking_stops", self.thinking_stops, allow_empty_tuple=False)
        _check_strings("answer_stops", self.answer_stops, allow_empty_tuple=True)
        for name in ("thinking_start", "forced_answer_prefix"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, getattr(self, name), "a string (may be empty)")
        if not isinstance(self.thinking_end, str) or not self.thinking_end:
            raise ConfigError("thinking_end", self.thinking_end, "a non-empty string")
        check_int("max_answer_tokens", self.max_answer_tokens, 1)
        check_float("temperature", self.temperature, 0.0, 100.0)
        check_float("top_p", self.top_p, 0.0, 1.0, lo_open=True)
        check_int("top_k", self.top_k, 0)
        check_int("seed", self.seed, 0)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BudgetPolicy":
        """Build from a mapping (YAML, JSON request); unknown keys are an error naming the key."""
        return from_dict(cls, dict(data))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BudgetPolicy":
        """A named ThinkingFormat preset: 's1' (Qwen ChatML think/answer), 'r1' (<think> / </think>) or
        'qwen3' (<think> / </think> in a ChatML turn)."""
        if name not in PRESETS:
            raise ConfigError("preset", name, "one of " + ", ".join(sorted(PRESETS)))
        return cls.from_dict({**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> "BudgetPolicy":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def with_format(cls, fmt: ThinkingFormat, **overrides: Any) -> "BudgetPolicy":
        return cls.from_dict({**fmt.policy_fields(), **overrides})

    # -- derived -----------------------------------------------------------------------------

    @property
    def format(self) -> ThinkingFormat:
        """The policy's delimiters as a ThinkingFormat (a preset's own, when they are a preset's)."""
        fmt = ThinkingFormat(start=self.thinking_start, end=self.thinking_end, thinking_stops=self.thinking_stops,
                             answer_stops=self.answer_stops, answer_prefix=self.forced_answer_prefix)
        same = [f for f in FORMATS.values() if f.policy_fields() == fmt.policy_fields()]
        return same[0] if same else fmt

    @property
    def thinks(self) -> bool:
        """False for plain generation (no thinking phase)."""
        return self.max_thinking_tokens is not None

    def cap_text(self) -> str:
        """What the cap appends after the thinking (without the conditional leading newline)."""
        suffix = "\n" + self.forced_answer_prefix if self.forced_answer_prefix else ""
        return self.thinking_end + suffix


PRESETS: dict[str, dict[str, Any]] = {name: ({} if fmt == S1 else fmt.policy_fields())
                                      for name, fmt in FORMATS.items()}


def _check_strings(name: str, value: Any, allow_empty_tuple: bool) -> None:
    allowed = "a list of non-empty strings" + ("" if allow_empty_tuple else " (at least one)")
    if not isinstance(value, tuple) or (not value and not allow_empty_tuple):
        raise ConfigError(name, value, allowed)
    if any(not isinstance(s, str) or not s for s in value):
        raise ConfigError(name, value, allowed)
