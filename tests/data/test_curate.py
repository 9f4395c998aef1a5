"""The curate pipeline: stages, manifests, stage caching, reruns, s1K-1.1 output, CLI and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s1kit.config import ConfigError
from s1kit.data.curate import S1K_COLUMNS, CurateConfig, curate_report, run_curate, stage_output
from tests.conftest import BENCHMARKS

FIXTURES = Path(__file__).parent / "fixtures"
SYNTH = {"synth": "add_chain,gcd,sort_digits", "n": 40, "seed": 0, "mistake_rate": 0.2}


def cfg(tmp_path: Path, **kw) -> CurateConfig:
    values = dict(output_dir=str(tmp_path / "run"), sources=(SYNTH,), n=20, progress=False)
    values.update(kw)
    return CurateConfig(**values)


def manifest(c: CurateConfig, stage: str) -> dict:
    return json.loads(Path(str(stage_output(c, stage)) + ".manifest.json").read_text())


def test_synthetic_run_end_to_end_writes_manifests_funnel_and_s1k_columns(tmp_path):
    c = cfg(tmp_path)
    result = run_curate(c)
    counts = [manifest(c, s)["count_out"] for s in ("collect", "decontaminate", "dedup", "quality", "difficulty",
                                                     "domains", "select")]
    assert result["funnel"] == " → ".join(f"{n:,}" for n in [120] + counts)
    assert counts[-1] == 20
    for stage in ("collect", "dedup", "select"):
        m = manifest(c, stage)
        assert m["inputs_hash"].startswith("sha256:") and m["versions"]["python"]
        assert m["count_in"] - m["count_out"] == sum(m["drops"].values())
        drops = Path(str(stage_output(c, stage)).replace(".jsonl", ".drops.jsonl"))
        assert len(drops.read_text().splitlines()) == sum(m["drops"].values())
    rows = [json.loads(line) for line in open(result["output"]["jsonl"])]
    assert len(rows) == 20
    for r in rows:
        assert set(S1K_COLUMNS) <= set(r)
        # what `s1kit train` reads by default (question/thinking/attempt/id) and with s1K-1.1 fields
        assert r["question"] and r["thinking"] and r["attempt"] and r["id"]
        assert r["deepseek_thinking_trajectory"] == r["thinking"] and r["deepseek_attempt"] == r["attempt"]
        assert r["source_type"].startswith("synth/") and isinstance(json.loads(r["metadata"]), dict)
        assert r["deepseek_grade"] in ("Yes", "No") and r["domain"] and r["trace_tokens"] == len(r["thinking"])
    import pyarrow.parquet as pq

    assert pq.read_table(result["output"]["parquet"]).num_rows == 20
    assert "**Funnel:**" in (tmp_path / "run" / "funnel.md").read_text()


def test_output_is_read_by_the_training_data_loader(tmp_path, qwen_tokenizer):
    from s1kit.train.config import TrainConfig
    from s1kit.train.data import build_examples, load_rows

    result = run_curate(cfg(tmp_path))
    for fmt in ("jsonl", "parquet"):
        tcfg = TrainConfig(model="tiny:hidden=64,layers=1,heads=2,kv_heads=2,ffn=128", dataset=result["output"][fmt],
                           max_length=4096, chat_template="chatml")
        rows, bad = load_rows(tcfg)
        examples, report = build_examples(rows, qwen_tokenizer, tcfg, bad)
        assert report["kept"] == 20 and report["dropped_total"] == 0


def test_rerun_reuses_every_stage_and_a_changed_parameter_reruns_only_from_there(tmp_path):
    c = cfg(tmp_path)
    run_curate(c)
    stamps = {s: manifest(c, s)["created_at"] for s in ("collect", "dedup", "quality", "select")}
    mtimes = {s: stage_output(c, s).stat().st_mtime_ns for s in stamps}
    run_curate(c)
    assert {s: stage_output(c, s).stat().st_mtime_ns for s in stamps} == mtimes  # all cached
    first = [json.loads(line) for line in open(stage_output(c, "select"))]
    c2 = cfg(tmp_path, seed=1)
    run_curate(c2)
    for s in ("collect", "dedup", "quality"):
        assert stage_output(c, s).stat().st_mtime_ns == mtimes[s]
    second = [json.loads(line) for line in open(stage_output(c, "select"))]
    assert [r["id"] for r in second] != [r["id"] for r in first]
    run_curate(cfg(tmp_path, seed=0))  # back to seed 0: same selection as the first run
    assert [json.loads(line)["id"] for line in open(stage_output(c, "select"))] == [r["id"] for r in first]
    # a tampered output is not trusted
    out = stage_output(c, "quality")
    out.write_text(out.read_text() + "\n")
    run_curate(c)
    assert stage_output(c, "quality").stat().st_mtime_ns != mtimes["quality"]


def test_stages_option_reruns_one_stage_on_the_stored_previous_output(tmp_path):
    c = cfg(tmp_path)
    run_curate(c)
    collect_mtime = stage_output(c, "collect").stat().st_mtime_ns
    result = run_curate(cfg(tmp_path, stages=("select",), select_method="longest", n=5))
    rows = [json.loads(line) for line in open(result["output"]["jsonl"])]
    lengths = sorted((json.loads(line)["trace_tokens"] for line in open(stage_output(c, "domains"))), reverse=True)
    assert [r["trace_tokens"] for r in rows] == lengths[:5]
    assert stage_output(c, "collect").stat().st_mtime_ns == collect_mtime
    with pytest.raises(ConfigError):
        run_curate(cfg(tmp_path / "fresh", stages=("select",)))


def test_select_from_draws_from_an_earlier_stage_as_s1s_ablations_do(tmp_path):
    """s1's 1K-random/-longest ignore the difficulty filter: select_from=quality draws from before it."""
    c = cfg(tmp_path, select_method="full")
    run_curate(c)
    quality = [json.loads(line) for line in open(stage_output(c, "quality"))]
    solved = [r["id"] for r in quality[::3]]
    solver = tmp_path / "solver.jsonl"
    solver.write_text("".join(json.dumps({"id": i, "sample": 0, "text": f"Answer: {r['answer']}"}) + "\n"
                              for i, r in zip(solved, quality[::3])))
    hard = cfg(tmp_path, select_method="full", solver_outputs=(f"small={solver}",))
    after = [json.loads(line)["id"] for line in open(run_curate(hard)["output"]["jsonl"])]
    assert manifest(hard, "difficulty")["drops"] == {"solved_by:small": len(solved)}
    assert set(after) == {r["id"] for r in quality} - set(solved)
    ablation = cfg(tmp_path, name="longest1k", select_method="longest", n=5, stages=("select",), force=True,
                   select_from="quality", solver_outputs=hard.solver_outputs)
    rows = [json.loads(line) for line in open(run_curate(ablation)["output"]["jsonl"])]
    assert len(rows) == 5 and {r["id"] for r in rows} & set(solved)  # solved rows are candidates again
    assert [r["trace_tokens"] for r in rows] == sorted((r["trace_tokens"] for r in rows), reverse=True)
    with pytest.raises(ConfigError, match="select_from"):
        cfg(tmp_path, select_from="select")


def test_real_source_shapes_decontamination_and_solver_difficulty(tmp_path):
    if not (BENCHMARKS / "math500.jsonl").exists():
        pytest.skip("shared benchmarks are absent")
    leak = json.loads(open(BENCHMARKS / "math500.jsonl").readline())["problem"]
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"id": "leak", "question": "Consider this. " + leak, "answer": "1"}) + "\n" +
                    json.dumps({"id": "easy", "question": "What is 12 times 12 in base ten arithmetic?",
                                "answer": "144"}) + "\n")
    solver = tmp_path / "solver.jsonl"
    solver.write_text(json.dumps({"id": "easy", "sample": 0, "text": "Answer: 144"}) + "\n")
    c = cfg(tmp_path, sources=({"name": "aime", "path": str(FIXTURES / "aime.jsonl")},
                               {"name": "math", "path": str(FIXTURES / "math.jsonl")},
                               {"path": str(mine), "source": "mine"}),
            benchmarks=(str(BENCHMARKS),), solver_outputs=(f"qwen7b={solver}",), domain_default="97",
            select_method="full")
    result = run_curate(c)
    assert manifest(c, "collect")["drops"] == {"bad_row:Year": 1, "bad_row:subject": 1,
                                               "filtered:aime_after_2021": 1}
    assert manifest(c, "collect")["extra"]["revisions"] == {}
    decon = manifest(c, "decontaminate")
    # the leak, and the MATH fixture's stock phrase "what is the smallest positive integer n such":
    # 8-gram matching also catches boilerplate shared with MATH500 (as s1's rule would)
    assert decon["drops"] == {"contaminated": 2}
    assert decon["extra"]["hits_by_source"]["qfq/openaimath/Number Theory"][0]["id"] == "math/local/0"
    hit = decon["extra"]["hits_by_source"]["mine"][0]
    assert hit["id"] == "leak" and hit["benchmark"] == "math500" and len(hit["ngram"].split()) == 8
    assert manifest(c, "difficulty")["drops"] == {"solved_by:qwen7b": 1}
    rows = [json.loads(line) for line in open(result["output"]["jsonl"])]
    assert sorted(r["id"] for r in rows) == ["aime/local/0", "aime/local/1", "math/local/1"]
    assert {r["source_type"] for r in rows} == {"qq8933/AIME_1983_2024", "qfq/openaimath/Algebra"}


def test_distill_stage_through_a_real_teacher_server(tmp_path):
    pytest.importorskip("fastapi")
    from tests.data.teacher_server import TeacherServer

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answer": "1"}) + "\n" for i, q in
                                 enumerate(["What is the probability of two heads in two tosses?",
                                            "Is 91 prime? [malformed]", "How many ways to arrange 3 books?"])))
    with TeacherServer() as server:
        c = cfg(tmp_path, sources=({"path": str(questions), "source": "mine"},), teacher="distill",
                select_method="full", domains="keyword")
        section = {"base_url": server.url, "model": "teacher-1", "api_key_env": None, "max_retries": 1,
                   "backoff_s": 0.0}
        result = run_curate(c, distill_section=section)
        m = manifest(c, "distill")
        assert m["drops"] == {"no_teacher_output": 1}
        assert m["extra"]["teacher_drops"] == {"malformed:invalid_json": 1}
        rows = [json.loads(line) for line in open(result["output"]["jsonl"])]
        assert sorted(r["id"] for r in rows) == ["q0", "q2"]
        assert all(r["thinking"].startswith("Let me think") for r in rows)
        assert {r["domain"] for r in rows} == {"60", "05"}
        asked = sum(server.app.state.attempts.values())
        run_curate(c, distill_section=section)  # cached: the teacher is not asked again
        assert sum(server.app.state.attempts.values()) == asked


def test_cli_curate_and_report(tmp_path, capsys):
    from s1kit.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("curate:\n  output_dir: " + str(tmp_path / "cli") + "\n  n: 10\n  progress: false\n"
                      "  sources:\n    - {synth: gcd, n: 30}\n")
    assert main(["--log-level", "WARNING", "curate", "--config", str(recipe), "--select-method", "random"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["funnel"].endswith("→ 10")
    assert main(["--log-level", "WARNING", "curate", "report", "--config", str(recipe)]) == 0
    text = capsys.readouterr().out
    assert "**Funnel:** 30 → " in text and "| select | not_selected |" in text
    c = CurateConfig(output_dir=str(tmp_path / "cli"), sources=({"synth": "gcd", "n": 30},))
    assert curate_report(c)[1] == tmp_path / "cli" / "funnel.md"


@pytest.mark.parametrize("bad", [dict(select_method="best"), dict(stages=("collect", "magic")), dict(ngram=0),
                                 dict(dedup_threshold=0.0), dict(teacher="gpt"), dict(domains="llm"),
                                 dict(quality={"disable": ["no_such_rule"]}), dict(sources=({"name": "nope"},)),
                                 dict(solver_outputs=("no-equals.jsonl",)), dict(domain_default="00")])
def test_bad_curate_configs_raise_config_error(tmp_path, bad):
    with pytest.raises(ConfigError):
        cfg(tmp_path, **bad)


def test_recipes_parse_and_validate():
    from s1kit.config import load_yaml
    from s1kit.data.distill import DistillConfig

    root = Path(__file__).resolve().parents[2] / "recipes"
    for name in ("curate-synth.yaml", "curate-s1k.yaml"):
        recipe = load_yaml(root / name)
        c = CurateConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe["curate"].items()})
        assert c.n == 1000
    s1k = load_yaml(root / "curate-s1k.yaml")
    assert len(s1k["curate"]["sources"]) == 16
    DistillConfig(input="q.jsonl", **s1k["distill"])
