"""Peers' thinking-budget and effort fields, mapped onto s1kit's ``max_thinking_tokens``.

Every name other servers and clients send for the same thing (see README, "Serving"):

=============================  =============================================================
``max_thinking_tokens``        s1kit: an int, ``"auto"``, or null (no thinking phase)
``thinking_token_budget``      vLLM, TensorRT-LLM: an int; ``-1`` = unlimited (``"auto"``)
``thinking_budget_tokens``     llama.cpp: the same
``reasoning``                  OpenRouter: ``{max_tokens | effort, enabled, exclude}``
``thinking``                   Anthropic / DeepSeek: ``{type: enabled|disabled, budget_tokens}``
``reasoning_effort``           OpenAI et al.: a name looked up in ``--reasoning-effort-budgets``
``chat_template_kwargs``       vLLM, SGLang, llama.cpp: ``enable_thinking`` / ``thinking``
``include_reasoning``          vLLM, OpenRouter: false leaves the reasoning out of the response
=============================  =============================================================

Two fields that set the same thing to different values are a 400 naming both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from s1kit.forcing.policy import AUTO

UNSET: Any = object()
DEFAULT: Any = object()  # "thinking on, with the server's default cap"
BUDGET_ALIASES = ("thinking_token_budget", "thinking_budget_tokens", "reasoning", "thinking", "reasoning_effort",
                  "chat_template_kwargs", "include_reasoning")
MAX_TEMPLATE_KWARGS = 32
RESERVED_TEMPLATE_ARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
    "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs", "processor_kwargs"})


@dataclass
class Budget:
    """What a request's budget fields say: the thinking cap (UNSET: nothing said), where it
    came from, whether to return the reasoning, and extra chat-template variables."""

    thinking: Any = UNSET
    source: str | None = None
    include_reasoning: bool = True
    template_kwargs: dict[str, Any] = field(default_factory=dict)


def _budget_int(value: Any, name: str, bad) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise bad(name, f"'{name}' must be an integer >= 0, or -1 for unlimited, got {value!r:.80}")
    return AUTO if value == -1 else value


def _dict(body: dict, name: str, keys: tuple[str, ...], bad) -> dict:
    value = body[name]
    if not isinstance(value, dict):
        raise bad(name, f"'{name}' must be an object")
    extra = sorted(set(value) - set(keys))
    if extra:
        raise bad(f"{name}.{extra[0][:100]}", f"'{name}' has no field '{extra[0][:100]}' (known: {', '.join(keys)})")
    return value


def _bool_of(value: Any, name: str, bad) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise bad(name, f"'{name}' must be a boolean")
    return value


def _effort(value: Any, name: str, efforts: dict, bad) -> Any:
    if not isinstance(value, str) or value not in efforts:
        raise bad(name, f"'{name}' must be one of {', '.join(efforts)} (or null), got {value!r:.80}")
    return efforts[value]


def _from_reasoning(body: dict, efforts: dict, bad, say) -> None:
    r = _dict(body, "reasoning", ("max_tokens", "effort", "enabled", "exclude"), bad)
    enabled = _bool_of(r.get("enabled"), "reasoning.enabled", bad)
    if r.get("max_tokens") is not None:
        say("reasoning.max_tokens", _budget_int(r["max_tokens"], "reasoning.max_tokens", bad))
    if r.get("effort") is not None:
        say("reasoning.effort", _effort(r["effort"], "reasoning.effort", efforts, bad))
    if enabled is not None:
        say("reasoning.enabled", DEFAULT if enabled else None)
    if _bool_of(r.get("exclude"), "reasoning.exclude", bad):
        say("reasoning.exclude", False, target="include_reasoning")


def _from_thinking(body: dict, bad, say) -> None:
    t = _dict(body, "thinking", ("type", "budget_tokens"), bad)
    kind = t.get("type")
    if kind not in (None, "enabled", "disabled", "auto"):
        raise bad("thinking.type", "'thinking.type' must be enabled, disabled or auto")
    if kind == "disabled":
        say("thinking.type", None)
    elif kind == "enabled" and t.get("budget_tokens") is None:
        say("thinking.type", DEFAULT)
    if t.get("budget_tokens") is not None:
        say("thinking.budget_tokens", _budget_int(t["budget_tokens"], "thinking.budget_tokens", bad))


def _from_template_kwargs(body: dict, bad, say) -> dict[str, Any]:
    kw = body["chat_template_kwargs"]
    if not isinstance(kw, dict) or len(kw) > MAX_TEMPLATE_KWARGS:
        raise bad("chat_template_kwargs", f"'chat_template_kwargs' must be an object of at most "
                                          f"{MAX_TEMPLATE_KWARGS} variables")
    for key in kw:
        if key in RESERVED_TEMPLATE_ARGS:
            raise bad(f"chat_template_kwargs.{key}", f"'chat_template_kwargs.{key}' is an argument of the "
                                                     "template call, not a template variable")
    for key in ("enable_thinking", "thinking"):
        flag = _bool_of(kw.get(key), f"chat_template_kwargs.{key}", bad)
        if flag is not None:
            say(f"chat_template_kwargs.{key}", DEFAULT if flag else None)
    return dict(kw)


def resolve_budget(body: dict, efforts: dict, bad) -> Budget:
    """Collect every budget field of ``body``; raise ``bad(param, message)`` on a conflict."""
    said: dict[str, list[tuple[str, Any]]] = {"thinking": [], "include_reasoning": []}

    def say(source: str, value: Any, target: str = "thinking") -> None:
        said[target].append((source, value))

    if "max_thinking_tokens" in body:
        say("max_thinking_tokens", body["max_thinking_tokens"])  # null here means: no thinking phase
    for name in ("thinking_token_budget", "thinking_budget_tokens"):
        if body.get(name) is not None:
            say(name, _budget_int(body[name], name, bad))
    if body.get("reasoning_effort") is not None:
        say("reasoning_effort", _effort(body["reasoning_effort"], "reasoning_effort", efforts, bad))
    if body.get("reasoning") is not None:
        _from_reasoning(body, efforts, bad, say)
    if body.get("thinking") is not None:
        _from_thinking(body, bad, say)
    kwargs = _from_template_kwargs(body, bad, say) if body.get("chat_template_kwargs") is not None else {}
    if _bool_of(body.get("include_reasoning"), "include_reasoning", bad) is not None:
        say("include_reasoning", body["include_reasoning"], target="include_reasoning")
    out = Budget(template_kwargs=kwargs)
    for target, items in said.items():
        concrete = [(s, v) for s, v in items if v is not DEFAULT] or items[:1]
        for (s1, v1), (s2, v2) in zip(concrete, concrete[1:]):
            if v1 != v2 or type(v1) is not type(v2):
                raise bad(s2, f"'{s1}' and '{s2}' disagree ({_shown(v1)} vs {_shown(v2)}); give one of them")
        if target == "thinking" and items:
            if any(v is None for _, v in items) and any(v is DEFAULT for _, v in items):
                (s1, _), (s2, _) = [i for i in items if i[1] is None][:1] + [i for i in items if i[1] is DEFAULT][:1]
                raise bad(s2, f"'{s1}' and '{s2}' disagree (thinking off vs on); give one of them")
            out.thinking, out.source = concrete[0][1], concrete[0][0]
        elif items:
            out.include_reasoning = bool(concrete[0][1])
    return out


def _shown(value: Any) -> str:
    if value is DEFAULT:
        return "thinking on"
    return "no thinking" if value is None else repr(value)[:40]
