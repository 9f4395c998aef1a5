"""`ThinkingFormat`: how a model marks its thinking (one definition for train, generate, grade, serve, synth).

    from s1kit.forcing.format import FORMATS, ThinkingFormat
    fmt = FORMATS["r1"]                               # <think> ... </think>
    thinking, answer = fmt.split(model_output_text)   # the answer region, by this format's delimiters

Presets: ``s1`` (s1's Qwen ChatML ``<|im_start|>think`` / ``<|im_start|>answer``), ``r1``
(``<think>`` / ``</think>``, the template does not close the turn with a stop) and ``qwen3``
(``<think>`` / ``</think>`` inside a ChatML turn that ends with ``<|im_end|>``).
A :class:`~s1kit.forcing.BudgetPolicy` carries one (its ``thinking_*``/``answer_stops``/
``forced_answer_prefix`` fields are the format's, ``policy.format`` gives it back).
"""

from __future__ import annotations

from dataclasses import dataclass

from s1kit.forcing.validation import ConfigError


@dataclass(frozen=True)
class ThinkingFormat:
    """Delimiters of the thinking phase and the answer."""

    start: str = "<|im_start|>think"
    """Appended to the prompt to open thinking (empty when the chat template opens it)."""
    end: str = "<|im_start|>answer"
    """Closes thinking (forced after a natural end and at the cap)."""
    thinking_stops: tuple[str, ...] = ("<|im_start|>", "<|im_end|>")
    """Sequences whose generation means the model ends its thinking."""
    answer_stops: tuple[str, ...] = ("<|im_end|>",)
    """Sequences that end the answer (the tokenizer's EOS always does too)."""
    answer_prefix: str = "Final Answer:"
    """Forced after the end delimiter when the cap ends thinking ('' for none)."""
    completion_template: str = "<|im_start|>think\n{thinking}\n<|im_start|>answer\n{answer}"
    """How a training example's completion is written (``{thinking}``, ``{answer}``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.end, str) or not self.end:
            raise ConfigError("thinking_end", self.end, "a non-empty string")

    def split(self, text: str) -> tuple[str, str]:
        """(thinking, answer) of a full output text: the answer is after the last end delimiter,
        up to the first answer stop; no end delimiter: all of it is thinking, the answer is ''."""
        head, sep, answer = text.rpartition(self.end)
        if not sep:
            return text, ""
        for stop in self.answer_stops:
            answer = answer.split(stop, 1)[0]
        thinking = head.split(self.start, 1)[-1] if self.start else head
        return thinking, answer

    def policy_fields(self) -> dict[str, object]:
        """The BudgetPolicy fields this format sets."""
        return {"thinking_start": self.start, "thinking_end": self.end, "thinking_stops": self.thinking_stops,
                "answer_stops": self.answer_stops, "forced_answer_prefix": self.answer_prefix}


S1 = ThinkingFormat()
_THINK_TAGS = "<think>\n{thinking}\n</think>\n\n{answer}"
R1 = ThinkingFormat(start="<think>\n", end="</think>", thinking_stops=("</think>",), answer_stops=(),
                    completion_template=_THINK_TAGS)
QWEN3 = ThinkingFormat(start="<think>\n", end="</think>", thinking_stops=("</think>", "<|im_end|>"),
                       answer_stops=("<|im_end|>",), completion_template=_THINK_TAGS)
FORMATS: dict[str, ThinkingFormat] = {"s1": S1, "r1": R1, "qwen3": QWEN3}


def get_format(name: str) -> ThinkingFormat:
    if name not in FORMATS:
        raise ConfigError("preset", name, "one of " + ", ".join(sorted(FORMATS)))
    return FORMATS[name]
