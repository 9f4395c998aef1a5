"""Quality rules: each fires on a positive example and not on a negative one; config builds rules."""

from __future__ import annotations

import pytest

from s1kit.data.quality import Rule, default_rules, quality_filter, rules_from_config
from s1kit.data.rows import validate_row


def make_row(question: str = "Find the least positive integer $n$ such that $n^2 > 50$.", source: str = "olympiads",
             **extra) -> dict:
    return {"id": "q", "question": question, "solution": "n = 8", "answer": "8", "source": source,
            "cot_type": "math", "metadata": {}, **extra}


def rule(name: str) -> Rule:
    return next(r for r in default_rules() if r.name == name)


# rule name -> (a row it must fire on, a row it must not fire on)
CASES = {
    "missing_fields": (
        {k: v for k, v in make_row().items() if k != "source"},
        make_row(answer=None),
    ),
    "asymptote": (
        make_row("In the figure [asy] draw((0,0)--(1,1)); [/asy] find the area."),
        make_row("In the figure [asy] draw((0,0)--(1,1)); [/asy] find the area.", source="qq8933/AIME_1983_2024"),
    ),
    "image_link": (
        make_row("See ![figure](https://cdn.mathpix.com/cropped/abc.jpg?height=200) and find x."),
        make_row("Find the value of $x$ if $2x + 3 = 7$; see http://example.com/notes for context."),
    ),
    "p_numbering": (
        make_row("p1. Find all primes p. p2. Show that 7 divides 2^9 - 1."),
        make_row("Let p1.5 and p2 be points; find the distance from p to the origin."),
    ),
    "bold_digits": (
        make_row("**1.** Find all integers n with n^2 = 4."),
        make_row("Find **all** integers n such that n^2 = 4."),
    ),
    "empty_teacher_output": (
        make_row(thinking="   ", attempt="The answer is 8."),
        make_row(thinking="Try n = 7: 49 < 50. So n = 8.", attempt="The answer is 8."),
    ),
    "failed_teacher_output": (
        make_row(thinking="partial", attempt="partial", metadata={"finish_reason": "length"}),
        make_row(thinking="done", attempt="The answer is 8.", metadata={"finish_reason": "stop"}),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_fires_on_positive_and_not_on_negative(name):
    positive, negative = CASES[name]
    assert rule(name).check(positive) is not None
    assert rule(name).check(negative) is None


def test_every_default_rule_has_a_case():
    assert {r.name for r in default_rules()} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_filter_drops_positive_with_the_rule_name(name):
    positive, negative = CASES[name]
    kept, log = quality_filter([positive, negative])
    assert kept == [negative]
    assert [(d.reason, d.detail["evidence"] is not None) for d in log.drops] == [(name, True)]


def test_asymptote_evidence_and_teacher_rules_skip_rows_without_teacher_fields():
    _, log = quality_filter([make_row("Look: [ASY] unitsize(1cm); [/asy]")])
    assert log.drops[0].detail["evidence"] == "[ASY]"
    assert rule("empty_teacher_output").check(make_row()) is None
    assert rule("failed_teacher_output").check(make_row(metadata={"teacher_error": "x"})) is None


def test_failed_teacher_output_by_error_message():
    row = make_row(thinking="t", attempt="a", metadata={"teacher_error": "429 rate limited"})
    assert rule("failed_teacher_output").check(row) == "teacher_error: 429 rate limited"


def test_config_disables_rules_and_adds_regex_rules():
    rules = rules_from_config({
        "disable": ["bold_digits"],
        "rules": [{"name": "proof_only", "pattern": r"\bprove\b", "ignore_case": True,
                   "description": "proofs have no checkable answer", "exempt": "putnam"}],
    })
    names = [r.name for r in rules]
    assert "bold_digits" not in names and names[-1] == "proof_only"
    rows = [make_row("**1.** Prove that 2 is prime."), make_row("Prove it.", source="putnam"), make_row()]
    kept, log = quality_filter(rows, rules)
    assert [d.reason for d in log.drops] == ["proof_only"] and len(kept) == 2


def test_user_rule_can_read_other_fields_and_apply_to_some_sources():
    rules = rules_from_config({"rules": [{"name": "short_attempt", "pattern": r"^.{0,5}$", "fields": ["attempt"],
                                         "applies_to": "olympiads"}]})
    assert quality_filter([make_row(thinking="t", attempt="8")], rules)[1].counts() == {"short_attempt": 1}
    assert len(quality_filter([make_row(thinking="t", attempt="8", source="other")], rules)[1]) == 0


@pytest.mark.parametrize("config, message", [
    ({"disable": ["nope"]}, "cannot disable unknown rules"),
    ({"rulez": []}, "unknown keys"),
    ({"rules": [{"name": "x"}]}, "'pattern' must be a non-empty string"),
    ({"rules": [{"name": "x", "pattern": "("}]}, "bad pattern"),
    ({"rules": [{"name": "asymptote", "pattern": "a"}]}, "already used"),
    ({"rules": [{"name": "x", "pattern": "a", "exempt": "("}]}, "bad 'exempt' regex"),
    ({"rules": [{"name": "x", "pattern": "a", "fields": "question"}]}, "non-empty list"),
])
def test_config_errors_are_explicit(config, message):
    with pytest.raises(ValueError, match=message):
        rules_from_config(config)


def test_validate_row_reports_each_problem():
    row = make_row(trace_tokens=True, thinking=3)
    row["question"] = "  "
    del row["metadata"]
    assert validate_row(row) == ["question: empty", "metadata: missing",
                                 "trace_tokens: expected int, got bool", "thinking: expected str or None, got int"]
    assert validate_row(make_row()) == []


def test_require_teacher_correct_is_opt_in():
    from s1kit.data.quality import quality_filter, rules_from_config

    good = {"id": "a", "question": "What is 2+2?", "solution": "", "answer": "4", "source": "synth/add",
            "cot_type": "math", "metadata": {}, "teacher_correct": True}
    bad = {**good, "id": "b", "question": "What is 3+3?", "teacher_correct": False}
    unknown = {**good, "id": "c", "question": "What is 4+4?", "teacher_correct": None}
    kept, _ = quality_filter([good, bad, unknown], rules_from_config({}))
    assert [r["id"] for r in kept] == ["a", "b", "c"]  # s1's default keeps wrong traces
    kept, log = quality_filter([good, bad, unknown], rules_from_config({"require_teacher_correct": True}))
    assert [r["id"] for r in kept] == ["a", "c"] and log.counts() == {"teacher_incorrect": 1}
