"""dtype auto on CPU: bf16 only where /proc/cpuinfo has amx_bf16 and the timed probe agrees."""

from __future__ import annotations

import pytest
import torch

from s1kit import hardware

EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16\n\nprocessor\t: 1\n"
XEON = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n"


@pytest.fixture
def cpu(tmp_path, monkeypatch):
    """Point the module at a fake /proc/cpuinfo and a fake probe; the per-process cache is cleared."""
    def use(text: str, gflops: dict | None = None):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(hardware, "CPUINFO", path)
        timed = []

        def probe(dtype, **_):
            timed.append(dtype)
            return gflops[str(dtype).split(".")[-1]]

        monkeypatch.setattr(hardware, "matmul_gflops", probe)
        hardware.cpu_dtype_report.cache_clear()
        return timed

    yield use
    hardware.cpu_dtype_report.cache_clear()


def test_no_amx_flag_is_fp32_without_timing(cpu):
    timed = cpu(EPYC)  # avx512_bf16 is not AMX: no tiles, bf16 GEMMs stay slow
    assert hardware.auto_cpu_dtype() is torch.float32
    assert timed == [] and hardware.cpu_dtype_report()["amx_bf16"] is False


def test_amx_and_a_fast_probe_is_bf16(cpu):
    timed = cpu(XEON, {"float32": 120.0, "bfloat16": 1350.0})
    assert hardware.auto_cpu_dtype() is torch.bfloat16
    assert hardware.cpu_dtype_report()["gflops"] == {"float32": 120.0, "bfloat16": 1350.0}
    hardware.auto_cpu_dtype()
    assert timed == [torch.float32, torch.bfloat16]  # probed once per process


def test_amx_flag_but_a_slow_probe_stays_fp32(cpu):
    cpu(XEON, {"float32": 120.0, "bfloat16": 130.0})
    assert hardware.auto_cpu_dtype() is torch.float32
    assert "1.08x" in hardware.cpu_dtype_report()["reason"]


def test_missing_cpuinfo_means_no_flags(tmp_path):
    assert hardware.cpu_flags(tmp_path / "absent") == frozenset()
    (tmp_path / "arm").write_text("processor : 0\nFeatures : fp asimd bf16\n")
    assert hardware.cpu_flags(tmp_path / "arm") == {"fp", "asimd", "bf16"} and not hardware.has_amx_bf16(tmp_path / "arm")


def test_the_probe_measures_a_real_matmul():
    fp32 = hardware.matmul_gflops(torch.float32, n=64, min_seconds=0.01, threads=1)
    assert 0.01 < fp32 < 1e5
