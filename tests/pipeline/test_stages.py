"""The pipeline's stage cache: unchanged stages are reused, interrupted ones resume in place, and a
stage whose parameters changed starts from an empty folder (no resumable step inside it may pick
up rows made under the old parameters)."""

from __future__ import annotations

import pytest

from s1kit.pipeline.run import Stages


def write_rows(text):
    def fn(folder):
        (folder / "rows.jsonl").write_text(text)
        return {"rows": text}
    return fn


def read_rows(seen):
    def fn(folder):
        path = folder / "rows.jsonl"
        seen["rows"] = path.read_text() if path.exists() else None
        return {}
    return fn


def crash(folder):
    (folder / "rows.jsonl").write_text("partial\n")
    raise KeyboardInterrupt


def test_unchanged_stage_is_reused_and_changed_one_starts_empty(tmp_path):
    assert Stages(tmp_path).run("s", {"lr": 1}, [], write_rows("old\n")) == {"rows": "old\n"}
    seen = {}
    again = Stages(tmp_path)
    assert again.run("s", {"lr": 1}, [], read_rows(seen)) == {"rows": "old\n"} and again.skipped == ["s"]
    assert seen == {}  # not run
    Stages(tmp_path).run("s", {"lr": 2}, [], read_rows(seen))
    assert seen["rows"] is None  # the old parameters' rows were cleared first


def test_interrupted_stage_resumes_unless_its_parameters_changed(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        Stages(tmp_path).run("s", {"lr": 1}, [], crash)
    seen = {}
    Stages(tmp_path).run("s", {"lr": 1}, [], read_rows(seen))
    assert seen["rows"] == "partial\n"  # same parameters: resumable steps keep their rows
    assert not (tmp_path / "s" / "stage.pending.json").exists() and (tmp_path / "s" / "stage.json").exists()
    with pytest.raises(KeyboardInterrupt):
        Stages(tmp_path).run("s", {"lr": 2}, [], crash)
    Stages(tmp_path).run("s", {"lr": 3}, [], read_rows(seen))
    assert seen["rows"] is None


def test_a_changed_upstream_stage_reruns_its_dependents(tmp_path):
    first = Stages(tmp_path)
    first.run("a", {"x": 1}, [], write_rows("a1\n"))
    first.run("b", {}, ["a"], write_rows("b1\n"))
    second = Stages(tmp_path)
    second.run("a", {"x": 2}, [], write_rows("a2\n"))
    seen = {}
    second.run("b", {}, ["a"], read_rows(seen))
    assert seen["rows"] is None and second.skipped == []
