"""Response bodies (OpenAI / vLLM shapes): usage with budget accounting, choices, logprobs, SSE."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

USAGE_SUMS = ("waits_injected", "forced_tokens", "answer_tokens")


def choice_usage(prompt_tokens: int, fin) -> dict[str, Any]:
    r = fin.result
    completion = len(fin.completion_ids)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": r.thinking_tokens},
            "waits_injected": r.waits_injected, "forced_end": r.forced_end,
            "forced_tokens": r.forced_tokens, "answer_tokens": r.answer_tokens}


def usage_of(prep, fins: Sequence[Any]) -> dict[str, Any]:
    """One usage for the request: prompts counted once each, every choice's tokens summed
    (forced_end: whether any choice was forced to end)."""
    per = [choice_usage(len(prep.prompts[c.prompt]), f) for c, f in zip(prep.choices, fins)]
    if len(per) == 1:
        return per[0]
    prompt = sum(len(ids) for ids in prep.prompts)
    completion = sum(u["completion_tokens"] for u in per)
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
           "completion_tokens_details": {"reasoning_tokens": sum(u["completion_tokens_details"]["reasoning_tokens"]
                                                                 for u in per)},
           "forced_end": any(u["forced_end"] for u in per)}
    out.update({k: sum(u[k] for u in per) for k in USAGE_SUMS})
    return out


def _ids(prep, choice, fin, body: dict[str, Any]) -> None:
    if prep.return_token_ids:
        body["token_ids"] = fin.completion_ids
        body["prompt_token_ids"] = prep.prompts[choice.prompt]
    if len(prep.choices) > 1:
        body["usage"] = choice_usage(len(prep.prompts[choice.prompt]), fin)


def logprobs_body(prep, choice, fin, scores, decode: Callable[[Sequence[int]], str]) -> dict[str, Any]:
    """vLLM's completion logprobs: tokens, token_logprobs, top_logprobs, text_offset.

    ``scores[i]`` is (logprob, [(id, logprob), ...]) of token i + 1 of prompt + completion ids;
    with ``echo`` the prompt's tokens come first (the very first has no logprob: None).
    """
    prompt = prep.prompts[choice.prompt]
    ids = list(prompt) + list(fin.completion_ids)
    first = 0 if prep.echo else len(prompt)
    tokens, lps, tops, offsets, offset = [], [], [], [], 0
    for pos in range(first, len(ids)):
        tok = decode([ids[pos]])
        tokens.append(tok)
        offsets.append(offset)
        offset += len(tok)
        if pos == 0:
            lps.append(None)
            tops.append(None)
            continue
        lp, top = scores[pos - 1]
        lps.append(lp)
        entry: dict[str, float] = {}
        for j, v in top[:prep.logprobs]:
            entry.setdefault(decode([j]), v)  # ids that decode alike (byte pieces): keep the likeliest
        entry.setdefault(tok, lp)
        tops.append(entry)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def completion_body(prep, fins, rid: str, created: int, model: str, logprobs=None) -> dict[str, Any]:
    choices = []
    for k, (choice, fin) in enumerate(zip(prep.choices, fins)):
        text = (prep.prompt_texts[choice.prompt] + fin.text) if prep.echo else fin.text
        body: dict[str, Any] = {"index": choice.index, "text": text,
                                "logprobs": logprobs[k] if logprobs is not None else None,
                                "finish_reason": fin.result.finish_reason}
        _ids(prep, choice, fin, body)
        choices.append(body)
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": usage_of(prep, fins)}


def chat_message(prep, fin) -> dict[str, Any]:
    """content, and the reasoning under both names (``reasoning``: vLLM >= 0.10, Ollama,
    OpenRouter; ``reasoning_content``: DeepSeek, older vLLM), unless include_reasoning is false."""
    reasoning = fin.reasoning if prep.include_reasoning else None
    return {"role": "assistant", "content": fin.content, "reasoning": reasoning, "reasoning_content": reasoning}


def chat_body(prep, fins, rid: str, created: int, model: str) -> dict[str, Any]:
    choices = []
    for choice, fin in zip(prep.choices, fins):
        body: dict[str, Any] = {"index": choice.index, "message": chat_message(prep, fin), "logprobs": None,
                                "finish_reason": fin.result.finish_reason}
        _ids(prep, choice, fin, body)
        choices.append(body)
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage_of(prep, fins)}


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
