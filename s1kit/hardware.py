"""What the CPU computes fast: bf16 where it has AMX, fp32 elsewhere (``dtype: auto`` on CPU).

    auto_cpu_dtype()        # torch.bfloat16 on an AMX Xeon (Sapphire Rapids and later), else torch.float32
    cpu_dtype_report()      # {"amx_bf16": ..., "gflops": {"float32": ..., "bfloat16": ...}, "dtype": ...}

Without AMX, CPU bf16 matmuls are emulated and slow (an AVX2 EPYC: ~0.3 GFLOP/s against ~100 in
fp32); with AMX they run ~10x faster than fp32. The choice needs both signs: the ``amx_bf16`` flag
in ``/proc/cpuinfo`` (the kernel enabled the tiles) and a short timed matmul in which bf16 beats
fp32 by ``MIN_SPEEDUP`` (torch's kernels use them). Without the flag nothing is timed. The
result is computed once per process.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
MIN_SPEEDUP = 1.5  # bf16 must beat fp32 by this factor in the probe to be chosen
PROBE_N = 256      # probe matmul size (n x n @ n x n: 2 n^3 flops)


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The CPU feature flags (the first 'flags' line of /proc/cpuinfo; empty where there is none)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def has_amx_bf16(cpuinfo: Path | None = None) -> bool:
    return "amx_bf16" in cpu_flags(cpuinfo)


def matmul_gflops(dtype: Any, n: int = PROBE_N, min_seconds: float = 0.05, threads: int | None = None) -> float:
    """GFLOP/s of an n x n matmul in ``dtype`` on the CPU (best of repeats over ``min_seconds``)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)  # warm-up (kernel selection, first-touch)
        best, spent = float("inf"), 0.0
        while spent < min_seconds or best == float("inf"):
            t0 = time.perf_counter()
            torch.mm(a, b)
            dt = time.perf_counter() - t0
            best, spent = min(best, dt), spent + dt
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


@functools.lru_cache(maxsize=1)
def cpu_dtype_report() -> dict[str, Any]:
    """The evidence and the choice (computed once per process)."""
    import torch

    amx = has_amx_bf16()
    report: dict[str, Any] = {"amx_bf16": amx, "gflops": None, "dtype": "float32",
                              "reason": "no amx_bf16 flag in /proc/cpuinfo: bf16 matmuls are emulated"}
    if amx:
        fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
        report["gflops"] = {"float32": round(fp32, 1), "bfloat16": round(bf16, 1)}
        if bf16 >= MIN_SPEEDUP * fp32:
            report.update(dtype="bfloat16", reason=f"AMX: bf16 {bf16 / fp32:.1f}x fp32 in the probe")
        else:
            report["reason"] = f"amx_bf16 flag, but bf16 only {bf16 / fp32:.2f}x fp32 in the probe"
    log.info("CPU dtype auto: %s (%s)", report["dtype"], report["reason"])
    return report


def auto_cpu_dtype():
    """torch.bfloat16 where the CPU has AMX (flag and probe agree), torch.float32 elsewhere."""
    import torch

    return getattr(torch, cpu_dtype_report()["dtype"])
