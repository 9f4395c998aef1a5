"""A teacher's chat completion as (thinking, attempt, finish_reason, usage), or why it cannot be one.

The trace is ``message.reasoning_content`` (DeepSeek-R1, s1kit; ``reasoning`` on some vLLM
versions) or a ``<think>...</think>`` block at the start of ``content``; the attempt is the rest.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

THINK_BLOCK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


class Malformed(ValueError):
    """A response that cannot give a trace and an attempt; ``reason`` is the drop reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def split_thinking(message: Mapping[str, Any]) -> tuple[str, str]:
    """(thinking, attempt) from a chat message: ``reasoning_content``/``reasoning`` or inline <think>."""
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise Malformed("malformed:content_not_text")
    content = content or ""
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if thinking is not None and not isinstance(thinking, str):
        raise Malformed("malformed:reasoning_not_text")
    if not thinking:
        match = THINK_BLOCK.match(content)
        if match is None:
            raise Malformed("no_thinking")
        thinking, content = match.group(1), content[match.end():]
    thinking, attempt = thinking.strip(), content.strip()
    if not thinking:
        raise Malformed("empty_thinking")
    if not attempt:
        raise Malformed("empty_attempt")
    return thinking, attempt


def parse_chat_response(body: Any) -> tuple[str, str, str | None, dict[str, int]]:
    """(thinking, attempt, finish_reason, usage) of a chat completion body, else :class:`Malformed`."""
    if not isinstance(body, dict):
        raise Malformed("malformed:not_an_object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Malformed("malformed:no_choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise Malformed("malformed:no_message")
    thinking, attempt = split_thinking(message)
    return thinking, attempt, choices[0].get("finish_reason"), usage_of(body.get("usage"))


def usage_of(usage: Any) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {}
    details = usage.get("completion_tokens_details") or {}
    out = {k: usage[k] for k in ("prompt_tokens", "completion_tokens") if isinstance(usage.get(k), int)}
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out["reasoning_tokens"] = details["reasoning_tokens"]
    return out
