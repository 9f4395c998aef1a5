"""A load generator run as a separate process: N concurrent requests, a JSON summary on stdout.

    python -m tests.serve.load_client http://127.0.0.1:PORT 200
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def one(client: httpx.AsyncClient, i: int) -> dict:
    body = {"model": "tiny", "max_tokens": 48, "max_answer_tokens": 8, "num_ignore": i % 3,
            "messages": [{"role": "user", "content": f"Question {i}: what is {i} * {i + 7}?"}]}
    stream = i % 4 == 0
    t0 = time.perf_counter()
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
        usage, done = None, False
        async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            status = resp.status_code
            async for line in resp.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    usage = json.loads(line[6:]).get("usage") or usage
        ok = status == 200 and done and usage is not None
    else:
        resp = await client.post("/v1/chat/completions", json=body)
        status = resp.status_code
        usage = resp.json().get("usage") if status == 200 else None
        ok = status == 200 and usage is not None
    return {"ok": ok, "status": status, "stream": stream, "seconds": time.perf_counter() - t0,
            "completion_tokens": (usage or {}).get("completion_tokens", 0)}


async def main(url: str, n: int) -> dict:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(300.0)) as client:
        t0 = time.perf_counter()
        rows = await asyncio.gather(*(one(client, i) for i in range(n)), return_exceptions=True)
        wall = time.perf_counter() - t0
    good = [r for r in rows if isinstance(r, dict)]
    errors = [repr(r) for r in rows if not isinstance(r, dict)]
    lat = sorted(r["seconds"] for r in good)
    return {"requests": n, "ok": sum(r["ok"] for r in good), "errors": errors[:5],
            "statuses": sorted({r["status"] for r in good}), "wall_s": round(wall, 3),
            "p50_s": round(lat[len(lat) // 2], 3) if lat else None, "max_s": round(lat[-1], 3) if lat else None,
            "completion_tokens": sum(r["completion_tokens"] for r in good)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
