"""Show which tokens of a sample carry loss (the `--inspect true` mode of `s1kit train`).

    s1kit train --config recipes/s1.1-32b.yaml --dataset s1K-1.1.parquet --inspect true
    print(render_inspection(tokenizer, example))

Tokens outside the loss are shown plain; loss-carrying spans are wrapped in ⟦ ⟧. A summary names the
first and last loss tokens and the token counts; long samples are elided in the middle.
"""

from __future__ import annotations

from typing import Any

from s1kit.train.data import IGNORE, Example

OPEN, CLOSE = "⟦", "⟧"


def loss_tokens(tokenizer: Any, example: Example) -> list[dict[str, Any]]:
    """One entry per token: position, id, text and whether it carries loss."""
    return [{"pos": i, "id": tid, "text": tokenizer.decode([tid]), "loss": label != IGNORE}
            for i, (tid, label) in enumerate(zip(example.input_ids, example.labels))]


def summarize(tokenizer: Any, example: Example) -> dict[str, Any]:
    """Counts and the boundary tokens of the loss span."""
    toks = loss_tokens(tokenizer, example)
    on = [t for t in toks if t["loss"]]
    return {"id": example.id, "tokens": len(toks), "prompt_tokens": example.prompt_len, "loss_tokens": len(on),
            "first_loss_token": on[0] if on else None, "last_loss_token": on[-1] if on else None,
            "loss_span_contiguous": bool(on) and on[-1]["pos"] - on[0]["pos"] + 1 == len(on),
            "truncated": example.truncated}


def render_inspection(tokenizer: Any, example: Example, max_chars: int = 4000) -> str:
    """The sample's text with loss spans marked, and a summary header."""
    s = summarize(tokenizer, example)
    first, last = s["first_loss_token"], s["last_loss_token"]
    head = (f"sample {s['id']}: {s['tokens']} tokens = {s['prompt_tokens']} prompt (no loss) + "
            f"{s['loss_tokens']} with loss; first loss token {first and (first['pos'], first['text'])!r}, "
            f"last {last and (last['pos'], last['text'])!r}; contiguous={s['loss_span_contiguous']}, "
            f"truncated={s['truncated']}")
    text = _marked_text(tokenizer, example)
    if len(text) > max_chars:
        half = max_chars // 2
        text = f"{text[:half]}\n[... {len(text) - max_chars} characters elided ...]\n{text[-half:]}"
    return f"{head}\n{text}"


def _marked_text(tokenizer: Any, example: Example) -> str:
    pieces, run, state = [], [], False
    for tid, label in zip(example.input_ids, example.labels):
        if (label != IGNORE) != state:
            pieces.append(_flush(tokenizer, run, state))
            run, state = [], label != IGNORE
        run.append(tid)
    pieces.append(_flush(tokenizer, run, state))
    return "".join(pieces)


def _flush(tokenizer: Any, ids: list[int], loss: bool) -> str:
    if not ids:
        return ""
    text = tokenizer.decode(ids)
    return f"{OPEN}{text}{CLOSE}" if loss else text
