"""The report's test-time-scaling findings, computed from sample rows as s1kit eval writes them:
Waits against full (kept / fixed), the curve's dips, budget forcing against majority voting at
matched thinking tokens; the findings table as rows; several seeds combined into one table."""

from __future__ import annotations

import json

import pytest

from s1kit.config import ConfigError
from s1kit.pipeline.findings import (curve_dips, finding_rows, majority_per_problem, rows_markdown,
                                     sequential_vs_parallel, wait_effects)
from s1kit.pipeline.seeds import combined_rows, parse_seeds, write_combined

N = 40


def bf(pid, budget, waits, correct, tokens):
    return {"id": pid, "method": "budget_forcing", "budget": budget, "waits": waits, "sample": None,
            "correct": correct, "thinking_tokens": tokens, "kind": "integer", "gold": "1"}


def mv(pid, j, answer, tokens):
    return {"id": pid, "method": "majority_voting", "budget": 100, "waits": 0, "sample": j, "kind": "integer",
            "gold": "1", "extracted": answer, "correct": answer == "1", "thinking_tokens": tokens}


@pytest.fixture()
def samples():
    rows = []
    for i in range(N):
        pid = f"p{i}"
        rows += [bf(pid, 0, 0, i % 10 == 0, 0), bf(pid, 50, 0, i % 4 == 0, 50), bf(pid, 100, 0, i % 2 == 0, 80),
                 # one Wait: 16 of the 20 right answers kept, 10 of the 20 wrong ones fixed
                 bf(pid, 100, 1, (i % 2 == 0 and i < 32) or (i % 2 == 1 and i < 20), 95),
                 bf(pid, 100, 2, i % 2 == 0, 110)]
        # majority voting: two samples, right only on a quarter of the problems
        rows += [mv(pid, 0, "1" if i % 4 == 0 else "2", 70), mv(pid, 1, "1" if i % 4 == 0 else "3", 75)]
    return rows


def test_wait_effects_count_kept_and_fixed(samples):
    w = wait_effects(samples, 100, [1, 2])
    one = w["1"]
    assert (one["kept"]["count"], one["kept"]["n"], one["fixed"]["count"], one["fixed"]["n"]) == (16, 20, 10, 20)
    assert one["vs_full"]["acc_a"] == pytest.approx(65.0) and one["vs_full"]["diff"] == pytest.approx(15.0)
    assert w["2"]["vs_full"]["diff"] == 0 and w["2"]["kept"]["share"] == 100.0


def test_curve_dips_find_the_worst_step(samples):
    c = curve_dips(samples, [0, 50, 100])
    assert c["lowest_cap"] == 0 and c["accuracy"] == {"0": 10.0, "50": 25.0, "100": 50.0}
    assert c["worst_below_lowest"]["cap"] == 50 and c["worst_below_lowest"]["diff"] == pytest.approx(15.0)
    dipped = [s for s in samples if not (s["budget"] == 50 and s["waits"] == 0)]
    dipped += [bf(f"p{i}", 50, 0, False, 50) for i in range(N)]
    c = curve_dips(dipped, [0, 50, 100])
    assert c["worst_below_lowest"]["diff"] == pytest.approx(-10.0)  # cap 50 below cap 0: a dip
    assert c["worst_below_previous"]["vs"] == 0 and c["worst_below_previous"]["cap"] == 50


def test_sequential_vs_parallel_matches_thinking_tokens(samples):
    assert majority_per_problem(samples, 2)["p0"] == {"correct": 1.0, "tokens": 145.0}
    sp = sequential_vs_parallel(samples, 100)
    assert sp["bf_tokens"] == 80 and sp["k"] == 1 and sp["mv_tokens"] == 70  # 70 is nearer 80 than 145
    assert sp["bf_vs_mv"]["diff"] == pytest.approx(25.0)


def test_rows_and_seeds_table(samples, tmp_path):
    f = {"control": 1.0, "scaling": {"scaling_per_1k": 5.0, "ci_low": 1.0, "ci_high": 9.0},
         "base": {}, "ablations": {}, "waits": wait_effects(samples, 100, [1]),
         "curve": curve_dips(samples, [0, 50, 100]), "sequential_vs_parallel": sequential_vs_parallel(samples, 100)}
    rows = finding_rows(f)
    by_key = {r["key"]: r for r in rows}
    assert by_key["control"]["verdict"] == "holds" and by_key["wait1_helps"]["holds"] in (True, False)
    assert by_key["wait1_no_harm"]["holds"] and by_key["curve_vs_cap0"]["holds"] and by_key["bf_vs_mv"]["holds"]
    assert by_key["wait1_fixed"]["measured"].startswith("50.0% (10/20)")
    assert len(rows_markdown(rows)) == len(rows) + 2
    assert "base_learned" not in by_key  # no base loss recorded: no precondition row
    stuck = {r["key"]: r for r in finding_rows({**f, "base_loss": 0.0507})}
    assert stuck["base_learned"]["verdict"] == "does not hold" and stuck["base_learned"]["measured"] == "0.0507"
    assert finding_rows({**f, "base_loss": 0.021})[0]["holds"] is True
    worse = json.loads(json.dumps(rows))
    worse[0].update(verdict="does not hold", holds=False)
    out = write_combined(tmp_path, {0: {"rows": rows, "wall_seconds": 600}, 1: {"rows": worse, "wall_seconds": 660}})
    assert len(combined_rows({0: {"rows": rows}, 1: {"rows": worse}})) == len(rows)
    text = out.read_text()
    assert "| seed 0 | seed 1 |" in text and "does not hold" in text and "seed 1 11.0 min" in text


def test_seeds_option_is_validated():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,x", "", "1,1", "-1"):
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)
