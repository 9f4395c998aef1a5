"""`vllm serve` (vLLM's OpenAI server) on 127.0.0.1 in a subprocess, for the tests that talk to it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

PROCESSOR = ("--logits-processors", "s1kit.backends.vllm:BudgetForcingLogitsProcessor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def vllm_server(model_dir: Path, log_path: Path, context: int, *extra: str) -> Iterator[str]:
    """Start the server (about a minute on CPU), wait for /health, yield its URL, stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--port", str(port),
           "--host", "127.0.0.1", "--dtype", "float32", "--enforce-eager", "--max-model-len", str(context), *extra]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
