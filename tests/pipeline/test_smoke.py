"""The embedded default end to end at smoke size: every stage runs through the real code paths,
the report is written with its tables and plots, and a rerun reuses every finished stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s1kit.config import ConfigError
from s1kit.pipeline.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from s1kit.pipeline.run import run_pipeline

    out = tmp_path_factory.mktemp("tiny")
    cfg = RunConfig.from_recipe(str(ROOT / "recipes/tiny.yaml"),
                                {"smoke": True, "output_dir": str(out), "threads": 1, "progress": False})
    html = run_pipeline(cfg)
    return cfg, out, html


def test_smoke_writes_the_report(smoke_run):
    cfg, out, html = smoke_run
    assert html == out / "report" / "report.html" and html.read_text().startswith("<")
    for name in ("report.md", "scaling.png", "comparison.png", "report.json"):
        assert (out / "report" / name).stat().st_size > 0
    text = (out / "report" / "report.md").read_text()
    for heading in ("The paper's findings", "Control / Scaling / Performance", "Curation funnel",
                    "Base models against the SFT model", "random-1K"):
        assert heading in text
    findings = json.loads((out / "report" / "report.json").read_text())["findings"]
    assert findings["control"] == 1.0  # budget forcing never lets thinking pass its cap
    assert set(findings["methods"]) == {"budget_forcing", "majority_voting", "rejection_sampling"}
    assert set(findings["base"]) == {"base_small", "base_large"} and set(findings["ablations"]) == {"random"}


def test_smoke_funnel_is_consistent(smoke_run):
    cfg, out, _ = smoke_run
    stages = json.loads((out / "curate" / "stage.json").read_text())["outputs"]
    funnel = stages["funnel"]
    assert funnel[0]["stage"] == "collect" and funnel[0]["in"] == cfg.pool_per_family * len(cfg.families)
    for before, after in zip(funnel, funnel[1:]):
        assert after["in"] == before["out"]  # no row lost between stages
    for row in funnel:
        assert row["in"] - row["out"] == sum(row["drops"].values())  # every drop has a reason
    assert {r["stage"]: r for r in funnel}["quality"]["drops"].get("teacher_incorrect", 0) > 0
    assert funnel[-1]["out"] == cfg.select_n
    selected = [json.loads(line) for line in open(stages["s1k"])]
    assert len(selected) == cfg.select_n and len({r["id"] for r in selected}) == cfg.select_n


def test_ablations_draw_from_the_quality_filtered_pool_as_in_s1(smoke_run):
    from s1kit.data.curate import read_manifest
    from s1kit.data.manifest import manifest_path

    cfg, out, _ = smoke_run
    outputs = json.loads((out / "curate" / "stage.json").read_text())["outputs"]
    quality = {json.loads(line)["id"] for line in open(out / "curate" / "05-quality.jsonl")}
    random1k = [json.loads(line) for line in open(outputs["random"])]
    assert len(random1k) == cfg.select_n and {r["id"] for r in random1k} <= quality
    select = read_manifest(manifest_path(out / "curate" / "08-select.jsonl"))  # the last ablation's
    assert select.count_in == len(quality)  # (tests/data/test_curate.py: with rows the difficulty stage drops)


def test_pool_only_settings_keep_the_base_models(smoke_run, tmp_path):
    """pool_correction_rates changes the SFT pool's teacher, not the base corpus: the bases are reused."""
    import shutil
    from dataclasses import replace

    from s1kit.pipeline.run import run_pipeline

    cfg, out, _ = smoke_run
    fork = tmp_path / "fork"
    shutil.copytree(out, fork)
    changed = replace(cfg, output_dir=str(fork), pool_correction_rates=("count_letter=0",))
    before = {n: (fork / n / "stage.json").read_text() for n in ("base_small", "base_large", "curate")}
    run_pipeline(changed)
    assert (fork / "base_large" / "stage.json").read_text() == before["base_large"]
    assert (fork / "base_small" / "stage.json").read_text() == before["base_small"]
    assert (fork / "curate" / "stage.json").read_text() != before["curate"]
    assert (fork / "pool" / "base_corpus_pool.jsonl").read_bytes() == (out / "pool" / "base_corpus_pool.jsonl").read_bytes()
    rows = [json.loads(line) for line in open(fork / "pool" / "pool.jsonl")]
    caught = {f: sum(r["metadata"]["corrected"] for r in rows if r["metadata"]["family"] == f) for f in cfg.families}
    assert caught["count_letter"] == 0 and caught["add_chain"] > 0
    with pytest.raises(ConfigError, match="pool_correction_rates"):
        replace(cfg, pool_correction_rates=("gcd=0",))
    with pytest.raises(ConfigError, match="pool_correction_rates"):
        replace(cfg, pool_correction_rates=("count_letter=1.5",))


def test_stages_side_by_side_give_the_same_models_as_one_after_another(smoke_run, tmp_path, caplog):
    """base_small and the ablation's SFT run in a second process (stage_workers 2, the default):
    every model is byte-identical to a run with stage_workers 1."""
    import logging
    from dataclasses import replace

    from s1kit.pipeline.run import run_pipeline

    cfg, out, _ = smoke_run
    assert cfg.stage_workers == 2
    with caplog.at_level(logging.INFO, logger="s1kit.pipeline.beside"):
        run_pipeline(replace(cfg, output_dir=str(tmp_path / "again")))
    assert sum("running beside" in r.getMessage() for r in caplog.records) == 2
    run_pipeline(replace(cfg, output_dir=str(tmp_path / "serial"), stage_workers=1))
    for stage in ("base_small", "base_large", "sft_s1k", "sft_random"):
        ours = (tmp_path / "again" / stage / "model" / "model.safetensors").read_bytes()
        assert ours == (tmp_path / "serial" / stage / "model" / "model.safetensors").read_bytes(), stage
        assert ours == (out / stage / "model" / "model.safetensors").read_bytes(), stage
    with pytest.raises(ConfigError, match="stage_workers"):
        replace(cfg, stage_workers=3)


def test_rerun_reuses_every_stage(smoke_run):
    from s1kit.pipeline.run import run_pipeline

    cfg, out, _ = smoke_run
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/stage.json")}
    run_pipeline(cfg)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/stage.json")} == before


def test_recipes_load_and_bad_values_name_the_field():
    for recipe in ("tiny.yaml", "tiny-ablation.yaml"):
        cfg = RunConfig.from_recipe(str(ROOT / "recipes" / recipe))
        assert cfg.select_n == 1000 and not cfg.smoke
    with pytest.raises(ConfigError, match="families"):
        RunConfig(families=("no_such_family",))
    with pytest.raises(ConfigError, match="ablations"):
        RunConfig(ablations=("longest", "best"))
    with pytest.raises(ConfigError, match="not_a_field"):
        RunConfig.from_recipe(None, {"not_a_field": 1})
