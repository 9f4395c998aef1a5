"""Self-checks that re-read the question: what a ``Wait`` starts in the teacher's traces.

    lines = verified_trace(problem, layout, lines, answer, n_checks=2, corrected=None)

For the families listed in :data:`VERIFIERS` (add_chain and count_letter, grid layouts: the
embedded default), a check does not re-derive the trace's last step: it re-reads the question by
another route than the trace's first line (docs/learnability.md, issue 14):

- add_chain: ``Wait, check: 3+4+5+1 has 4 terms. Yes, 3.`` re-copies the operands from the
  question (left-aligned, after the trace: not the first line's fixed-offset copy) and counts them;
- count_letter: ``Wait, check: l in hello is ll, 2. Yes, 2.`` re-copies the letter and the word
  and recounts (the occurrences written out, then their number).

A trace carries zero, one or two checks, each ending with the restated answer just before the
end of thinking, so a ``Wait`` after a finished check is something the model has seen. A
*caught* mistake is the error tiny models actually make, a mis-copy of the question in the first
line (a term dropped or added, the wrong letter fetched): the trace is computed on the mis-copy,
and its first check finds the difference and corrects it: ``... has 4 terms. No:`` followed by the
grid of the right operands and ``so it is Y.`` (add_chain), ``... is ll, 2. No: so it is 2.``
(count_letter).
"""

from __future__ import annotations

import random
from typing import Any, Callable

from s1kit.synth.tasks import Problem

CHECK = "Wait, check: "
MAX_CHECKS = 2


def _chain_check(d: dict[str, Any]) -> str:
    terms = d["terms"]
    return f"{CHECK}{'+'.join(map(str, terms))} has {len(terms)} terms."


def _letter_check(d: dict[str, Any]) -> str:
    count = d["word"].count(d["letter"])
    return f"{CHECK}{d['letter']} in {d['word']} is {d['letter'] * count or 'none'}, {count}."


def _chain_miscopy(rng: random.Random, d: dict[str, Any]) -> dict[str, Any] | None:
    """The chain with one term dropped or one digit added (a different sum), None if impossible."""
    terms = list(d["terms"])
    for _ in range(20):
        t = list(terms)
        k = rng.randrange(len(t))
        if rng.random() < 0.5 and len(t) > 2:
            del t[k]
        else:
            t.insert(k, rng.randrange(1, 10))
        if sum(t) % 10 != sum(terms) % 10 and len(t) <= 9:
            return {**d, "terms": t}
    return None


def _letter_miscopy(rng: random.Random, d: dict[str, Any]) -> dict[str, Any] | None:
    """The wrong letter fetched (another letter of the word, or any letter) with another count."""
    word, letter = d["word"], d["letter"]
    right = word.count(letter)
    options = sorted({c for c in word if c != letter and word.count(c) != right})
    absent = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in word]
    options += rng.sample(absent, min(3, len(absent))) if right else []
    if not options:
        return None
    return {**d, "letter": rng.choice(options)}


# family -> (layouts verified, the check line of the question's data, a mis-copy of the data)
VERIFIERS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], str],
                           Callable[[random.Random, dict[str, Any]], dict[str, Any] | None]]] = {
    "add_chain": (("grid",), _chain_check, _chain_miscopy),
    "count_letter": (("grid",), _letter_check, _letter_miscopy),
}


def verifies(family: str, layout: str) -> bool:
    """Whether (family, layout) gets question-re-reading checks (else: the last-step check)."""
    return family in VERIFIERS and layout in VERIFIERS[family][0]


def draw_checks(rng: random.Random, check_rate: float) -> int:
    """0, 1 or 2 checks: each further check with probability ``check_rate`` (at most two)."""
    k = 0
    while k < MAX_CHECKS and rng.random() < check_rate:
        k += 1
    return k


def miscopy(problem: Problem, rng: random.Random) -> dict[str, Any] | None:
    return VERIFIERS[problem.family][2](rng, problem.data)


def check_lines(problem: Problem, answer: str, n_checks: int, own_answer: str | None = None) -> list[str]:
    """``n_checks`` agreeing checks of ``answer``.

    ``own_answer``: an uncaught mistake's answer, which its checks agree with (the check line is
    then written from the trace's own numbers: such traces are dropped by the quality stage).
    """
    if own_answer is not None and problem.family == "count_letter":
        d, count = problem.data, int(own_answer)
        line = f"{CHECK}{d['letter']} in {d['word']} is {d['letter'] * count or 'none'}, {count}."
    else:
        line = VERIFIERS[problem.family][1](problem.data)
    return [f"{line} Yes, {answer}."] * n_checks


def correction_lines(problem: Problem, redo: list[str]) -> list[str]:
    """The first check catching a mis-copy: the right reading, ``No:``, the redo, ``so it is Y.``"""
    line = VERIFIERS[problem.family][1](problem.data)
    if problem.family == "add_chain":
        return [f"{line} No:", *redo, f"so it is {problem.answer}."]
    return [f"{line} No: so it is {problem.answer}."]
