"""The checked right-aligned grids (issue 14, docs/learnability.md finding 10): one width for every
line, operations at fixed distances whatever the problem's length, the running result as every
line's last character, zero to two checks of the last step (the grid's own step again, read at the
grid's own distances), a caught wrong last step corrected."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from s1kit.synth.tasks import check, generate
from s1kit.synth.teacher import default_layout, solve, teacher_rows
from s1kit.synth.verify import CHECK, HEADER, WIDTH, verifies

VERIFIED = ("add_chain", "count_letter")


def _lines(thinking: str) -> list[str]:
    """The trace's lines after its header (the first line of every checked grid's trace)."""
    lines = thinking.splitlines()
    assert lines[0] == HEADER and len(HEADER) == WIDTH
    return lines[1:]


@pytest.mark.parametrize("family", VERIFIED)
def test_every_line_has_one_width_and_ends_with_the_running_result(family):
    for p in generate(family, 200, seed=3):
        assert check(p)
        lines = _lines(solve(p, correction_rate=0.0, check_rate=0.0).thinking)
        assert all(len(line) == WIDTH for line in lines)
        assert lines[-1].strip()[-1] == p.answer  # the answer is the last line's last character
        if family == "add_chain":  # each line's last character: the sum of the terms consumed so far
            terms = p.data["terms"]
            for k, line in enumerate(lines[1:], start=2):
                assert line[-1] == str(sum(terms[-k:]) % 10)
        else:  # the count of the letters dropped from the end so far
            word, letter = p.data["word"], p.data["letter"]
            for k, line in enumerate(lines):
                assert line[-1] == str(word[len(word) - k:].count(letter)) if k else line[-1] == "0"


@pytest.mark.parametrize("family", VERIFIED)
def test_the_first_line_copies_the_end_of_the_question_at_a_fixed_distance(family):
    """In the chat prompt the question's last characters sit at one distance from the first line's:
    the first line is the question's operands, right-aligned, whatever their length."""
    for p in generate(family, 100, seed=4, levels=(4,)):
        first = _lines(solve(p, check_rate=0.0, correction_rate=0.0).thinking)[0]
        ops = p.question.removeprefix("What is ").removesuffix(" mod 10?") if family == "add_chain" else \
            f"{p.data['word']}{p.data['letter']}0"
        assert first == f"{ops:>{WIDTH}}"
    lengths = {len(p.data["terms" if family == "add_chain" else "word"]) for p in generate(family, 200, seed=0, levels=(4,))}
    assert len(lengths) >= 5  # the evaluation level spans several lengths


@pytest.mark.parametrize("family", VERIFIED)
def test_zero_one_or_two_checks_each_the_last_step_again_at_the_grids_distances(family):
    counts = Counter()
    for p in generate(family, 300, seed=3, levels=(4,)):
        t = solve(p, correction_rate=0.0, check_rate=0.5, seed=1)
        lines = _lines(t.thinking)
        starts = [i for i, line in enumerate(lines) if line == CHECK]
        counts[len(starts)] += 1
        assert t.checks == len(starts) <= 2 and t.correct
        grid = lines[:starts[0]] if starts else lines
        for i in starts:  # the next-to-last grid line copied at its columns, then the last step recomputed
            assert lines[i + 1:i + 3] == grid[-2:] and len(CHECK) == WIDTH
            assert lines[i - 1] == grid[-1] and lines[i + 2].strip()[-1] == p.answer
        if starts:
            assert starts[-1] == len(lines) - 3  # the last check is the end of the thinking
    assert counts[0] and counts[1] and counts[2]
    assert math.isclose(counts[0] / 300, 0.5, abs_tol=0.1)


@pytest.mark.parametrize("family", VERIFIED)
def test_a_caught_wrong_last_step_is_corrected_by_the_first_check(family):
    rows = teacher_rows(generate(family, 200, seed=0, levels=(4,)), correction_rate=1.0, check_rate=0.0)
    corrected = [r for r in rows if r["metadata"]["corrected"]]
    assert len(corrected) >= 190
    for r in corrected:
        lines = _lines(r["thinking"])
        assert lines[-3] == CHECK and lines[-2] == lines[-5]  # the next-to-last grid line again
        assert lines[-4].strip()[-1] != r["answer"]  # the last grid line was wrong
        assert lines[-1].strip()[-1] == r["answer"] and lines[-1] != lines[-4]  # recomputed: right
        assert r["teacher_correct"] and r["attempt"] == f"Answer: {r['answer']}"


def test_the_checked_grids_are_the_defaults_and_other_families_keep_their_checks():
    assert verifies("add_chain", "rgrid") and verifies("count_letter", "rgrid") and not verifies("add_chain", "grid")
    assert default_layout("add_chain") == default_layout("count_letter") == "rgrid"
    rows = teacher_rows(generate("count_letter", 2000, seed=0, levels=(4,)), seed=0)
    share = sum(r["metadata"]["corrected"] for r in rows) / len(rows)
    assert 0.05 < share < 0.15  # the default correction rate, 0.1
    assert not any(r["metadata"]["corrected"] for r in teacher_rows(generate("gcd", 300, seed=0)))
    # every trace is a whole number of lines: lengths (thinking + its two newlines) are 1 mod WIDTH + 1
    assert {(len(r["thinking"]) + 2) % (WIDTH + 1) for r in rows} == {1}
