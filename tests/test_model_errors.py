"""A model argument that names no usable model is one line `s1kit: error: …`, exit 2 (issue 16)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("verb", ["generate", "serve"])
def test_a_folder_without_a_usable_model_is_one_line(tmp_path, verb):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')  # a config, no tokenizer, no weights
    extra = ["--prompt", "hi", "--output", str(tmp_path / "o.jsonl")] if verb == "generate" else ["--port", "0"]
    proc = subprocess.run([sys.executable, "-m", "s1kit.cli", verb, "--model", str(tmp_path), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("s1kit: error: model=")


def test_serve_checks_the_model_folder_before_loading(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "s1kit.cli", "serve", "--model", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
