"""The embedded default's traces: right-aligned grids on one fixed width, and the checks a ``Wait`` starts.

    tape = Tape(); answer = rgrid_add_chain(problem.data, tape)
    lines = check_lines(tape.lines, n_checks=1)  # ["Wait, let me check:", "  1+7", "    8"]

For add_chain and count_letter (docs/learnability.md, findings 10 and 11) every line of a trace, the
checks included, is :data:`WIDTH` characters wide and right-aligned, so that

- every step reads the line above at fixed distances that do not depend on the problem's length
  (the grid consumes its input *from the right*: ``3+4+5+1`` -> ``3+4+6`` -> ``3+0`` -> ``3``;
  ``raspberryr0`` -> ``raspberrr0`` -> ``raspberr1``: the letter dropped, the letter sought and
  the count are three adjacent characters), and the first line copies the question's operands
  from fixed distances too (the questions end with their operands: ``What is 3+4+5+1
  mod 10?``, ``In raspberry, how many r?``), so problems of different lengths share one program;
- the last character of every line is the running result (the sum of the terms consumed so far,
  the count so far), and the answer copies the last character of the last line: a trace cut at a
  line's end answers its best partial result, and every trace is a whole number of lines, so
  caps taken from the selected traces' lengths cut at a line's end;
- a check is three lines: ``Wait, let me check:``, the next-to-last grid line copied at its columns,
  and the last step recomputed from it (the grid's own step at the grid's own distances, ending
  with the answer); a trace carries zero, one or two checks, so a ``Wait`` after a finished check
  is something the model has seen. A *caught* mistake is a wrong last line, which the first
  check's recomputed line corrects; the answer copies the last line, as always.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from s1kit.synth.tasks import Problem

WIDTH = 19
"""Characters per line: 9 single-digit terms with '+' between; a 16-letter word, the letter and the count."""
CHECK = "Wait, let me check:"
HEADER = "Working it through:"
"""The first line of a checked grid's trace (the same in the base's worked examples and in SFT, so
the line after it starts in the context the base learned it in: docs/learnability.md, finding 10)."""
MAX_CHECKS = 2
LAYOUT = "rgrid"


def _line(text: str) -> str:
    if len(text) > WIDTH:
        raise AssertionError(f"line {text!r} is wider than {WIDTH}")
    return f"{text:>{WIDTH}}"


def rgrid_add_chain(d: dict[str, Any], tape: Any) -> str:
    """Each line adds the last two terms; its last character is the sum (mod 10) of the terms consumed."""
    from s1kit.synth.teacher import _near

    items = list(d["terms"])
    tape.line(_line("+".join(map(str, items))))
    tape.last = (items[0], 0, items[0])
    while len(items) > 1:
        a, b = items[-2], items[-1]
        v = tape.step(a + b, _near(0, 18, 2))
        items = items[:-2] + [v % 10]
        tape.line(_line("+".join(map(str, items))))
        tape.last = (a, b, v)
    return str(items[0])


def rgrid_count_letter(d: dict[str, Any], tape: Any) -> str:
    """Each line drops the word's last letter; its last character is the count of the letters dropped."""
    from s1kit.synth.teacher import _near

    rest, letter, count = d["word"], d["letter"], 0
    tape.line(_line(f"{rest}{letter}{count}"))
    tape.last = ("", letter, 0, 0)
    while rest:
        x, rest = rest[-1], rest[:-1]
        before = count
        if x == letter:
            count = tape.step(count + 1, _near(0, 9, 1))
        tape.line(_line(f"{rest}{letter}{count}"))
        tape.last = (x, letter, before, count)
    return str(count)


# family -> the grid's tracer
VERIFIERS: dict[str, Callable[[dict[str, Any], Any], str]] = {
    "add_chain": rgrid_add_chain,
    "count_letter": rgrid_count_letter,
}


def verifies(family: str, layout: str) -> bool:
    """Whether (family, layout) is a checked right-aligned grid."""
    return family in VERIFIERS and layout == LAYOUT


def draw_checks(rng: random.Random, check_rate: float) -> int:
    """0, 1 or 2 checks: each further check with probability ``check_rate`` (at most two)."""
    k = 0
    while k < MAX_CHECKS and rng.random() < check_rate:
        k += 1
    return k


def check_lines(lines: list[str], n_checks: int) -> list[str]:
    """``n_checks`` checks of the last step: ``Wait, let me check:``, the grid's next-to-last line
    copied at its columns, and the last step recomputed from it (the last line of ``lines``, the
    grid with its right last line), so a check is the grid's own step again, read at the grid's
    own distances. After a caught mistake (a wrong last line) the recomputed line is the right one,
    and the answer copies it."""
    head = [CHECK] + ([lines[-2]] if len(lines) >= 2 else [])
    out: list[str] = []
    for _ in range(n_checks):
        out += [*head, lines[-1]]
    return out


def wrong_last_line(problem: Problem, lines: list[str], last: tuple, rng: random.Random) -> list[str] | None:
    """The trace with a wrong last step (a caught mistake, before its correcting check); None when
    the last step cannot be wrong visibly (a one-term chain)."""
    if problem.family == "add_chain":
        a, b, v = last
        if len(problem.data["terms"]) < 2:
            return None
        bad = rng.choice([w for w in range(10) if w != v % 10])
        return lines[:-1] + [_line(str(bad))]
    x, letter, before, count = last
    if not x:
        return None
    bad = count + 1 if count == before or rng.random() < 0.5 else before
    return lines[:-1] + [_line(f"{letter}{bad}")]
