"""Synthetic reasoning task families for the embedded default: exact answers, seeded generation.

    from s1kit.synth.tasks import FAMILIES, generate, check
    problems = generate("add_chain", n=100, seed=0, levels=(1, 2))     # deterministic
    assert all(check(p) for p in problems)                              # answers recomputed

Every family has difficulty levels 1..4 (more steps, bigger numbers, longer inputs), a question
written in plain text for a character-level tokenizer, and a single exact answer string. A
:class:`Problem` keeps the structured inputs (``data``) so that the programmatic teacher
(:mod:`s1kit.synth.teacher`) can write a step-by-step trace and a checker can recompute the answer.

Generation is deterministic: problem ``i`` of ``generate(family, n, seed)`` is drawn from its own
``random.Random`` seeded with the string ``"{family}:{seed}:{i}"``, so a prefix of a longer run is
the shorter run, and nothing depends on ``PYTHONHASHSEED`` or on the other families.

Families (``domain``): add_chain, add_multi, long_mult (arithmetic), var_chain (program
tracing), mod_pow, gcd (number theory), base_conv (number systems), linear_eq (algebra),
count_letter (counting), sort_digits (algorithms). Which of them a tiny model can learn in minutes is measured by
``bench/learnability.py`` (see docs/learnability.md).
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

LEVELS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Problem:
    """One question with its exact answer and the structured inputs it was made from."""

    id: str
    family: str
    level: int
    question: str
    answer: str
    data: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Family:
    """A task family: ``make(rng, level)`` -> data, ``question(data)``, ``solve(data)`` -> answer."""

    name: str
    domain: str
    description: str
    make: Callable[[random.Random, int], dict[str, Any]]
    question: Callable[[dict[str, Any]], str]
    solve: Callable[[dict[str, Any]], str]
    chance: Callable[[dict[str, Any]], float]
    """Accuracy of a uniform guess over the plausible answers (for reading accuracy tables)."""


# --------------------------------------------------------------------------------------------
# add_chain: single digits summed modulo 10 (the calibration task)
# --------------------------------------------------------------------------------------------

# level 4 (the embedded default's evaluation level) spans several lengths, so that a thinking cap
# shared by all problems finishes some of them (docs/learnability.md, finding 10)
_CHAIN_TERMS = {1: (2, 3), 2: (4, 5), 3: (6, 7), 4: (5, 9)}


def _add_chain_make(rng: random.Random, level: int) -> dict[str, Any]:
    lo, hi = _CHAIN_TERMS[level]
    return {"terms": [rng.randrange(10) for _ in range(rng.randint(lo, hi))]}


ADD_CHAIN = Family(
    "add_chain", "arithmetic", "a sum of 2-9 single digits, modulo 10",
    make=_add_chain_make,
    question=lambda d: "What is " + "+".join(map(str, d["terms"])) + " mod 10?",
    solve=lambda d: str(sum(d["terms"]) % 10),
    chance=lambda d: 0.1,
)

# --------------------------------------------------------------------------------------------
# add_multi: two multi-digit numbers
# --------------------------------------------------------------------------------------------

_ADD_DIGITS = {1: 2, 2: 3, 3: 4, 4: 5}


def _add_multi_make(rng: random.Random, level: int) -> dict[str, Any]:
    k = _ADD_DIGITS[level]
    a = rng.randrange(10 ** (k - 1), 10 ** k)
    b = rng.randrange(10 ** (rng.randint(max(1, k - 1), k) - 1), 10 ** k)
    return {"a": a, "b": b}


ADD_MULTI = Family(
    "add_multi", "arithmetic", "the sum of two 2-5 digit numbers",
    make=_add_multi_make,
    question=lambda d: f"What is {d['a']}+{d['b']}?",
    solve=lambda d: str(d["a"] + d["b"]),
    chance=lambda d: 10.0 ** -len(str(d["a"] + d["b"])),
)

# --------------------------------------------------------------------------------------------
# long_mult: multi-digit number times one digit (column multiplication)
# --------------------------------------------------------------------------------------------

_MULT_DIGITS = {1: 2, 2: 3, 3: 4, 4: 5}


def _long_mult_make(rng: random.Random, level: int) -> dict[str, Any]:
    k = _MULT_DIGITS[level]
    return {"a": rng.randrange(10 ** (k - 1), 10 ** k), "b": rng.randint(2, 9)}


LONG_MULT = Family(
    "long_mult", "arithmetic", "a 2-5 digit number times a digit 2-9",
    make=_long_mult_make,
    question=lambda d: f"What is {d['a']}*{d['b']}?",
    solve=lambda d: str(d["a"] * d["b"]),
    chance=lambda d: 10.0 ** -len(str(d["a"] * d["b"])),
)

# --------------------------------------------------------------------------------------------
# mod_pow: repeated multiplication modulo a small number
# --------------------------------------------------------------------------------------------

_POW_EXP = {1: (2, 3), 2: (4, 5), 3: (6, 7), 4: (8, 9)}
_POW_MODS = (5, 7, 9, 11)


def _mod_pow_make(rng: random.Random, level: int) -> dict[str, Any]:
    m = rng.choice(_POW_MODS)
    base = rng.choice([b for b in range(2, 100) if b % m not in (0, 1)])  # not trivially 0 or 1
    return {"base": base, "exp": rng.randint(*_POW_EXP[level]), "mod": m}


MOD_POW = Family(
    "mod_pow", "number_theory", "base^exp modulo 5, 7, 9 or 11 (base 2-99, exponent 2-9)",
    make=_mod_pow_make,
    question=lambda d: f"What is {d['base']}^{d['exp']} mod {d['mod']}?",
    solve=lambda d: str(pow(d["base"], d["exp"], d["mod"])),
    chance=lambda d: 1.0 / d["mod"],
)

# --------------------------------------------------------------------------------------------
# gcd: Euclid's algorithm
# --------------------------------------------------------------------------------------------

_GCD_MAX = {1: 20, 2: 40, 3: 70, 4: 99}


def _gcd_make(rng: random.Random, level: int) -> dict[str, Any]:
    top = _GCD_MAX[level]
    # a spread of answers (not mostly 1); g leaves at least 2 distinct multiples in range
    g = rng.choice([g for g in (1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12) if top // g >= 3])
    while True:
        a, b = rng.randint(2, top // g) * g, rng.randint(2, top // g) * g
        if a != b and (top <= 20 or max(a, b) > _GCD_MAX[level - 1]):
            return {"a": max(a, b), "b": min(a, b)}


GCD = Family(
    "gcd", "number_theory", "the greatest common divisor of two numbers up to 99",
    make=_gcd_make,
    question=lambda d: f"What is gcd({d['a']},{d['b']})?",
    solve=lambda d: str(math.gcd(d["a"], d["b"])),
    chance=lambda d: 1.0 / 12,
)

# --------------------------------------------------------------------------------------------
# base_conv: decimal to base 2 or 3
# --------------------------------------------------------------------------------------------

_BASE_RANGE = {1: (2, (2, 15)), 2: (2, (16, 63)), 3: (2, (64, 255)), 4: (3, (81, 728))}


def to_base(n: int, base: int) -> str:
    digits = ""
    while True:
        n, r = divmod(n, base)
        digits = str(r) + digits
        if n == 0:
            return digits


def _base_conv_make(rng: random.Random, level: int) -> dict[str, Any]:
    base, (lo, hi) = _BASE_RANGE[level]
    return {"n": rng.randint(lo, hi), "base": base}


BASE_CONV = Family(
    "base_conv", "number_systems", "a decimal number 2-255 written in base 2 (level 4: 81-728 in base 3)",
    make=_base_conv_make,
    question=lambda d: f"Write {d['n']} in base {d['base']}.",
    solve=lambda d: to_base(d["n"], d["base"]),
    chance=lambda d: float(d["base"]) ** -(len(to_base(d["n"], d["base"])) - 1),
)

# --------------------------------------------------------------------------------------------
# linear_eq: one unknown, integer solution
# --------------------------------------------------------------------------------------------


def _linear_eq_make(rng: random.Random, level: int) -> dict[str, Any]:
    x = rng.randint(1, 9)
    if level == 1:  # x+b=c
        return {"a": 1, "b": rng.randint(1, 9), "x": x, "c_side": 0}
    if level == 2:  # ax=c
        return {"a": rng.randint(2, 9), "b": 0, "x": x, "c_side": 0}
    if level == 3:  # ax+b=c or ax-b=c
        a = rng.randint(2, 9)
        b = rng.choice([-1, 1]) * rng.randint(1, 9)
        if a * x + b <= 0:
            b = -b
        return {"a": a, "b": b, "x": x, "c_side": 0}
    # ax+b=cx+d with a > c
    c = rng.randint(1, 4)
    a = rng.randint(c + 1, 9)
    b = rng.randint(1, 9)
    return {"a": a, "b": b, "x": x, "c_side": c}


def _linear_eq_sides(d: dict[str, Any]) -> tuple[int, int, int, int]:
    """(a, b, c, rhs): the equation a*x + b = c*x + rhs."""
    a, b, x, c = d["a"], d["b"], d["x"], d["c_side"]
    return a, b, c, (a - c) * x + b if c else a * x + b


def _term(coef: int) -> str:
    return "x" if coef == 1 else f"{coef}x"


def _linear_eq_question(d: dict[str, Any]) -> str:
    a, b, c, rhs = _linear_eq_sides(d)
    left = _term(a) + (f"+{b}" if b > 0 else f"-{-b}" if b < 0 else "")
    right = f"{_term(c)}+{rhs}" if c else str(rhs)  # rhs >= 1 in both forms
    return f"Solve for x: {left}={right}."


LINEAR_EQ = Family(
    "linear_eq", "algebra", "ax+b=c style equations with an integer solution 1-9",
    make=_linear_eq_make,
    question=_linear_eq_question,
    solve=lambda d: str(d["x"]),
    chance=lambda d: 1.0 / 9,
)

# --------------------------------------------------------------------------------------------
# count_letter: "How many r in raspberry?"
# --------------------------------------------------------------------------------------------

_WORD_LEN = {1: (4, 6), 2: (7, 9), 3: (10, 12), 4: (8, 16)}  # level 4: several lengths (finding 10)
WORDS = ("raspberry", "strawberry", "banana", "bookkeeper", "mississippi", "committee", "parallel",
         "assessment", "tomorrow", "necessary", "occurrence", "difference", "successful", "embarrass",
         "possession", "programming", "letter", "balloon", "coffee", "pepper", "cheese", "apple",
         "address", "bubble", "grammar", "cinnamon", "broccoli", "millennium", "accommodate", "referee")


def _count_letter_make(rng: random.Random, level: int) -> dict[str, Any]:
    lo, hi = _WORD_LEN[level]
    pool = [w for w in WORDS if lo <= len(w) <= hi]
    if pool and rng.random() < 0.25:  # some real words, the rest random letter strings
        word = rng.choice(pool)
        return {"word": word, "letter": rng.choice(sorted(set(word)))}
    letters = rng.sample(string.ascii_lowercase, 6)  # few distinct letters -> varied counts
    target = letters[0]
    n = rng.randint(lo, hi)
    while True:  # at most 9 occurrences: one digit
        word = "".join(target if rng.random() < 0.25 else rng.choice(letters[1:]) for _ in range(n))
        if word.count(target) <= 9:
            return {"word": word, "letter": target}


COUNT_LETTER = Family(
    "count_letter", "counting", "how often a letter occurs in a 4-16 letter word",
    make=_count_letter_make,
    # the operands end the question (the letter last), at fixed distances from the thinking
    question=lambda d: f"In {d['word']}, how many {d['letter']}?",
    solve=lambda d: str(d["word"].count(d["letter"])),
    chance=lambda d: 1.0 / 6,
)

# --------------------------------------------------------------------------------------------
# var_chain: trace a tiny program of variable definitions (the operands are found by name)
# --------------------------------------------------------------------------------------------

_VAR_N = {1: (3, 4), 2: (5, 6), 3: (7, 8), 4: (9, 10)}


def _var_chain_make(rng: random.Random, level: int) -> dict[str, Any]:
    n = rng.randint(*_VAR_N[level])
    defs = [("a", None, rng.randint(1, 9))] + [
        (string.ascii_lowercase[i], string.ascii_lowercase[i - 1], rng.randint(1, 9)) for i in range(1, n)]
    order = list(range(n))
    if level >= 3:  # definitions out of order: only names lead to the operands
        rng.shuffle(order)
    return {"defs": defs, "order": order}


def var_chain_values(d: dict[str, Any]) -> dict[str, int]:
    values: dict[str, int] = {}
    for name, ref, k in d["defs"]:
        values[name] = k if ref is None else (values[ref] + k) % 10
    return values


def _var_chain_question(d: dict[str, Any]) -> str:
    parts = [f"{name}={k}" if ref is None else f"{name}={ref}+{k}" for name, ref, k in
             (d["defs"][i] for i in d["order"])]
    return ", ".join(parts) + f". What is {d['defs'][-1][0]} mod 10?"


VAR_CHAIN = Family(
    "var_chain", "program_tracing", "3-10 variables, each the previous one plus a digit, modulo 10",
    make=_var_chain_make,
    question=_var_chain_question,
    solve=lambda d: str(var_chain_values(d)[d["defs"][-1][0]]),
    chance=lambda d: 0.1,
)

# --------------------------------------------------------------------------------------------
# sort_digits: distinct digits in increasing order
# --------------------------------------------------------------------------------------------

_SORT_N = {1: (3, 3), 2: (4, 5), 3: (6, 7), 4: (8, 9)}


def _sort_digits_make(rng: random.Random, level: int) -> dict[str, Any]:
    return {"digits": rng.sample(range(10), rng.randint(*_SORT_N[level]))}


SORT_DIGITS = Family(
    "sort_digits", "algorithms", "3-9 distinct digits sorted in increasing order",
    make=_sort_digits_make,
    question=lambda d: "Sort " + " ".join(map(str, d["digits"])) + ".",
    solve=lambda d: " ".join(map(str, sorted(d["digits"]))),
    chance=lambda d: 1.0 / math.factorial(len(d["digits"])),
)

# --------------------------------------------------------------------------------------------

FAMILIES: dict[str, Family] = {f.name: f for f in (
    ADD_CHAIN, VAR_CHAIN, ADD_MULTI, LONG_MULT, MOD_POW, GCD, BASE_CONV, LINEAR_EQ, COUNT_LETTER, SORT_DIGITS)}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"family={name!r} is unknown: allowed " + ", ".join(FAMILIES)) from None


def problem_rng(family: str, seed: int, index: int) -> random.Random:
    """The generator of problem ``index``: independent of the others and of hash randomisation."""
    return random.Random(f"{family}:{seed}:{index}")


def make_problem(family: str, seed: int, index: int, level: int) -> Problem:
    fam = get_family(family)
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is invalid: allowed one of {LEVELS}")
    data = fam.make(problem_rng(family, seed, index), level)
    return Problem(id=f"{family}-{seed}-{index}", family=family, level=level, question=fam.question(data),
                   answer=fam.solve(data), data=data)


def generate(family: str, n: int, seed: int = 0, levels: Sequence[int] = LEVELS,
             start: int = 0) -> list[Problem]:
    """``n`` problems of one family, levels cycled in order (problem i gets levels[i % len])."""
    if not levels:
        raise ValueError("levels must name at least one level")
    return [make_problem(family, seed, i, levels[i % len(levels)]) for i in range(start, start + n)]


def generate_unique(family: str, n: int, seed: int = 0, levels: Sequence[int] = LEVELS,
                    exclude: Iterable[str] = (), start: int = 0, max_tries: int = 20) -> list[Problem]:
    """Like :func:`generate` but skips questions in ``exclude`` and repeats (for held-out sets).

    Small levels have few distinct questions, so fewer than ``n`` may come back when the space
    is exhausted after ``max_tries * n`` draws.
    """
    seen = set(exclude)
    out: list[Problem] = []
    i = start
    while len(out) < n and i < start + max_tries * n:
        p = make_problem(family, seed, i, levels[i % len(levels)])
        i += 1
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out


def check(problem: Problem) -> bool:
    """Recompute the answer from the question's data by brute force, independent of ``solve``."""
    d, f = problem.data, problem.family
    if f == "add_chain":
        total = 0
        for t in d["terms"]:
            total = (total + t) % 10
        want = total
    elif f == "add_multi":
        want = d["a"] + d["b"]
    elif f == "long_mult":
        want = sum(d["a"] for _ in range(d["b"]))
    elif f == "mod_pow":
        want = 1
        for _ in range(d["exp"]):
            want = want * d["base"] % d["mod"]
    elif f == "gcd":
        want = max(k for k in range(1, d["b"] + 1) if d["a"] % k == 0 and d["b"] % k == 0)
    elif f == "base_conv":
        try:
            return int(problem.answer, d["base"]) == d["n"] and not problem.answer.startswith("0")
        except ValueError:  # a digit that the base does not have
            return False
    elif f == "linear_eq":
        a, b, c, rhs = _linear_eq_sides(d)
        x = int(problem.answer)
        # re-read the equation from the question text, so the question and the answer agree
        left, right = problem.question.removeprefix("Solve for x: ").removesuffix(".").split("=")
        return _eval_linear(left, x) == _eval_linear(right, x) and a * x + b == c * x + rhs
    elif f == "count_letter":
        want = sum(1 for ch in d["word"] if ch == d["letter"])
    elif f == "var_chain":
        # re-read the program from the question text and run it
        text, _, ask = problem.question.partition(". What is ")
        env: dict[str, int] = {}
        pending = [part.split("=") for part in text.split(", ")]
        while pending:
            for name, expr in list(pending):
                ref, _, k = expr.partition("+")
                if not k:
                    env[name] = int(ref)
                elif ref in env:
                    env[name] = (env[ref] + int(k)) % 10
                else:
                    continue
                pending.remove([name, expr])
        want = env[ask.removesuffix(" mod 10?")]
    elif f == "sort_digits":
        return [int(t) for t in problem.answer.split()] == sorted(d["digits"])
    else:
        raise ValueError(f"no checker for family {f!r}")
    return problem.answer == str(want)


def _eval_linear(side: str, x: int) -> int:
    """Evaluate '3x+5', 'x-2', '17' at x (only the forms the family writes)."""
    total = 0
    for sign, term in _terms(side):
        if term.endswith("x"):
            total += sign * (int(term[:-1]) if term[:-1] else 1) * x
        else:
            total += sign * int(term)
    return total


def _terms(side: str) -> list[tuple[int, str]]:
    out, sign, cur = [], 1, ""
    for ch in side:
        if ch in "+-":
            if cur:
                out.append((sign, cur))
            sign, cur = (1 if ch == "+" else -1), ""
        else:
            cur += ch
    out.append((sign, cur))
    return out
