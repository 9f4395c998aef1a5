"""Real clients, unchanged, against `s1kit serve` on 127.0.0.1 (the `clients` extra pins them).

lm-evaluation-harness's ``local-completions`` runs a ``generate_until`` and a ``loglikelihood``
(multiple-choice) task defined here from ../shared/data/benchmarks, with the served model's own
tokenizer from its folder (no Hub); LiteLLM's OpenAI-compatible provider sends chat requests
with s1kit's budget fields and reads the reasoning back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _extra in ("fastapi", "uvicorn", "httpx"):
    pytest.importorskip(_extra)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price list

from .conftest import SERVED

AMC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "benchmarks" / "amc23.jsonl"


@pytest.fixture()
def offline(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")


def _task(name: str, **kw) -> dict:
    return {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(AMC)}},
            "test_split": "test", "doc_to_text": "Question: {{question}}\nAnswer:", **kw}


def _lm_eval(server, model_dir, tasks, batch_size=2):
    lm_eval = pytest.importorskip("lm_eval")
    if not AMC.exists():
        pytest.skip(f"{AMC} is missing")
    args = (f"base_url={server.url}/v1/completions,model={SERVED},tokenizer={model_dir},"
            "tokenizer_backend=huggingface,tokenized_requests=True,max_length=1024,num_concurrent=2,max_retries=1")
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_defaults=False)  # only the tasks defined here: no index of the bundled ones
    return lm_eval.simple_evaluate(model="local-completions", model_args=args, tasks=tasks, limit=4,
                                   batch_size=batch_size, log_samples=True, bootstrap_iters=0, task_manager=manager)


def test_lm_eval_generate_until(demo_server, demo_model_dir, offline):
    task = _task("s1kit_amc_gen", output_type="generate_until", doc_to_target="{{answer}}",
                 generation_kwargs={"until": ["\n\n"], "max_gen_toks": 12, "do_sample": False},
                 metric_list=[{"metric": "exact_match"}])
    out = _lm_eval(demo_server, demo_model_dir, [task])
    samples = out["samples"]["s1kit_amc_gen"]
    assert len(samples) == 4 and "exact_match,none" in out["results"]["s1kit_amc_gen"]
    assert all(isinstance(s["resps"][0][0], str) for s in samples)


def test_lm_eval_loglikelihood(demo_server, demo_model_dir, demo_backend, offline):
    task = _task("s1kit_amc_mc", output_type="multiple_choice", doc_to_target=0,
                 doc_to_choice="{{[' ' ~ answer, ' 1000']}}", metric_list=[{"metric": "acc"}])
    out = _lm_eval(demo_server, demo_model_dir, [task])
    samples = out["samples"]["s1kit_amc_mc"]
    assert len(samples) == 4 and "acc,none" in out["results"]["s1kit_amc_mc"]
    # the harness's numbers are the model's: recompute one continuation's log-likelihood here
    import torch

    doc = samples[0]
    ctx, cont = doc["arguments"][0]
    codec = demo_backend.codec
    ids, cont_ids = codec.encode(ctx), codec.encode(ctx + cont)[len(codec.encode(ctx)):]
    every = ids + cont_ids
    with torch.no_grad():
        lp = torch.log_softmax(demo_backend.model(torch.tensor([every])).logits[0].float(), -1)
    want = sum(float(lp[len(ids) - 1 + k, t]) for k, t in enumerate(cont_ids))
    assert doc["resps"][0][0][0] == pytest.approx(want, abs=1e-3)


def test_litellm_openai_provider(demo_server):
    litellm = pytest.importorskip("litellm")
    resp = litellm.completion(model=f"openai/{SERVED}", api_base=demo_server.url + "/v1", api_key="unused",
                              messages=[{"role": "user", "content": "What is 2 + 2?"}], max_tokens=60,
                              extra_body={"max_thinking_tokens": 8}, num_retries=0, timeout=120)
    msg = resp.choices[0].message
    assert isinstance(msg.content, str) and msg.reasoning_content
    assert resp.usage.completion_tokens_details.reasoning_tokens == 8
    effort = litellm.completion(model=f"openai/{SERVED}", api_base=demo_server.url + "/v1", api_key="unused",
                                messages=[{"role": "user", "content": "hi"}], max_tokens=60,
                                reasoning_effort="none", num_retries=0, timeout=120)
    assert effort.usage.completion_tokens_details.reasoning_tokens == 0
    text = litellm.text_completion(model=f"openai/{SERVED}", api_base=demo_server.url + "/v1", api_key="unused",
                                   prompt="Once", max_tokens=6, num_retries=0, timeout=120)
    assert text.choices[0].text and text.usage.completion_tokens <= 6
