"""Checks that re-read the question (issue 14): zero to two per trace, each ending with the restated
answer; a caught mis-copy of the question is corrected by the first check."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from s1kit.synth.tasks import generate
from s1kit.synth.teacher import solve, teacher_rows
from s1kit.synth.verify import CHECK, verifies

VERIFIED = ("add_chain", "count_letter")


def _checks(thinking: str) -> list[str]:
    return [line for line in thinking.splitlines() if line.startswith(CHECK)]


@pytest.mark.parametrize("family", VERIFIED)
def test_checks_reread_the_question_and_end_with_the_answer(family):
    problems = generate(family, 300, seed=3, levels=(4,))
    counts = Counter()
    for p in problems:
        t = solve(p, correction_rate=0.0, check_rate=0.5, seed=1, verify=True)
        checks = _checks(t.thinking)
        counts[len(checks)] += 1
        assert t.checks == len(checks) <= 2 and t.correct
        for line in checks:
            assert line.endswith(f"Yes, {p.answer}.")
            d = p.data
            reread = "+".join(map(str, d["terms"])) if family == "add_chain" else f"{d['letter']} in {d['word']}"
            assert reread in line  # the operands / the letter and the word, copied from the question
        if checks:
            assert t.thinking.splitlines()[-1] == checks[-1]  # the restated answer ends the thinking
    # each further check with probability 0.5: 1/2, 1/4, 1/4
    for k, share in ((0, 0.5), (1, 0.25), (2, 0.25)):
        assert abs(counts[k] - 300 * share) < 4 * math.sqrt(300 * share * (1 - share)), counts


@pytest.mark.parametrize("family", VERIFIED)
def test_a_caught_miscopy_is_corrected_by_the_first_check(family):
    rows = teacher_rows(generate(family, 200, seed=0, levels=(4,)), correction_rate=1.0, check_rate=0.0, verify=True)
    fixed = [r for r in rows if r["metadata"]["corrected"]]
    assert len(fixed) > 180 and all(r["teacher_correct"] for r in rows)
    for r in fixed:
        lines = r["thinking"].splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith(CHECK))
        assert lines[first].endswith("No:") or lines[first].endswith(f"No: so it is {r['answer']}.")
        assert lines[-1].endswith(f"so it is {r['answer']}.") and r["attempt"] == f"Answer: {r['answer']}"
        assert lines[0] not in r["question"] or family == "add_chain"  # the mis-copy differs from the question
        if family == "add_chain":  # the redo starts from the right operands
            assert lines[first + 1].strip() == "+".join(map(str, r["metadata"] and _terms(r["question"])))


def _terms(question: str) -> list[int]:
    return [int(t) for t in question.removeprefix("What is ").split(" mod")[0].split("+")]


def test_default_correction_rate_only_for_the_verified_families():
    assert verifies("add_chain", "grid") and not verifies("add_chain", "running") and not verifies("gcd", "grid")
    rows = teacher_rows(generate("count_letter", 2000, seed=0, levels=(4,)), seed=0, verify=True)
    share = sum(r["metadata"]["corrected"] for r in rows) / len(rows)
    assert 0.03 < share < 0.07
    assert not any(r["metadata"]["corrected"] for r in teacher_rows(generate("gcd", 300, seed=0), verify=True))
    assert not any(r["metadata"]["corrected"] for r in teacher_rows(generate("add_chain", 300, seed=0)))
