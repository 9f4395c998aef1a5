"""Grader accuracy on the hand-made table: s1kit's grader vs raw math-verify.

    python bench/grader_table.py            # prints Markdown, writes bench/results/grader_table.json

Each case of tests/eval/grader_cases.jsonl (gold, model output, kind, expected verdict) is graded
by (a) ``s1kit.eval.grade.grade`` and (b) raw math-verify, ``verify(parse(gold), parse(pred))``
exactly as its README shows. (c) is math-verify with the gold wrapped in ``\\boxed{}``, the
usual way to hand it a bare reference answer, for a fairer second baseline. A decision is right
when it equals the case's expected verdict.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

from math_verify import parse, verify

from s1kit.eval.grade import grade

ROOT = Path(__file__).resolve().parents[1]
CASES_PATH = ROOT / "tests/eval/grader_cases.jsonl"
RESULTS_PATH = ROOT / "bench/results/grader_table.json"


def ours(case: dict) -> bool:
    return grade(case["prediction"], case["gold"], kind=case["kind"]).correct


def raw_math_verify(case: dict) -> bool:
    return verify(parse(case["gold"]), parse(case["prediction"]))


def math_verify_boxed_gold(case: dict) -> bool:
    return verify(parse(f"\\boxed{{{case['gold']}}}"), parse(case["prediction"]))


GRADERS = {
    "s1kit grader": ours,
    "raw math-verify": raw_math_verify,
    "math-verify, gold boxed": math_verify_boxed_gold,
}


def run(cases: list[dict]) -> dict:
    results = {}
    for name, decide in GRADERS.items():
        start = time.perf_counter()
        right = [decide(case) == case["expected"] for case in cases]
        seconds = time.perf_counter() - start
        by_group = defaultdict(lambda: [0, 0])
        for case, ok in zip(cases, right):
            by_group[case["group"]][0] += ok
            by_group[case["group"]][1] += 1
        results[name] = {
            "cases": len(cases), "correct_decisions": sum(right),
            "accuracy": sum(right) / len(cases), "seconds": round(seconds, 3),
            "by_group": {group: {"correct": c, "cases": n} for group, (c, n) in by_group.items()},
            "wrong_ids": [case["id"] for case, ok in zip(cases, right) if not ok],
        }
    return results


def markdown(results: dict) -> str:
    lines = ["| grader | cases | correct decisions | accuracy | seconds |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['cases']} | {r['correct_decisions']} | "
                     f"{r['accuracy']:.1%} | {r['seconds']:.2f} |")
    groups = list(next(iter(results.values()))["by_group"])
    lines += ["", "| group | cases | " + " | ".join(results) + " |",
              "| --- | ---: |" + " ---: |" * len(results)]
    for group in groups:
        first = next(iter(results.values()))["by_group"][group]
        row = [str(r["by_group"][group]["correct"]) for r in results.values()]
        lines.append(f"| {group} | {first['cases']} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    cases = [json.loads(line) for line in CASES_PATH.read_text().splitlines() if line.strip()]
    results = run(cases)
    print(markdown(results))
    for name, r in results.items():
        print(f"\n{name} wrong on: {', '.join(r['wrong_ids']) or 'none'}")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    payload = {"cases_file": str(CASES_PATH.relative_to(ROOT)),
               "math_verify_version": version("math-verify"), "graders": results}
    RESULTS_PATH.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {RESULTS_PATH.relative_to(ROOT)}")
    ours_right = results["s1kit grader"]["correct_decisions"]
    if ours_right < results["raw math-verify"]["correct_decisions"]:
        raise SystemExit("s1kit grader is below raw math-verify")


if __name__ == "__main__":  # the guard matters: the grader's worker is a spawned process
    main()
