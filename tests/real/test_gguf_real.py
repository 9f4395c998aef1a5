"""The real SmolLM2-135M-Instruct GGUF file: converted once, then `s1kit generate` on the .gguf path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from s1kit.gguf import smollm2_gguf

pytestmark = pytest.mark.real


def test_converted_folder_is_a_plain_fp32_llama(smollm2_dir):
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama"
    assert "quantization_config" not in cfg
    assert (smollm2_dir / "tokenizer.json").exists() or (smollm2_dir / "tokenizer_config.json").exists()


def test_generate_on_the_gguf_path_with_a_cap_and_a_wait(smollm2_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "s1kit.cli", "generate", "--model", str(smollm2_gguf()),
           "--prompt", "How many r in raspberry?", "--max-thinking-tokens", "40", "--min-thinking-tokens", "30",
           "--num-ignore", "1", "--max-answer-tokens", "20", "--output", str(out)]
    env = {**os.environ, "S1KIT_CACHE_DIR": str(smollm2_dir.parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "converting" not in proc.stderr  # the cached folder is reused
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["waits_injected"] >= 1
    assert row["thinking_tokens"] <= 40
    assert row["forced_end"] is True
    assert "<|im_start|>answer" in row["text"]
    assert row["prompt"].startswith("<|im_start|>system")  # the model's own ChatML template
