"""Chat formats: prompt rendering for generation (the s1 / Qwen ChatML layout by default).

    ids = render_prompt_ids(tokenizer, "How many r in raspberry?", template="auto")
"""

from __future__ import annotations

from typing import Any

from s1kit.forcing.validation import check_choice

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TEMPLATES = ("auto", "chatml", "none")


def chatml(question: str, system: str | None = QWEN_SYSTEM) -> str:
    """s1's prompt: optional system turn, user turn, open assistant turn (thinking comes next)."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def render_prompt(tokenizer: Any, question: str, template: str = "auto", system: str | None = None) -> str:
    """The prompt text: the tokenizer's chat template ('auto', ChatML if it has none), our
    ChatML ('chatml') or the raw question ('none')."""
    check_choice("chat_template", template, TEMPLATES)
    if template == "none":
        return question
    if template == "auto" and getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return chatml(question, system)


def render_prompt_ids(tokenizer: Any, question: str, template: str = "auto", system: str | None = None) -> list[int]:
    return tokenizer.encode(render_prompt(tokenizer, question, template, system), add_special_tokens=False)
