"""Each s1 source's normaliser on hand-written fixtures in that source's Hub column shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s1kit.config import ConfigError
from s1kit.data.rows import validate_row
from s1kit.data.sources import REGISTRY, SourceConfig, collect, hub_records, pinned_revisions

FIXTURES = Path(__file__).parent / "fixtures"

# registry name -> (rows kept, {drop reason: count}, source of the first kept row, its answer)
EXPECTED = {
    "numinamath": (2, {"bad_row:problem": 1, "bad_row:solution": 1}, "AI-MO/NuminaMath-CoT/olympiads", "9"),
    "math": (2, {"bad_row:subject": 1}, "qfq/openaimath/Number Theory", "3"),
    "olympic_arena": (2, {"filtered:not_english": 1, "filtered:not_text_only": 1}, "GAIR/OlympicArena/Math", None),
    "omni_math": (1, {"bad_row:problem": 1}, "KbsdJames/Omni-MATH", "1, 3"),
    "agieval": (2, {"bad_row:options": 1}, "baber/agieval/sat_math", "B"),
    "xword": (1, {"bad_row:input": 1}, "0xharib/xword1", "OCEAN"),
    "olympiadbench": (2, {"filtered:has_image": 1}, "Hothan/OlympiadBench/Open-ended/Math", "12"),
    "aime": (2, {"filtered:aime_after_2021": 1, "bad_row:Year": 1}, "qq8933/AIME_1983_2024", "60"),
    "theoremqa": (1, {"filtered:has_picture": 1}, "TIGER-Lab/TheoremQA/integer", "11760"),
    "usaco": (1, {"bad_row:question": 1}, "codegenning/usacobench_formatted", None),
    "jeebench": (2, {}, "daman1209arora/jeebench/chem", "BD"),
    "gpqa": (1, {"filtered:gpqa_diamond": 1, "bad_row:Correct Answer": 1}, "Idavidrein/gpqa",
             "2-methylprop-1-ene"),
    "scieval": (2, {"filtered:no_answer": 1}, "OpenDFM/SciEval/chemistry/multiple-choice/SocraticQA", "C"),
    "s1_prob": (2, {}, "simplescaling/s1-prob", None),
    "livecodebench": (1, {"filtered:not_hard": 1}, "LiveCodeBench/release_v1", None),
    "s1_teasers": (2, {}, "qfq/quant", "Take any 10 coins as one pile and flip them all."),
}


def test_registry_has_the_16_s1_sources_with_hub_ids_and_no_pinned_revision():
    assert len(REGISTRY) == 16
    assert REGISTRY["numinamath"].hub_id == "AI-MO/NuminaMath-CoT"
    assert REGISTRY["aime"].hub_id == "qq8933/AIME_1983_2024"
    assert all("/" in s.hub_id for s in REGISTRY.values())
    # no SHA can be looked up offline: pins come from the recipe, and the manifest says which are unpinned
    assert all(s.revision is None for s in REGISTRY.values())
    cfgs = [SourceConfig(name="aime", revision="abc123"), SourceConfig(name="math")]
    assert pinned_revisions(cfgs) == {"aime": "abc123", "math": None}


def test_every_registered_source_has_a_fixture():
    assert {p.stem for p in FIXTURES.glob("*.jsonl")} - {"common"} == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_normaliser_on_fixture(name):
    kept_n, drops, source, answer = EXPECTED[name]
    rows, log = collect([SourceConfig(name=name, path=str(FIXTURES / f"{name}.jsonl"))])
    assert len(rows) == kept_n
    assert dict(log.counts()) == drops
    assert len(rows) + len(log) == sum(1 for _ in open(FIXTURES / f"{name}.jsonl"))
    for row in rows:
        assert validate_row(row) == []
        assert row["id"].startswith(f"{name}/")
        json.dumps(row)  # metadata must be JSON
    assert rows[0]["source"] == source
    assert rows[0]["answer"] == answer


def test_normalisers_keep_unused_fields_as_metadata_and_build_questions_like_s1():
    rows, _ = collect([SourceConfig(name="agieval", path=str(FIXTURES / "agieval.jsonl"))])
    assert rows[0]["question"].endswith("(A)3\n(B)5\n(C)7\n(D)15")
    assert rows[1]["question"].startswith("The author argues") and rows[1]["cot_type"] == "math"
    rows, _ = collect([SourceConfig(name="xword", path=str(FIXTURES / "xword.jsonl"))])
    assert rows[0]["question"].endswith("\n\nLarge body of salt water (5)") and rows[0]["cot_type"] == "crossword"
    rows, _ = collect([SourceConfig(name="olympiadbench", path=str(FIXTURES / "olympiadbench.jsonl"))])
    assert rows[1]["question"].startswith("A block slides")  # context prepended
    assert rows[1]["metadata"]["subfield"] == "Mechanics"
    rows, _ = collect([SourceConfig(name="scieval", path=str(FIXTURES / "scieval.jsonl"))])
    assert "Answer:" not in rows[0]["question"]
    assert rows[1]["question"].endswith("What is the optimal solvent?")
    rows, _ = collect([SourceConfig(name="livecodebench", path=str(FIXTURES / "livecodebench.jsonl"))])
    assert "private_test_cases" not in rows[0]["metadata"] and rows[0]["cot_type"] == "coding"
    rows, _ = collect([SourceConfig(name="jeebench", path=str(FIXTURES / "jeebench.jsonl"))])
    assert [r["cot_type"] for r in rows] == ["science", "math"]


def test_parquet_source_reads_like_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    recs = [json.loads(line) for line in open(FIXTURES / "math.jsonl")]
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "math.parquet")
    from_parquet, log_p = collect([SourceConfig(name="math", path=str(tmp_path / "math.parquet"))])
    from_jsonl, log_j = collect([SourceConfig(name="math", path=str(FIXTURES / "math.jsonl"))])
    assert [r["question"] for r in from_parquet] == [r["question"] for r in from_jsonl]
    assert dict(log_p.counts()) == dict(log_j.counts())


def test_common_shape_local_file_keeps_given_ids_and_later_fields():
    rows, log = collect([SourceConfig(path=str(FIXTURES / "common.jsonl"), source="mine")])
    assert [r["id"] for r in rows] == ["mine-1", "mine/1"]
    assert rows[1]["answer"] == "4" and rows[1]["domain"] == "arithmetic" and rows[1]["source"] == "mine"
    assert rows[0]["metadata"] == {"origin": "hand"}
    assert dict(log.counts()) == {"bad_row:question": 1}


def test_synth_source_gives_rows_with_teacher_traces_and_domains():
    rows, log = collect([SourceConfig(synth="add_chain,gcd", n=5, seed=3)])
    assert len(rows) == 10 and len(log) == 0
    assert {r["domain"] for r in rows} == {"arithmetic", "number_theory"}
    assert all(r["thinking"] and r["attempt"] and validate_row(r) == [] for r in rows)
    again, _ = collect([SourceConfig(synth="add_chain,gcd", n=5, seed=3)])
    assert again == rows


def test_duplicate_ids_across_sources_are_counted_drops():
    cfg = SourceConfig(path=str(FIXTURES / "common.jsonl"), source="mine")
    rows, log = collect([cfg, cfg])
    assert len(rows) == 2 and log.counts()["duplicate_id"] == 2


def test_bad_json_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "aime.jsonl"
    path.write_text('{"Year": 1990, "Question": "q", "Answer": "1"}\n{not json\n')
    with pytest.raises(ValueError, match=r"aime.jsonl:2"):
        collect([SourceConfig(name="aime", path=str(path))])


@pytest.mark.parametrize("bad", [{}, {"name": "nope"}, {"path": "x.jsonl"}, {"synth": "gcd", "name": "aime"},
                                 {"name": "aime", "n": 0}, {"name": "aime", "bogus": 1}])
def test_bad_source_configs_raise_config_error(bad):
    with pytest.raises(ConfigError):
        SourceConfig.from_dict(bad)


def test_hub_loading_passes_the_revision_to_load_dataset(monkeypatch):
    # the real code path, with datasets.load_dataset replaced (no network in tests)
    import datasets

    calls = []

    def fake_load(hub_id, config, split, revision, **kw):
        calls.append((hub_id, config, split, revision, kw))
        return [{"Year": 1999, "Question": "q?", "Answer": "7", "ID": "1999-1"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    recs = list(hub_records(REGISTRY["aime"], revision="deadbeef"))
    assert calls == [("qq8933/AIME_1983_2024", None, "train", "deadbeef", {})]
    assert recs[0][:3] == (None, "train", 0)
    calls.clear()
    list(hub_records(REGISTRY["livecodebench"], revision="r1"))
    assert calls[0][1] is None and calls[0][4] == {"version_tag": "release_v1"}
