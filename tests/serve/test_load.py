"""200 concurrent requests from a second process: every one succeeds, batched through one engine."""

from __future__ import annotations

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)

import json
import subprocess
import sys
from pathlib import Path

import httpx

from .conftest import ServerThread, serve_config

ROOT = Path(__file__).resolve().parents[2]


def test_200_concurrent_requests_from_another_process(demo_model_dir, demo_backend):
    cfg = serve_config(demo_model_dir, max_num_seqs=32, max_queue=256)
    with ServerThread(cfg, demo_backend) as srv:
        out = subprocess.run([sys.executable, "-m", "tests.serve.load_client", srv.url, "200"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        print(summary)
        assert summary["ok"] == 200, summary
        assert summary["statuses"] == [200]
        assert httpx.get(srv.url + "/health").json()["status"] == "ok"
        assert srv.engine.finish_counts.total() >= 200 and srv.engine.crashes == 0
