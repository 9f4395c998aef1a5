import json
import os
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("math_verify", reason="the grader's symbolic tier needs: pip install 's1kit[eval]'")

from s1kit.eval import grade as grade_module  # noqa: E402
from s1kit.eval.grade import (  # noqa: E402
    Extraction, WorkerCrashed, exact_key, extract_answer, final_answer_region, grade,
    grade_answer, last_boxed, letter_of, normalise, run_in_worker, shutdown_worker,
)

CASES_PATH = Path(__file__).with_name("grader_cases.jsonl")
MATH500_PATH = Path(__file__).resolve().parents[3] / "shared/data/benchmarks/math500.jsonl"
CASES = [json.loads(line) for line in CASES_PATH.read_text().splitlines() if line.strip()]


# --- the hand-made table --------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_hand_made_case(case):
    result = grade(case["prediction"], case["gold"], kind=case["kind"])
    assert result.correct is case["expected"], result


def test_table_covers_every_group_and_is_big_enough():
    groups = {case["group"] for case in CASES}
    assert len(CASES) >= 60
    assert {"pitfall", "boxed", "thinking", "mcq", "unparsable", "integer", "interval", "tuple",
            "number"} <= groups
    assert len({case["id"] for case in CASES}) == len(CASES)
    for case in CASES:
        assert case["kind"] in ("math", "integer", "mcq") and isinstance(case["expected"], bool)


# --- extraction -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (r"x \boxed{\frac{a}{b^{2}}} y", r"\frac{a}{b^{2}}"),
    (r"\boxed{1} then \boxed{2}", "2"),
    (r"\boxed{\boxed{3}}", r"\boxed{3}"),  # the outermost box; normalise unwraps the inner one
    (r"\fbox{4}", "4"),
    (r"\boxed {5}", "5"),
    (r"\boxed 6.", "6."),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    (r"\boxed{7} \boxed{8", "7"),
    ("no box here", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_final_answer_region_prefers_the_answer_delimiter():
    text = "<|im_start|>think\nA </think> B<|im_start|>answer\nC<|im_end|>"
    assert final_answer_region(text) == "\nC"
    assert final_answer_region("<think>x</think>y") == "y"
    assert final_answer_region("plain") == "plain"


@pytest.mark.parametrize("text, kind, expected", [
    (r"so \boxed{42}.", "math", Extraction("42", "boxed")),
    ("Final Answer: 12\nAnswer: 13", "math", Extraction("12", "final_answer_line")),
    ("## Final Answer\n\n$x^2$", "math", Extraction("x^2", "final_answer_line")),
    ("Answer: $\\frac12$ (approximately)", "math", Extraction("\\frac12", "answer_line")),
    ("Thus the answer is 7. Done.", "math", Extraction("7", "answer_phrase")),
    ("  -3/4 ", "math", Extraction("-3/4", "bare")),
    ("some reasoning\nover two lines", "math", Extraction(None, "none")),
    ("Answer: (B) because ...", "mcq", Extraction("B", "answer_line")),
    (r"\boxed{42}" + "\nThe answer is (D)", "mcq", Extraction("D", "answer_phrase")),
    ("Reasoning.\n**C**", "mcq", Extraction("C", "letter")),
    ("It could be A or B.", "mcq", Extraction(None, "none")),
])
def test_extract_answer_methods(text, kind, expected):
    assert extract_answer(text, kind) == expected


def test_thinking_box_never_counts_when_the_answer_has_none():
    text = "<|im_start|>think\n\\boxed{10}\n<|im_start|>answer\nI could not finish.\nSorry."
    assert extract_answer(text).answer is None
    assert grade(text, "10").tier == "unparsable"


@pytest.mark.parametrize("answer, letter", [
    ("C", "C"), ("(C)", "C"), ("C.", "C"), ("C) 4 J", "C"), (r"\text{(C)}", "C"),
    ("**C**", "C"), ("Option C", "C"), ("A ball", None), ("E", None), ("c", None), ("", None),
])
def test_letter_of(answer, letter):
    assert letter_of(answer) == letter


# --- normalisation --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, normalised", [
    (r"$\dfrac{1}{2}\text{ cm}.$", r"\frac{1}{2}"),
    (r"\frac12", r"\frac{1}{2}"),
    (r"\frac 59", r"\frac{5}{9}"),
    (r"\frac9{19}", r"\frac{9}{19}"),
    (r"11\sqrt2", r"11\sqrt{2}"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"( 3, \frac{\pi}{2} )"),
    (r"10,\!080", "10080"),
    (r"\$18.90", "18.90"),
    ("90^\\circ", "90"),
    (r"50\%", "50"),
    ("**73**", "73"),
    (r"\textbf{(B)}", "B"),
    (r"1\frac{4}{5}", r"\frac{9}{5}"),
    (".35625", "0.35625"),
    (r"\boxed{5}", "5"),
    (r"864 \mbox{ inches}^2", "864"),
])
def test_normalise(raw, normalised):
    assert normalise(raw) == normalised


def test_exact_key_keeps_spaces_only_between_letters():
    assert exact_key(r"2 \pi r") == r"2\pi r"
    assert exact_key("p - q") == "p-q"
    assert exact_key("East") == exact_key("east")
    assert exact_key("R") != exact_key("r")


# --- tiers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, gold, kind, tier, correct", [
    (r"\dfrac{1}{2}", r"\frac12", "math", "exact", True),
    ("033", "33", "math", "integer", True),
    ("34", "33", "math", "integer", False),
    (r"\frac{66}{2}", "33", "integer", "integer", False),
    ("0.5", r"\frac12", "math", "math_verify", True),
    (r"\frac{1}{2006!}", r"\frac{1}{2004!}", "math", "math_verify", False),
    ("C", "(C)", "mcq", "exact", True),
    ("no letter", "C", "mcq", "unparsable", False),
    ("", "5", "math", "unparsable", False),
])
def test_grade_answer_names_the_deciding_tier(answer, gold, kind, tier, correct):
    result = grade_answer(answer, gold, kind)
    assert (result.tier, result.correct) == (tier, correct), result
    assert result.extracted == answer and result.reason


@pytest.mark.parametrize("call", [
    lambda: grade("1", "1", kind="code"),
    lambda: grade("C", "42", kind="mcq"),
    lambda: grade("1", "1.5", kind="integer"),
])
def test_bad_kind_or_gold_raises(call):
    with pytest.raises(ValueError):
        call()


def test_slow_math_verify_times_out_as_incorrect():
    result = grade_answer("(x+2)^{80}", "(x+1)^{80}", timeout_s=0.01)
    assert (result.correct, result.tier) == (False, "timeout"), result
    assert grade_answer("0.5", r"\frac12").correct  # the worker survived its alarm


def test_stuck_worker_is_killed_and_replaced():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="killed"):
        run_in_worker(time.sleep, 60, timeout_s=0.3)
    assert time.monotonic() - start < 5
    assert grade_answer("0.5", r"\frac12").tier == "math_verify"


def test_dead_worker_is_reported_and_replaced():
    with pytest.raises(WorkerCrashed):
        run_in_worker(os._exit, 3, timeout_s=30)
    assert grade_answer("0.5", r"\frac12").correct


def test_missing_math_verify_names_the_extra(monkeypatch):
    shutdown_worker()
    real_find_spec = grade_module.importlib.util.find_spec
    monkeypatch.setattr(grade_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "math_verify" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=re.escape("pip install 's1kit[eval]'")):
        grade_answer("0.5", r"\frac12")
    assert grade_answer("033", "33").correct  # the cheap tiers do not need it


# --- MATH-500 ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def math500():
    if not MATH500_PATH.exists():
        pytest.skip(f"MATH-500 copy not found at {MATH500_PATH} (shared benchmark data absent)")
    return [json.loads(line) for line in MATH500_PATH.read_text().splitlines()]


def test_every_math500_solution_grades_equal_to_its_answer(math500):
    wrong = [(row["unique_id"], row["answer"], grade(row["solution"], row["answer"]))
             for row in math500]
    wrong = [item for item in wrong if not item[2].correct]
    assert len(math500) == 500
    assert wrong == []


def _value_key(answer: str) -> str:
    # `x=5` and `5` name the same value: such a pair is not a wrong answer, so it is skipped
    return re.sub(r"^[A-Za-z]\s*=\s*", "", exact_key(normalise(answer)))


def test_another_problems_answer_grades_unequal(math500):
    keys = [_value_key(row["answer"]) for row in math500]
    wrongly_equal = []
    for i, row in enumerate(math500):
        j = next(j % len(math500) for j in range(i + 1, i + len(math500))
                 if keys[j % len(math500)] != keys[i])
        result = grade(row["solution"], math500[j]["answer"])
        if result.correct:
            wrongly_equal.append((row["unique_id"], row["answer"], math500[j]["answer"], result))
    assert wrongly_equal == []


def test_every_aime24_reference_solution_grades_equal_to_its_answer():
    path = MATH500_PATH.with_name("aime24.jsonl")
    if not path.exists():
        pytest.skip(f"AIME 2024 copy not found at {path} (shared benchmark data absent)")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    wrong = [(row["id"], grade(row["reference_solution"], str(row["expected_answer"]), "integer"))
             for row in rows]
    assert [item for item in wrong if not item[1].correct] == []
