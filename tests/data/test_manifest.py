"""Stage manifests round-trip through JSON; run_stage refuses silent drops; the funnel renders."""

from __future__ import annotations

import json

import pytest

from s1kit.data.manifest import (StageManifest, funnel_line, funnel_markdown, manifest_path, run_stage, sha256_files,
                                 sha256_row_ids)
from s1kit.data.quality import quality_filter
from s1kit.data.rows import DropLog, write_jsonl


def make_row(i: int, question: str = "Find x.") -> dict:
    return {"id": f"r{i}", "question": question, "solution": "", "answer": None, "source": "s",
            "cot_type": "math", "metadata": {}}


def manifest(stage: str, count_in: int, count_out: int, drops: dict[str, int]) -> StageManifest:
    return StageManifest(stage=stage, inputs_hash="sha256:0", parameters={}, count_in=count_in,
                         count_out=count_out, drops=drops, wall_seconds=1.5)


def test_round_trip_through_json(tmp_path):
    rows = [make_row(0), make_row(1, "See ![x](a.png)."), make_row(2)]
    out = tmp_path / "quality.jsonl"
    kept, log, m = run_stage("quality", quality_filter, rows, output=out)
    write_jsonl(out, kept)
    path = m.write(manifest_path(out))
    assert path.name == "quality.jsonl.manifest.json"
    back = StageManifest.read(path)
    assert back == m
    assert (back.count_in, back.count_out, back.drops) == (3, 2, {"image_link": 1})
    assert back.inputs_hash == sha256_row_ids(rows) and back.output == str(out)
    assert {"python", "s1kit"} <= set(back.versions) and back.wall_seconds >= 0
    assert json.loads(path.read_text())["stage"] == "quality"


def test_recorded_parameters_and_json_check():
    rows = [make_row(0)]
    _, _, m = run_stage("quality", quality_filter, rows, params={"rules": None})
    assert m.parameters == {"rules": None}
    with pytest.raises(TypeError, match="recorded="):
        run_stage("quality", quality_filter, rows, params={"rules": [object()]})
    _, _, m = run_stage("quality", quality_filter, rows, params={"rules": []}, recorded={"rules": "none"})
    assert m.parameters == {"rules": "none"}


def test_run_stage_refuses_a_silent_drop():
    def lossy(rows):
        return rows[1:], DropLog("lossy")

    with pytest.raises(RuntimeError, match="must account for every row"):
        run_stage("lossy", lossy, [make_row(0), make_row(1)])


def test_hashes_change_with_content(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("x")
    b.write_text("y")
    assert sha256_files([a]) != sha256_files([b])
    assert sha256_files([a, b]) != sha256_files([b, a])
    assert sha256_row_ids([make_row(0)]) != sha256_row_ids([make_row(1)])


def test_funnel_markdown_shows_the_s1_funnel():
    ms = [manifest("quality", 59_029, 51_581, {"image_link": 5_000, "asymptote": 2_448}),
          manifest("difficulty", 51_581, 24_496, {"solved_by_qwen": 27_085}),
          manifest("select", 24_496, 1_000, {"not_selected": 23_496})]
    md = funnel_markdown(ms)
    assert funnel_line(ms) == "59,029 → 51,581 → 24,496 → 1,000"
    assert "**Funnel:** 59,029 → 51,581 → 24,496 → 1,000" in md
    assert "| quality | 59,029 | 51,581 | 7,448 | 1.50 |" in md
    assert "| quality | image_link | 5,000 |" in md and "| select | not_selected | 23,496 |" in md
    assert md.index("image_link") < md.index("asymptote")  # larger reasons first
    assert "note:" not in md


def test_funnel_notes_a_gap_between_stages():
    md = funnel_markdown([manifest("a", 10, 8, {"x": 2}), manifest("b", 7, 7, {})])
    assert "> note: b starts from 7 rows, but a ended with 8" in md and "| b | (none) | 0 |" in md
    with pytest.raises(ValueError):
        funnel_line([])
