"""Every registered backend from the command line: `s1kit generate` / `s1kit eval` with --backend
reference and --backend openai (against a real `s1kit serve` on 127.0.0.1) give the hf rows."""

from __future__ import annotations

import json

import pytest

from s1kit.cli import main
from s1kit.demo import build_demo_model

KEYS = ("id", "thinking", "answer_text", "text", "thinking_tokens", "forced_tokens", "answer_tokens",
        "waits_injected", "forced_end", "finish_reason")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_demo_model(tmp_path_factory.mktemp("demo") / "model")


@pytest.fixture(scope="module")
def server(model_dir):
    for extra in ("fastapi", "uvicorn", "httpx"):
        pytest.importorskip(extra)
    from s1kit.backends.hf import HFBackend

    from ..serve.conftest import SERVED, ServerThread, serve_config

    with ServerThread(serve_config(model_dir), HFBackend.from_pretrained(str(model_dir), device="cpu")) as srv:
        yield srv.url, SERVED


def generate(model_dir, out, *extra):
    assert main(["--log-level", "ERROR", "generate", "--model", str(model_dir), "--prompt", "one,two,three",
                 "--output", str(out), "--chat-template", "chatml", "--max-thinking-tokens", "24",
                 "--num-ignore", "1", "--max-answer-tokens", "6", "--progress", "false", *extra]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return sorted(({k: r[k] for k in KEYS} for r in rows), key=lambda r: r["id"])


def test_generate_with_reference_and_openai_equals_hf(model_dir, server, tmp_path):
    url, name = server
    want = generate(model_dir, tmp_path / "hf.jsonl")
    assert generate(model_dir, tmp_path / "ref.jsonl", "--backend", "reference") == want
    got = generate(name, tmp_path / "oa.jsonl", "--backend", "openai", "--base-url", url,
                   "--tokenizer", str(model_dir))
    assert got == want
    manifest = json.loads((tmp_path / "oa.jsonl.manifest.json").read_text())
    assert manifest["backend"]["name"] == "openai" and manifest["backend"]["exact_ids"] is True
    assert manifest["backend"]["inexact_rounds"] == 0 and manifest["backend"]["rounds"] >= 3
    # resumable like the others: a rerun adds nothing
    assert generate(name, tmp_path / "oa.jsonl", "--backend", "openai", "--base-url", url,
                    "--tokenizer", str(model_dir)) == want


def test_eval_with_openai_equals_hf(model_dir, server, tmp_path):
    url, name = server

    def run(out, model, *extra):
        assert main(["--log-level", "ERROR", "eval", "--model", model, "--benchmarks", "synth:gcd", "--synth-n", "2",
                     "--budgets", "8,16", "--waits", "0,1", "--max-answer-tokens", "4", "--chat-template", "chatml",
                     "--output-dir", str(out), "--progress", "false", *extra]) == 0
        rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        return sorted(((r["id"], r["budget"], r["waits"], r["thinking_tokens"], r["answer_text"], r["correct"])
                       for r in rows)), json.loads((out / "results.json").read_text())

    want, _ = run(tmp_path / "hf", str(model_dir))
    got, results = run(tmp_path / "oa", name, "--backend", "openai", "--base-url", url, "--tokenizer", str(model_dir))
    assert got == want and len(got) == 2 * 2 * 2
    assert results["backend"]["name"] == "openai" and results["backend"]["exact_ids"] is True


def test_openai_flags_are_checked(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "--model", "m", "--prompt", "hi", "--backend", "openai", "--tokenizer", "t"])
    assert info.value.code == 2 and "base_url" in capsys.readouterr().err
