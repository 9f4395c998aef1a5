"""Conformance on vLLM (`make test-vllm`, in .venv-vllm): vllm, vllm-multiround and openai -> `vllm serve`
(with s1kit's logits processor loaded, which leaves the openai backend's plain requests alone) give
the hf engine's greedy tokens and accounting for every case of tests/conformance/harness.py; seeded
sampling is compared where the backend is exact (hf, vllm)."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

from s1kit.backends import create  # noqa: E402
from s1kit.backends.hf import HFBackend  # noqa: E402
from s1kit.backends.vllm import VLLMBackend  # noqa: E402

from ..conformance.harness import CASE_IDS, CASES, QUESTIONS, check_case, check_seeded  # noqa: E402
from ..conftest import chat_prompt  # noqa: E402
from .server import PROCESSOR, vllm_server  # noqa: E402
from .test_vllm_backend import CONTEXT, model, model_dir  # noqa: E402,F401  (module fixtures)


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):  # noqa: F811
    """`vllm serve` on the tiny model (127.0.0.1, a subprocess; about a minute on CPU)."""
    pytest.importorskip("httpx")
    with vllm_server(model_dir, tmp_path_factory.mktemp("vllm-serve") / "server.log", CONTEXT, *PROCESSOR) as url:
        yield url


@pytest.fixture(scope="module")
def backends(model, model_dir, qwen_tokenizer, served):  # noqa: F811
    common = dict(dtype="float32", enforce_eager=True, gpu_memory_utilization=0.3, max_model_len=CONTEXT,
                  enable_prefix_caching=True, max_num_seqs=16)
    proc = VLLMBackend.from_pretrained(str(model_dir), **common)
    multi = VLLMBackend(proc.llm, mode="multiround")  # the same engine: plain LLM.generate rounds
    out = {"hf": HFBackend(model, qwen_tokenizer, batch_size=3, context_window=CONTEXT), "vllm": proc,
           "vllm-multiround": multi,
           "openai": create("openai", base_url=served, model=str(model_dir), tokenizer=str(model_dir))}
    yield out
    del proc.llm, multi.llm


@pytest.fixture(scope="module")
def prompts(qwen_tokenizer):
    return [chat_prompt(qwen_tokenizer, q) for q in QUESTIONS]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vllm_backends_agree(case, backends, prompts):
    policy = case.policy()
    cp = backends["hf"].compile(policy)
    chosen = dict(backends)
    if cp.thinking_stops.texts:  # the processor takes single-token thinking stops only (documented)
        chosen.pop("vllm")
    check_case(chosen, "hf", prompts, policy)
    # vLLM returns its token ids (return_token_ids) and takes id prompts: no round was re-encoded
    assert backends["openai"].stats() | {"rounds": 0, "retries": 0} == {
        "rounds": 0, "retries": 0, "inexact_rounds": 0, "text_prompt_rounds": 0, "exact_ids": True}


def test_vllm_processor_r1_continues_past_eos_inside_the_thinking(backends, prompts):
    """r1's sentinel (EOS, <|im_end|>) is an ordinary thinking token for the machine: prompt 0's
    thinking has it at its 4th id; vLLM stops there and the driver continues the run."""
    case = next(c for c in CASES if c.name == "r1")
    im_end = backends["hf"].tokenizer.convert_tokens_to_ids("<|im_end|>")
    got = check_case({"hf": backends["hf"], "vllm": backends["vllm"]}, "hf", prompts, case.policy())["results"]
    assert got[0]["ids"][3] == im_end and got[0]["thinking_tokens"] > 4


def test_seeded_sampling_agrees_where_exact(backends, prompts):
    assert check_seeded(backends, prompts) == 2  # hf and the vllm processor (per-sample generators)
