"""Rendering teacher traces in the s1 format: SFT text, direct answers, worked examples, the base corpus.

    prompt, completion = render_s1(question, thinking, attempt)
"""

from __future__ import annotations

import random
from typing import Any, Iterable

THINK = "<|im_start|>think"
ANSWER = "<|im_start|>answer"
END = "<|im_end|>"


# --------------------------------------------------------------------------------------------
# Rendering in the s1 format
# --------------------------------------------------------------------------------------------


def render_prompt(question: str) -> str:
    """s1's prompt without a system turn: ``<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n``."""
    from s1kit.formats import chatml

    return chatml(question, system=None)


def render_s1(question: str, thinking: str, attempt: str) -> tuple[str, str]:
    """(prompt, completion) as s1's SFT text: thinking, the answer delimiter, the attempt, <|im_end|>.

    Same layout as ``s1kit train``'s default ``completion_format`` with ``answer_prefix``
    'Answer: ' (the attempt already carries it).
    """
    return render_prompt(question), f"{THINK}\n{thinking}\n{ANSWER}\n{attempt}{END}"


def render_direct(question: str, attempt: str) -> tuple[str, str]:
    """(prompt, completion) for a model that answers directly, without a thinking phase."""
    return render_prompt(question), f"{attempt}{END}"


WORKED_OPEN = "\nA worked solution:\n"
"""Between a worked example's question and its first line: as many tokens (20, one per character)
as the s1 chat format puts between the question and the first thinking line
(``<|im_end|>\\n<|im_start|>assistant\\n<|im_start|>think\\n``, special tokens counted as one)."""
WORKED_CLOSE = "\nResult:\n"
"""Between a worked example's last line and its answer: as many tokens as ``\\n<|im_start|>answer\\n``."""


def render_worked(question: str, thinking: str, attempt: str) -> tuple[str, str]:
    """(prompt, completion) of a *worked example*: a plain document outside the chat format.

    ``"{question}\nA worked solution:\n"`` then ``"{thinking}\nResult:\n{attempt}<|im_end|>"``: what a
    base model's pre-training corpus holds besides direct answers (textbook solutions). No
    think/answer delimiters and no chat turns, so a base model trained on both still answers a chat
    prompt directly; SFT then only has to tie the steps it has seen to the s1 thinking format
    (docs/learnability.md). The separators have the chat format's token counts, so every
    fixed-distance copy the base learns (the question's operands into the first line, the last
    line's result into the answer) sits at the same distance after SFT (finding 10).
    """
    return f"{question}{WORKED_OPEN}", f"{thinking}{WORKED_CLOSE}{attempt}{END}"


def base_corpus(rows: Iterable[dict[str, Any]], worked_share: float = 0.8,
                seed: int = 0) -> list[tuple[str, str, str]]:
    """The base model's pre-training corpus from teacher rows: (prompt, completion, kind) triples.

    A seeded shuffle, then the first ``round(worked_share * n)`` rows become worked examples
    (:func:`render_worked`, kind 'worked') and the rest direct chat answers (:func:`render_direct`,
    kind 'direct'). 0.8 is the share measured in docs/learnability.md: a 0.13M model pre-trained
    3 CPU-minutes on it has learned the steps, and 1,000 traces x 5 epochs of SFT then work.
    """
    if not 0.0 <= worked_share <= 1.0:
        raise ValueError(f"worked_share={worked_share!r} is invalid: allowed a number in [0, 1]")
    pool = list(rows)
    random.Random(seed).shuffle(pool)
    k = int(round(worked_share * len(pool)))
    return ([(*render_worked(r["question"], r["thinking"], r["attempt"]), "worked") for r in pool[:k]]
            + [(*render_direct(r["question"], r["attempt"]), "direct") for r in pool[k:]])


def parse_answer(answer_text: str) -> str:
    """The answer a model gave: text after the last 'Answer:' (or all of it), whitespace-normalised."""
    text = answer_text.replace(END, "")
    if "Answer:" in text:
        text = text.rsplit("Answer:", 1)[1]
    return " ".join(text.split())
