"""Chat messages: validation and rendering through the tokenizer's chat template (or ChatML)."""

from __future__ import annotations

from typing import Any

from s1kit.serve.protocol import MAX_MESSAGES, MESSAGE_ROLES, bad

ASSISTANT_FIELDS = {"reasoning_content", "reasoning", "refusal", "tool_calls"}


def check_messages(raw: Any) -> list[dict[str, str]]:
    """The conversation as {role, content} dicts; an assistant turn may carry its reasoning
    as ``reasoning_content`` (DeepSeek, older vLLM) or ``reasoning`` (vLLM, OpenRouter, Ollama)."""
    if not isinstance(raw, list) or not raw:
        raise bad("messages", "'messages' must be a non-empty list of messages")
    if len(raw) > MAX_MESSAGES:
        raise bad("messages", f"at most {MAX_MESSAGES} messages are allowed")
    out = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(where, f"'{where}' must be an object with 'role' and 'content'")
        role = msg.get("role")
        if role not in MESSAGE_ROLES:
            raise bad(f"{where}.role", f"'{where}.role' must be one of {', '.join(MESSAGE_ROLES)}")
        allowed = {"role", "content", "name"} | (ASSISTANT_FIELDS if role == "assistant" else set())
        extra = sorted(set(msg) - allowed)
        if extra:
            raise bad(f"{where}.{extra[0][:100]}", f"Unrecognized message field: {extra[0][:100]}")
        for key in ("refusal", "tool_calls"):
            if msg.get(key) not in (None, []):
                raise bad(f"{where}.{key}", f"'{where}.{key}' is not supported")
        for key in ("name", "reasoning_content", "reasoning"):
            if msg.get(key) is not None and not isinstance(msg[key], str):
                raise bad(f"{where}.{key}", f"'{where}.{key}' must be a string")
        out.append({"role": "system" if role == "developer" else role,
                    "content": _content(msg.get("content"), f"{where}.content")})
    return out


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"{where}[{j}]", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported")
            if set(part) - {"type", "text"}:
                raise bad(f"{where}[{j}]", "a text part has only 'type' and 'text'")
            parts.append(part["text"])
        return "".join(parts)
    raise bad(where, f"'{where}' must be a string or a list of text parts")


def render(tokenizer: Any, chat_template: str, messages: list[dict[str, str]],
           template_kwargs: dict[str, Any] | None = None) -> str:
    """The prompt text: the tokenizer's template (with ``chat_template_kwargs``) or ChatML."""
    if chat_template == "auto" and getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                 **(template_kwargs or {}))
        except Exception as err:  # the template rejected the conversation (e.g. role order)
            raise bad("messages", f"the chat template rejected the messages: {str(err)[:200]}") from None
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"
