"""Task families: deterministic generation, exact answers that a brute-force checker recomputes."""

from __future__ import annotations

import dataclasses

import pytest

from s1kit.synth.tasks import FAMILIES, LEVELS, check, generate, generate_unique, get_family, make_problem

ALL = sorted(FAMILIES)


def test_at_least_eight_families_with_domains():
    assert len(FAMILIES) >= 8
    for fam in FAMILIES.values():
        assert fam.domain and fam.description


@pytest.mark.parametrize("family", ALL)
def test_deterministic_and_prefix_stable(family):
    a = generate(family, 40, seed=3)
    b = generate(family, 40, seed=3)
    assert [(p.id, p.question, p.answer, p.level) for p in a] == [(p.id, p.question, p.answer, p.level) for p in b]
    assert [p.question for p in generate(family, 10, seed=3)] == [p.question for p in a[:10]]
    other = generate(family, 40, seed=4)
    assert [p.question for p in other] != [p.question for p in a]


@pytest.mark.parametrize("family", ALL)
def test_answers_recomputed_by_checker(family):
    problems = generate(family, 200, seed=0)
    assert {p.level for p in problems} == set(LEVELS)
    for p in problems:
        assert isinstance(p.answer, str) and p.answer.strip() == p.answer and p.answer
        assert check(p), (p.question, p.answer)
        assert p.family == family and p.question.isascii()


@pytest.mark.parametrize("family", ALL)
def test_checker_rejects_wrong_answers(family):
    for p in generate(family, 30, seed=1):
        wrong = "1 0" if family == "sort_digits" and p.answer != "1 0" else str(int(p.answer.split()[0]) + 1)
        if family == "sort_digits":
            wrong = " ".join(reversed(p.answer.split()))
        assert not check(dataclasses.replace(p, answer=wrong)), (p.question, wrong)


def test_levels_get_harder():
    """Higher levels mean longer worked solutions (more terms, digits, letters, steps) on average."""
    from s1kit.synth.teacher import solve

    for family in ALL:
        means = []
        for lv in LEVELS:
            lengths = [len(solve(p, check_rate=0.0).thinking.replace(" ", ""))
                       for p in generate(family, 100, seed=0, levels=(lv,))]
            means.append(sum(lengths) / len(lengths))
        assert means[0] < min(means[1:]) and max(means) in means[2:], (family, means)


def test_generate_unique_excludes_and_dedups():
    held = generate_unique("add_chain", 50, seed=1, levels=(1,))
    assert len({p.question for p in held}) == len(held) == 50
    train = generate_unique("add_chain", 200, seed=2, levels=(1,), exclude={p.question for p in held})
    assert not {p.question for p in train} & {p.question for p in held}


def test_bad_names_are_errors():
    with pytest.raises(ValueError, match="family='nope' is unknown"):
        get_family("nope")
    with pytest.raises(ValueError, match="level=7"):
        make_problem("gcd", 0, 0, 7)
