"""The programmatic teacher: step-by-step thinking in the s1 format, self-checks and mistakes.

    from s1kit.synth.tasks import generate
    from s1kit.synth.teacher import teacher_rows, render_s1
    rows = teacher_rows(generate("mod_pow", 1000, seed=0), mistake_rate=0.1, seed=0)
    prompt, completion = render_s1(rows[0]["question"], rows[0]["thinking"], rows[0]["attempt"])

A trace is a list of short lines, one computation each, written in a *layout* chosen for what a
tiny character-level model can learn (measured by ``bench/learnability.py``, see
docs/learnability.md). Most default layouts are *grids*: every line has the same width (padded
with spaces) and carries the whole state of the computation (what is left of the input, carries,
the digits found so far), so each character of a line is a function of a few characters of the
previous line at fixed distances, plus at most one lookup by name in the question (var_chain) or
a fixed character of the question. A tiny model with rotary positions learns fixed-offset
lookups fast; fetching "the k-th number of the question" by counting positions, as the natural
``running`` layout needs, it learns slowly. ``LAYOUTS[family][0]`` is the default, the others
are kept for the ablations.

Mistakes: with probability ``mistake_rate`` one step is wrong and the error carried through
(``teacher_correct`` False: a correctness filter has work); ``correction_rate``: a wrong step
caught and redone (``Wait, let me check that again.``); ``check_rate``: a final self-check.
The checked grids (``rgrid``, the default for add_chain and count_letter) are s1kit.synth.verify's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from s1kit.synth.tasks import Problem, get_family
# the s1 format's rendering (s1kit.synth.render), imported here for the teacher's callers
from s1kit.synth.render import (ANSWER, END, THINK, base_corpus, parse_answer, render_direct,  # noqa: F401
                                render_prompt, render_s1, render_worked)
from s1kit.synth.verify import (HEADER, LAYOUT as RGRID, VERIFIERS, check_lines, draw_checks, verifies,
                               wrong_last_line)

ANSWER_PREFIX = "Answer: "
RECHECK = "Wait, let me check that again."
CORRECTION_RATE = 0.1
"""Default share of caught mistakes (a wrong last step) on the checked grids (0 for the others)."""
CHECK_RATE = 0.5  # the other families' self-check (one at most)
GRID_CHECK_RATE = 0.3
"""Each further check (at most two) on the checked grids: most traces end unchecked."""


@dataclass
class Trace:
    """What the teacher wrote for one problem."""

    thinking: str
    attempt: str
    answer: str
    """The answer the trace reached (wrong when an uncaught mistake was made)."""
    correct: bool
    mistake: bool
    """An uncaught wrong step was made (the answer is then wrong)."""
    corrected: bool
    """A wrong step was made and caught by a ``Wait`` re-check."""
    checked: bool
    layout: str
    steps: int
    checks: int = 0
    """How many self-checks the trace carries (a caught mistake's correcting check included)."""


class Tape:
    """Collects a trace's lines and step values; returns a wrong value at step ``fault``."""

    def __init__(self, fault: int | None = None, rng: random.Random | None = None):
        self.lines: list[str] = []
        self.steps = 0
        self.fault = fault
        self.fault_line: int | None = None
        self.rng = rng or random.Random(0)
        self.last_check = ""  # the family's self-check of its last step (set as lines are written)
        self.last: tuple = ()  # the last step's operands and result (the rgrid layouts' checks)

    def step(self, value: Any, wrong: Callable[[random.Random, Any], Any]) -> Any:
        """A step's result: ``value``, or ``wrong(rng, value)`` (a different value) at the fault."""
        j = self.steps
        self.steps += 1
        if j != self.fault:
            return value
        self.fault_line = len(self.lines)  # the next line written shows the wrong value
        bad = wrong(self.rng, value)
        if bad == value:
            raise AssertionError(f"wrong() returned the right value {value!r}")
        return bad

    def line(self, text: str) -> None:
        self.lines.append(text)


def _other(choices: Iterable[Any]) -> Callable[[random.Random, Any], Any]:
    pool = list(choices)
    return lambda rng, v: rng.choice([c for c in pool if c != v])


def _near(lo: int = 0, hi: int | None = None, span: int = 2) -> Callable[[random.Random, Any], Any]:
    """A value within ``span`` of the right one (an off-by-one slip), inside [lo, hi]."""
    def wrong(rng: random.Random, v: int) -> int:
        options = [v + d for d in range(-span, span + 1)
                   if d and v + d >= lo and (hi is None or v + d <= hi)]
        return rng.choice(options or [v + 1])  # nothing in range (e.g. a remainder mod 1)
    return wrong


# --------------------------------------------------------------------------------------------
# Family traces: fn(data, layout, tape) -> answer string (lines go onto the tape)
# --------------------------------------------------------------------------------------------


# Grid layouts write every line at one fixed width (padded with spaces), so a value that moves
# from one line to the next sits at a constant distance in tokens: copying and combining become
# fixed-offset lookups, which a tiny model with rotary positions learns fast.
CHAIN_W = 17  # 9 single-digit terms with '+' between
WORD_W = 18  # the letter sought, a count digit and up to 16 letters


def _add_chain(d: dict[str, Any], layout: str, tape: Tape) -> str:
    terms = list(d["terms"])
    if layout == RGRID:
        return VERIFIERS["add_chain"](d, tape)
    if layout == "grid":  # the expression, right-aligned; each line adds its first two terms
        items = list(terms)
        tape.line(f"{'+'.join(map(str, items)):>{CHAIN_W}}")
        while len(items) > 1:
            s, t = items[0], items[1]
            v = tape.step(s + t, _near(0, 18, 2))
            items = [v % 10] + items[2:]
            tape.line(f"{'+'.join(map(str, items)):>{CHAIN_W}}")
            tape.last_check = f"{s}+{t}={v}"
        return str(items[0])
    s = terms[0]
    for i, t in enumerate(terms[1:], start=1):
        v = tape.step(s + t, _near(0, 18, 2))
        text = f"{s}+{t}={v}" + (f", {v % 10}" if v >= 10 else "")
        if layout == "consume":  # restate what is left to add, the running value first
            rest = "+".join(map(str, [s] + terms[i:]))
            text = f"{rest}: {text}"
        elif layout != "running":
            raise _bad_layout("add_chain", layout)
        tape.line(text)
        tape.last_check = f"{v}-{t}={s}"
        s = v % 10
    if len(terms) == 1:
        tape.line(str(s))
    return str(s)


def _var_chain(d: dict[str, Any], layout: str, tape: Tape) -> str:
    if layout != "grid":
        raise _bad_layout("var_chain", layout)
    name, _, k = d["defs"][0]
    value = k
    tape.line(f"{name}={k}".ljust(13))
    for name, ref, k in d["defs"][1:]:
        v = tape.step(value + k, _near(0, 18, 2))
        tape.line(f"{name}={ref}+{k}: {value}+{k}={v:>2}")  # 13 characters
        tape.last_check = f"{v}-{k}={value}"
        value = v % 10
    return str(value)


def _add_multi(d: dict[str, Any], layout: str, tape: Tape) -> str:
    a, b = str(d["a"]), str(d["b"])
    if layout == "grid":  # a and b lose their last digit per line; the sum grows left-aligned
        ra, rb, acc, carry = a, b, "", 0
        tape.line(f"{ra:>5}+{rb:>5}+{carry}={acc:<6}")
        while ra or rb or carry:
            da, db = int(ra[-1]) if ra else 0, int(rb[-1]) if rb else 0
            v = tape.step(da + db + carry, _near(0, 19, 1))
            acc, carry, ra, rb = str(v % 10) + acc, v // 10, ra[:-1], rb[:-1]
            tape.line(f"{ra:>5}+{rb:>5}+{carry}={acc:<6}")
            tape.last_check = f"{da}+{db}+{v - da - db}={v}"
        return acc.lstrip("0") or "0"
    width = max(len(a), len(b))
    acc, carry = "", 0
    for k in range(width):
        da = int(a[-1 - k]) if k < len(a) else 0
        db = int(b[-1 - k]) if k < len(b) else 0
        v = tape.step(da + db + carry, _near(0, 19, 1))
        acc = str(v % 10) + acc
        text = f"{da}+{db}+{carry}={v}: {acc}"
        if layout == "consume":  # restate the digits not yet added; this column is their end
            text = f"{a[:len(a) - k] or 0}+{b[:len(b) - k] or 0}, {text}"
        elif layout != "columns":
            raise _bad_layout("add_multi", layout)
        tape.line(text)
        tape.last_check = f"{da}+{db}+{carry}={v}"
        carry = v // 10
    if carry:
        acc = str(carry) + acc
        tape.line(f"carry {carry}: {acc}")
    return acc


def _long_mult(d: dict[str, Any], layout: str, tape: Tape) -> str:
    a, b = str(d["a"]), d["b"]
    if layout == "grid":
        ra, acc, carry = a, "", 0
        tape.line(f"{ra:>5}*{b}+{carry}={acc:<6}")
        while ra or carry:
            da = int(ra[-1]) if ra else 0
            v = tape.step(da * b + carry, _near(0, 89, 2))
            acc, carry, ra = str(v % 10) + acc, v // 10, ra[:-1]
            tape.line(f"{ra:>5}*{b}+{carry}={acc:<6}")
            tape.last_check = f"{da}*{b}+{v - da * b}={v}"
        return acc.lstrip("0") or "0"
    acc, carry = "", 0
    for k in range(len(a)):
        da = int(a[-1 - k])
        v = tape.step(da * b + carry, _near(0, 89, 2))
        acc = str(v % 10) + acc
        text = f"{da}*{b}+{carry}={v}: {acc}"
        if layout == "consume":
            text = f"{a[:len(a) - k]}, {text}"
        elif layout != "columns":
            raise _bad_layout("long_mult", layout)
        tape.line(text)
        tape.last_check = f"{da}*{b}+{carry}={v}"
        carry = v // 10
    if carry:
        acc = str(carry) + acc
        tape.line(f"carry {carry}: {acc}")
    return acc


def _mod_pow(d: dict[str, Any], layout: str, tape: Tape) -> str:
    b, e, m = d["base"], d["exp"], d["mod"]
    b0 = b % m  # reduce the base first: every product stays below 11*11
    grid = layout == "grid"
    if not grid and layout != "steps":
        raise _bad_layout("mod_pow", layout)
    tape.line(f"{b:>2}%{m:>2}={b0:>2}".ljust(19) if grid else f"{b}%{m}={b0}")
    r = b0
    for k in range(2, e + 1):
        p = r * b0
        nr = tape.step(p % m, _other(range(m)))
        tape.line(f"^{k}: {r:>2}*{b0:>2}={p:>3}%{m:>2}={nr:>2}" if grid else f"{b0}^{k}={r}*{b0}={p}%{m}={nr}")
        tape.last_check = f"{p}={p // m}*{m}+{p % m}" if nr == p % m else f"{p}%{m}={nr}"
        r = nr
    return str(r)


def _gcd(d: dict[str, Any], layout: str, tape: Tape) -> str:
    grid = layout == "grid"
    if not grid and layout != "euclid":
        raise _bad_layout("gcd", layout)
    a, b = d["a"], d["b"]
    while True:
        q = a // b
        r = tape.step(a % b, _near(0, b - 1, 2))
        tape.line(f"{a:>2}={q:>2}*{b:>2}+{r:>2}" if grid else f"{a}={q}*{b}+{r}")
        tape.last_check = f"{q}*{b}+{r}={q * b + r}"
        if r == 0:
            tape.line(f"gcd={b:>2}".ljust(11) if grid else f"gcd={b}")
            return str(b)
        a, b = b, r


def _base_conv(d: dict[str, Any], layout: str, tape: Tape) -> str:
    n, base = d["n"], d["base"]
    acc, first = "", None
    while True:
        q, r = divmod(n, base)
        r = tape.step(r, _other(range(base)))
        acc = str(r) + acc
        if layout == "grid":  # n = q*base + r, the digits so far left-aligned at a fixed column
            tape.line(f"{n:>3}={q:>3}*{base}+{r}: {acc:<8}")
        elif layout == "prepend":
            tape.line(f"{n}={base}*{q}+{r}: {acc}")
        elif layout == "readup":
            tape.line(f"{n}={base}*{q}+{r}")
        else:
            raise _bad_layout("base_conv", layout)
        first = first or f"{base}*{q}+{r}={base * q + r}"
        if q == 0:
            break
        n = q
    if layout == "readup":
        tape.line(f"read up: {acc}")
    tape.last_check = first
    return acc


def _linear_eq(d: dict[str, Any], layout: str, tape: Tape) -> str:
    if layout != "steps":
        raise _bad_layout("linear_eq", layout)
    from s1kit.synth.tasks import _linear_eq_sides, _term

    a, b, c, rhs = _linear_eq_sides(d)
    coef = a - c
    if c:
        tape.line(f"{_term(a)}-{_term(c)}={rhs}-{b}" if b > 0 else f"{_term(a)}-{_term(c)}={rhs}")
    elif b > 0:
        tape.line(f"{_term(a)}={rhs}-{b}")
    elif b < 0:
        tape.line(f"{_term(a)}={rhs}+{-b}")
    const = tape.step(rhs - b, lambda rng, v: v + rng.choice([-coef, coef]) if v > coef else v + coef)
    tape.line(f"{_term(coef)}={const}")
    if coef != 1:
        tape.line(f"x={const}/{coef}")
        x = tape.step(const // coef, _near(1, None, 1))
        tape.line(f"x={x}")
        tape.last_check = f"{coef}*{x}={coef * x}"
    else:
        x = const
        tape.last_check = f"{x}+{b}={x + b}" if b >= 0 else f"{x}-{-b}={x + b}"
    return str(x)


def _count_letter(d: dict[str, Any], layout: str, tape: Tape) -> str:
    word, letter = d["word"], d["letter"]
    count = 0
    if layout == RGRID:
        return VERIFIERS["count_letter"](d, tape)
    if layout == "grid":
        # a head (the letter sought and the count so far) eats one letter per line, all within
        # fixed offsets of the previous line: "r0rasp" -> " r1asp" -> "  r1sp"
        tape.line(f"{letter + '0' + word:>{WORD_W}}")
        for i, ch in enumerate(word):
            if ch == letter:
                count = tape.step(count + 1, _near(0, 9, 1))
            tape.line(f"{letter + str(count) + word[i + 1:]:>{WORD_W}}")
        tape.last_check = f"{letter * count or 'none'} is {count}"
        return str(count)
    if layout != "tally":
        raise _bad_layout("count_letter", layout)
    items = []
    for i, ch in enumerate(word):
        if ch == letter:
            count = tape.step(count + 1, _near(0, 9, 1))
        items.append(f"{ch}{count}")
        if len(items) == 8 or i == len(word) - 1:  # short lines; the count is restated at every letter
            tape.line(" ".join(items))
            items = []
    tape.last_check = f"{letter * count or 'none'} is {count}"
    return str(count)


def _sort_digits(d: dict[str, Any], layout: str, tape: Tape) -> str:
    present = set(d["digits"])
    acc: list[str] = []
    for k in range(10):
        yes = tape.step(k in present, lambda rng, v: not v)
        if yes:
            acc.append(str(k))
        if layout == "grid":
            tape.line(f"{k} {'yes' if yes else ' no'}: {' '.join(acc):<19}")
        elif layout == "scan":
            tape.line(f"{k} {'yes' if yes else 'no'}: {' '.join(acc)}".rstrip())
        else:
            raise _bad_layout("sort_digits", layout)
    tape.last_check = "<".join(acc)
    return " ".join(acc)


TRACERS: dict[str, Callable[[dict[str, Any], str, Tape], str]] = {
    "add_chain": _add_chain, "var_chain": _var_chain, "add_multi": _add_multi, "long_mult": _long_mult,
    "mod_pow": _mod_pow, "gcd": _gcd, "base_conv": _base_conv, "linear_eq": _linear_eq,
    "count_letter": _count_letter, "sort_digits": _sort_digits,
}

LAYOUTS: dict[str, tuple[str, ...]] = {
    # the first layout of each family is its default
    "add_chain": ("rgrid", "grid", "running", "consume"),
    "var_chain": ("grid",),
    "add_multi": ("grid", "columns", "consume"),
    "long_mult": ("grid", "columns", "consume"),
    "mod_pow": ("grid", "steps"),
    "gcd": ("grid", "euclid"),
    "base_conv": ("grid", "prepend", "readup"),
    "linear_eq": ("steps",),
    "count_letter": ("rgrid", "grid", "tally"),
    "sort_digits": ("grid", "scan"),
}


def _bad_layout(family: str, layout: str) -> ValueError:
    return ValueError(f"layout={layout!r} is unknown for {family}: allowed " + ", ".join(LAYOUTS[family]))


def default_layout(family: str) -> str:
    get_family(family)
    return LAYOUTS[family][0]


# --------------------------------------------------------------------------------------------


def _run(problem: Problem, layout: str, fault: int | None, rng: random.Random) -> tuple[Tape, str]:
    tape = Tape(fault, rng)
    answer = TRACERS[problem.family](problem.data, layout, tape)
    return tape, answer


def solve(problem: Problem, layout: str | None = None, mistake_rate: float = 0.0,
          correction_rate: float | None = None, check_rate: float | None = None, seed: int = 0) -> Trace:
    """The teacher's trace for one problem (deterministic in ``seed`` and ``problem.id``).

    Each trace draws one uniform number u: u < mistake_rate -> an uncaught mistake, then
    u < mistake_rate + correction_rate -> a caught one; so the two rates must sum to <= 1.
    ``correction_rate`` / ``check_rate`` None: the defaults of the checked grids (s1kit.synth.verify:
    :data:`CORRECTION_RATE`, :data:`GRID_CHECK_RATE`), else 0 and :data:`CHECK_RATE`.
    """
    layout = layout or default_layout(problem.family)
    checked_grid = verifies(problem.family, layout)
    if correction_rate is None:
        correction_rate = CORRECTION_RATE if checked_grid else 0.0
    if check_rate is None:
        check_rate = GRID_CHECK_RATE if checked_grid else CHECK_RATE
    for name, rate in (("mistake_rate", mistake_rate), ("correction_rate", correction_rate),
                       ("check_rate", check_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name}={rate!r} is invalid: allowed a number in [0, 1]")
    if mistake_rate + correction_rate > 1.0:
        raise ValueError("mistake_rate + correction_rate must be <= 1")
    if layout not in LAYOUTS[problem.family]:
        raise _bad_layout(problem.family, layout)
    rng = random.Random(f"teacher:{seed}:{problem.id}")
    u = rng.random()
    clean, answer = _run(problem, layout, None, rng)
    if answer != problem.answer:
        raise AssertionError(f"teacher got {answer!r} for {problem.id}, want {problem.answer!r}")
    if checked_grid:
        return _solve_checked(problem, layout, clean, u, mistake_rate, correction_rate, check_rate, rng)
    lines, mistake, corrected = list(clean.lines), False, False
    if u < mistake_rate + correction_rate and clean.steps:
        caught = u >= mistake_rate
        faulty, wrong_answer = _fault(problem, layout, clean, rng, caught)
        if faulty is not None and caught:
            L = faulty.fault_line
            lines = clean.lines[:L] + [faulty.lines[L], RECHECK] + clean.lines[L:]
            corrected = True
        elif faulty is not None:
            lines, answer, mistake = list(faulty.lines), wrong_answer, True
            clean = faulty
    checked = bool(clean.last_check) and rng.random() < check_rate
    if checked:
        # the answer is restated, so that it is on the last line whatever the trace ends with
        lines.append(f"Wait, let me check: {clean.last_check}. Yes, {answer}.")
    return Trace(thinking="\n".join(lines), attempt=ANSWER_PREFIX + answer, answer=answer,
                 correct=answer == problem.answer, mistake=mistake, corrected=corrected, checked=checked,
                 layout=layout, steps=clean.steps, checks=int(checked) + int(corrected))


def _fault(problem: Problem, layout: str, clean: Tape, rng: random.Random, caught: bool) -> tuple[Tape | None, str]:
    """A trace with one wrong step: the first in a random order that is visible (and, when not
    caught, changes the answer); (None, '') when there is none."""
    order = list(range(clean.steps))
    rng.shuffle(order)
    for j in order:
        faulty, wrong_answer = _run(problem, layout, j, rng)
        if faulty.fault_line is None:
            continue
        if caught or wrong_answer != problem.answer:
            return faulty, wrong_answer
    return None, ""


def _solve_checked(problem: Problem, layout: str, clean: Tape, u: float, mistake_rate: float,
                   correction_rate: float, check_rate: float, rng: random.Random) -> Trace:
    """Zero to two checks of the last step (s1kit.synth.verify); a caught mistake is a wrong last
    step, corrected by the first check."""
    n_checks = draw_checks(rng, check_rate)
    lines, right, answer, mistake, corrected = list(clean.lines), list(clean.lines), problem.answer, False, False
    if u < mistake_rate and clean.steps:
        faulty, wrong_answer = _fault(problem, layout, clean, rng, caught=False)
        if faulty is not None:  # the checks agree with the trace's own (wrong) numbers
            lines, right, answer, mistake = list(faulty.lines), list(faulty.lines), wrong_answer, True
    elif u < mistake_rate + correction_rate and correction_rate > 0:  # (an impossible uncaught one lands here)
        bad = wrong_last_line(problem, lines, clean.last, rng)
        if bad is not None:
            lines, corrected, n_checks = bad, True, max(n_checks, 1)
    lines = [HEADER, *lines, *check_lines(right, n_checks)]  # right: the lines the checks recompute
    return Trace(thinking="\n".join(lines), attempt=ANSWER_PREFIX + answer, answer=answer,
                 correct=answer == problem.answer, mistake=mistake, corrected=corrected, checked=n_checks > 0,
                 layout=layout, steps=clean.steps, checks=n_checks)


def teacher_rows(problems: Iterable[Problem], layout: str | None = None, mistake_rate: float = 0.0,
                 correction_rate: float | None = None, check_rate: float | None = None,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Rows in the common schema (id, question, solution, answer, source, domain, cot_type,
    metadata) plus the teacher fields ``thinking``, ``attempt`` and ``teacher_correct``."""
    rows = []
    for p in problems:
        fam = get_family(p.family)
        t = solve(p, layout, mistake_rate, correction_rate, check_rate, seed)
        rows.append({
            "id": p.id, "question": p.question, "solution": t.thinking, "answer": p.answer,
            "source": f"synth/{p.family}", "domain": fam.domain, "cot_type": "math",
            "metadata": {"difficulty": p.level, "family": p.family, "layout": t.layout, "steps": t.steps,
                         "mistake": t.mistake, "corrected": t.corrected, "checked": t.checked, "checks": t.checks,
                         "teacher_answer": t.answer},
            "thinking": t.thinking, "attempt": t.attempt, "teacher_correct": t.correct,
        })
    return rows
