"""Texts of a serving machine: final (split as BudgetMachine.result splits) and incremental (streaming)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from s1kit.forcing import BudgetMachine, Phase

log = logging.getLogger("s1kit.serve.engine")


@dataclass
class Delta:
    """New text of a streaming job (either part may be empty); ``tokens``: ids so far."""

    reasoning: str = ""
    content: str = ""
    tokens: int = 0


# ---------------------------------------------------------------------------------------------


def _thinks(m: BudgetMachine) -> bool:
    return m.max_thinking is not None


def final_texts(m: BudgetMachine, decode: Callable[[Sequence[int]], str], include_stop: bool = False):
    """(reasoning or None, content, full text) of a finished machine, split as result() splits."""
    ids = m.ids
    end = len(ids) if include_stop or m.answer_end is None else m.answer_end
    full = decode(ids[:end])
    if not _thinks(m):
        return None, full, full
    t_end = m.thinking_end_at if m.thinking_end_at is not None else len(ids)
    reasoning = decode(ids[:min(t_end, len(ids))])
    a0 = m.answer_start
    content = decode(ids[a0:end]) if a0 is not None and a0 < end else ""
    return reasoning, content, full


def _hold(stops) -> int:
    """Trailing tokens a multi-token stop found at the next step could still remove."""
    return stops.window - 1 if stops.texts else 0


class _Segment:
    """Incremental detokenization of a growing id list (TGI/vLLM prefix and read offsets)."""

    __slots__ = ("prefix", "read", "text")

    def __init__(self) -> None:
        self.prefix = 0
        self.read = 0
        self.text = ""

    def advance(self, ids: Sequence[int], decode) -> str:
        if len(ids) <= self.read:
            return ""
        prefix_text = decode(ids[self.prefix:self.read])
        new_text = decode(ids[self.prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd") and new_text.startswith(prefix_text):
            delta = new_text[len(prefix_text):]
            self.prefix, self.read = self.read, len(ids)
            self.text += delta
            return delta
        return ""

    def finish(self, final: str) -> str:
        if final.startswith(self.text):
            delta = final[len(self.text):]
        else:  # pragma: no cover - the hold-back rules make this unreachable
            log.warning("streamed text diverged from the final text; sending the rest only")
            delta = ""
        self.text = final
        return delta


class _StreamState:
    """What a streaming job has sent so far: reasoning + content, or one full text."""

    def __init__(self, split: bool):
        self.split = split
        self.reasoning = _Segment()
        self.content = _Segment()

    def step(self, m: BudgetMachine, decode) -> Delta | None:
        ids = m.ids
        think_hold = _hold(m.cp.thinking_stops) if m.phase is Phase.THINKING else 0
        answer_hold = _hold(m.cp.answer_stops) if m.phase is Phase.ANSWERING else 0
        stable = len(ids) - (think_hold if m.phase is Phase.THINKING else answer_hold)
        if not self.split or not _thinks(m):
            d = self.content.advance(ids[:max(0, stable)], decode)
            return Delta(content=d) if d else None
        r_end = stable if m.thinking_end_at is None else min(m.thinking_end_at, len(ids))
        r = self.reasoning.advance(ids[:max(0, r_end)], decode)
        c = ""
        a0 = m.answer_start
        if a0 is not None and a0 < stable:
            c = self.content.advance(ids[a0:stable], decode)
        return Delta(r, c) if (r or c) else None

    def finish(self, reasoning: str | None, content: str, full: str) -> Delta | None:
        if not self.split or reasoning is None:
            d = self.content.finish(full if not self.split else content)
            return Delta(content=d) if d else None
        r, c = self.reasoning.finish(reasoning), self.content.finish(content)
        return Delta(r, c) if (r or c) else None


