"""Serving throughput and latency: `s1kit serve` with 1, 8 and 32 concurrent clients.

    python bench/serve.py                          # ~2 minutes on 2 cores
    python bench/serve.py --clients 1,8,32 --requests-per-client 8 --quick

The server runs in a subprocess (``python -m s1kit.serve.app``, 127.0.0.1, max_num_seqs 32) on
the demo model (a 2-layer, hidden-64 random Qwen2 with a character tokenizer, fp32 on CPU, stop-
prone so that budget forcing has work to do). Clients are asyncio tasks in this process, each
sending its requests one after the other over httpx: a chat request with ``max_tokens`` 96,
``max_thinking_tokens`` 64, ``num_ignore`` 1 and ``max_answer_tokens`` 16, greedy. Throughput
is completion tokens (usage) per second of wall time; latency is per request. Batching works
when 32 clients get far more than 1 client's throughput (target: >= 4x): every request shares
the engine's forward passes. The server uses one torch thread by default (``--num-threads``): on a
small, shared CPU a tiny model is several times faster single-threaded. A vLLM row is added only when vllm is importable (a plain
completion workload of the same length against ``vllm serve`` on the same model folder).
Results: a Markdown table on stdout and bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVED = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, log_path: Path, timeout: float = 300.0) -> subprocess.Popen:
    import httpx

    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); see {log_path}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server did not start in {timeout} s; see {log_path}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def request_body(i: int, plain: bool) -> tuple[str, dict]:
    question = f"Question {i}: compute {i} * {i + 7} and check it."
    if plain:  # vLLM has no budget fields: the same length of plain completion
        return "/v1/completions", {"model": SERVED, "prompt": question, "max_tokens": 96, "temperature": 0}
    return "/v1/chat/completions", {"model": SERVED, "messages": [{"role": "user", "content": question}],
                                    "max_tokens": 96, "max_thinking_tokens": 64, "num_ignore": 1,
                                    "max_answer_tokens": 16, "temperature": 0}


async def run_clients(url: str, clients: int, per_client: int, plain: bool = False) -> dict:
    import httpx

    latencies: list[float] = []
    tokens = 0
    failures = 0

    async def client_task(c: int, http: httpx.AsyncClient) -> None:
        nonlocal tokens, failures
        for k in range(per_client):
            path, body = request_body(c * 1000 + k, plain)
            t0 = time.perf_counter()
            resp = await http.post(path, json=body)
            dt = time.perf_counter() - t0
            if resp.status_code != 200:
                failures += 1
                continue
            latencies.append(dt)
            tokens += resp.json()["usage"]["completion_tokens"]

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_task(c, http) for c in range(clients)))
        wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(latencies), "failures": failures,
            "completion_tokens": tokens, "wall_s": round(wall, 3),
            "throughput_tok_s": round(tokens / wall, 1) if wall else 0.0,
            "p50_latency_s": round(percentile(latencies, 0.5), 3),
            "p99_latency_s": round(percentile(latencies, 0.99), 3),
            "mean_latency_s": round(statistics.fmean(latencies), 3) if latencies else None}


def bench_server(name: str, cmd: list[str], url: str, clients: list[int], per_client: int, plain: bool,
                 log_path: Path) -> list[dict]:
    proc = start(cmd, url, log_path)
    rows = []
    try:
        asyncio.run(run_clients(url, 2, 2, plain))  # warm-up
        for n in clients:
            row = asyncio.run(run_clients(url, n, per_client, plain))
            row["server"] = name
            rows.append(row)
            print(f"  {name}: {n:>3} clients  {row['throughput_tok_s']:>8.1f} tok/s  p50 {row['p50_latency_s']:.3f} s"
                  f"  p99 {row['p99_latency_s']:.3f} s", flush=True)
    finally:
        stop(proc)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--requests-per-client", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="2 requests per client")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="torch threads of the server (1: a tiny model is fastest single-threaded)")
    parser.add_argument("--model-dir", default=str(ROOT / "runs/bench-serve/model"))
    parser.add_argument("--output", default=str(ROOT / "bench/results/serve.json"))
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    per_client = 2 if args.quick else args.requests_per_client

    from s1kit.demo import build_demo_model

    model_dir = build_demo_model(Path(args.model_dir))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "s1kit.serve.app", "--log-level", "WARNING", "--model", str(model_dir),
           "--served-model-name", SERVED, "--port", str(port), "--max-num-seqs", "32", "--max-queue", "512",
           "--device", "cpu", "--num-threads", str(args.num_threads)]
    print(f"s1kit serve on {url} (model {model_dir})", flush=True)
    rows = bench_server("s1kit", cmd, url, clients, per_client, False, out.with_suffix(".server.log"))

    vllm_note = "vllm is not importable in this environment: no vLLM comparison row"
    if importlib.util.find_spec("vllm") is not None:  # pragma: no cover - not installed in the dev venv
        vport = free_port()
        vurl = f"http://127.0.0.1:{vport}"
        vcmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(vport), "--max-num-seqs", "32"]
        try:
            rows += bench_server("vllm (plain completions)", vcmd, vurl, clients, per_client, True,
                                 out.with_suffix(".vllm.log"))
            vllm_note = "vllm row: plain completions of max_tokens 96 (vLLM has no budget fields)"
        except Exception as err:  # noqa: BLE001 - report, do not fail the s1kit rows
            vllm_note = f"vllm is importable but its server failed: {err}"
    print(vllm_note)

    target = report(rows, clients)
    import torch

    meta = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(), "model": "demo (Qwen2 2 layers, hidden 64, char tokenizer)",
            "workload": request_body(0, False)[1], "requests_per_client": per_client, "max_num_seqs": 32,
            "server_torch_threads": args.num_threads,
            "vllm": vllm_note, "target_32_clients_ge_4x_one_client": target}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


def report(rows: list[dict], clients: list[int]) -> bool | None:
    """Print the table and the 32-client target; returns whether the target was met (None: not run)."""
    base = next((r for r in rows if r["server"] == "s1kit" and r["clients"] == 1), None)
    for r in rows:
        r["speedup_vs_1_client"] = round(r["throughput_tok_s"] / base["throughput_tok_s"], 2) if base else None
    table = ["| server | clients | requests | completion tokens | throughput (tok/s) | p50 latency (s) | "
             "p99 latency (s) | vs 1 client |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['completion_tokens']} | "
                     f"{r['throughput_tok_s']} | {r['p50_latency_s']} | {r['p99_latency_s']} | "
                     f"{r['speedup_vs_1_client']}x |")
    print("\n" + "\n".join(table))
    top = next((r for r in rows if r["server"] == "s1kit" and r["clients"] == max(clients)), None)
    target = None
    if base and top and max(clients) >= 32:
        target = top["throughput_tok_s"] >= 4 * base["throughput_tok_s"]
        print(f"\nthroughput with {top['clients']} clients = {top['speedup_vs_1_client']}x one client "
              f"(target >= 4x: {'met' if target else 'NOT met'})")
    return target


if __name__ == "__main__":
    main()
