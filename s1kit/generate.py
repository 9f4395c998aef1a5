"""The generate stage: budget-forced samples for a JSONL of prompts, resumable, one row per sample.

    s1kit generate --model PATH_OR_HUB_ID --input prompts.jsonl --output out.jsonl \
        --max-thinking-tokens 2048 --num-ignore 2

Every input row ends up in the output exactly once per sample: generated, or marked ``skipped``
with its reason (malformed JSON, empty prompt, prompt longer than the context). Rows are appended
and flushed as they finish; a rerun skips finished (id, sample) pairs, so a killed run resumes
without lost or duplicated rows. A manifest (``<output>.manifest.json``) records the config,
versions and counts.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from s1kit.config import guard_resume
from s1kit.forcing import BudgetPolicy, PromptTooLong, SequenceResult
from s1kit.forcing.validation import ConfigError, check_choice, check_int

log = logging.getLogger(__name__)
PROMPT_FIELDS = ("prompt", "question", "problem")


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class GenerateConfig:
    """Where prompts come from, which model and backend, and where rows go."""

    model: str = field(default="", metadata=_doc("Local model folder or Hub id."))
    revision: str | None = field(default=None, metadata=_doc("Hub revision (commit) to pin."))
    input: str | None = field(default=None, metadata=_doc("JSONL of prompts (fields: id, prompt|question|problem)."))
    prompt: tuple[str, ...] = field(default=(), metadata=_doc("Prompts given on the command line (comma-separated)."))
    output: str = field(default="generations.jsonl", metadata=_doc("Output JSONL (appended; resumable)."))
    id_field: str = field(default="id", metadata=_doc("Input field holding the row id (line number if absent)."))
    prompt_field: str | None = field(default=None, metadata=_doc(
        "Input field holding the prompt; default: the first of prompt, question, problem."))
    chat_template: str = field(default="auto", metadata=_doc(
        "auto (the tokenizer's template, ChatML if none), chatml, or none (raw prompts)."))
    system_prompt: str | None = field(default=None, metadata=_doc("System turn for chat templates."))
    num_samples: int = field(default=1, metadata=_doc("Samples per prompt (sampling needs temperature > 0)."))
    backend: str = field(default="hf", metadata=_doc(
        "hf (single pass, default), reference (s1 multi-round), openai (any OpenAI-compatible server: "
        "--base-url, --model = the served name, --tokenizer), vllm (budget forcing inside vLLM, extra: vllm) "
        "or vllm-multiround (s1's multi-round algorithm on vLLM with prefix caching)."))
    base_url: str | None = field(default=None, metadata=_doc(
        "openai backend: the server's root URL (http://host:8000 or .../v1)."))
    tokenizer: str | None = field(default=None, metadata=_doc(
        "openai backend: local tokenizer (folder or Hub id) of the served model; stops, forced strings and "
        "accounting use it."))
    api_key_env: str | None = field(default=None, metadata=_doc(
        "openai backend: environment variable holding the API key (never logged or stored)."))
    batch_size: int = field(default=8, metadata=_doc("Sequences decoded together (vllm: its max_num_seqs)."))
    tensor_parallel_size: int = field(default=1, metadata=_doc("vllm backends: GPUs per model. Range: >= 1."))
    engine_args: tuple[str, ...] = field(default=(), metadata=_doc(
        "vllm backends: more vllm.LLM arguments as key=value, values read as YAML "
        "(gpu_memory_utilization=0.9,max_model_len=32768)."))
    device: str | None = field(default=None, metadata=_doc("cpu, cuda, cuda:1 ... (default: cuda if present)."))
    dtype: str | None = field(default=None, metadata=_doc("float32, bfloat16 ... (default: fp32 on CPU, bf16 on GPU)."))
    limit: int | None = field(default=None, metadata=_doc("Only the first N input rows."))
    progress: bool = field(default=True, metadata=_doc("Show a progress bar."))

    def __post_init__(self) -> None:
        check_choice("chat_template", self.chat_template, ("auto", "chatml", "none"))
        check_choice("backend", self.backend, _backends())
        check_engine_args(self)
        check_int("num_samples", self.num_samples, 1)
        check_int("batch_size", self.batch_size, 1)
        if self.limit is not None:
            check_int("limit", self.limit, 1)
        if not self.model:
            raise ConfigError("model", self.model, "a local model folder or a Hub id")
        if bool(self.input) == bool(self.prompt):
            raise ConfigError("input", self.input, "exactly one of --input FILE or --prompt TEXT")


@dataclass
class PromptRow:
    id: str
    prompt: str | None
    row: dict[str, Any]
    skip: str | None = None


def read_prompts(cfg: GenerateConfig) -> Iterator[PromptRow]:
    """Input rows with their prompt, or the reason they cannot be generated."""
    if cfg.prompt:
        for i, text in enumerate(cfg.prompt):
            yield _prompt_row(str(i), text, {"prompt": text})
        return
    with open(cfg.input, encoding="utf-8") as fh:  # type: ignore[arg-type]
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield PromptRow(f"line-{lineno}", None, {}, skip=f"malformed JSON: {err.msg}")
                continue
            if not isinstance(row, dict):
                yield PromptRow(f"line-{lineno}", None, {}, skip="row is not a JSON object")
                continue
            rid = str(row.get(cfg.id_field, f"line-{lineno}"))
            fields = (cfg.prompt_field,) if cfg.prompt_field else PROMPT_FIELDS
            text = next((row[f] for f in fields if f in row), None)
            yield _prompt_row(rid, text, row)


def _prompt_row(rid: str, text: Any, row: dict[str, Any]) -> PromptRow:
    if not isinstance(text, str):
        return PromptRow(rid, None, row, skip="no prompt field")
    if not text.strip():
        return PromptRow(rid, None, row, skip="empty prompt")
    return PromptRow(rid, text, row)


def load_done(path: Path) -> set[tuple[str, int]]:
    """(id, sample) pairs already written; a torn last line from a crash is cut off."""
    if not path.exists():
        return set()
    done: set[tuple[str, int]] = set()
    good_bytes = 0
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                row = json.loads(raw)
                done.add((str(row["id"]), int(row["sample"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                break  # only a crash mid-write leaves a bad line, and only as the last one
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        log.warning("cutting a torn line off the end of %s", path)
        with open(path, "r+b") as fh:
            fh.truncate(good_bytes)
    return done


class RowWriter:
    """Appends one JSON row per line and flushes it to disk at once."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def result_row(p: PromptRow, sample: int, prompt_text: str, res: SequenceResult) -> dict[str, Any]:
    """The output row of one sample: the input's fields, then the generation's."""
    out = {k: v for k, v in p.row.items() if k not in ("id", "sample")}
    out.update(id=p.id, sample=sample, prompt=prompt_text, thinking=res.thinking_text,
               answer_text=res.answer_text, text=res.text, thinking_tokens=res.thinking_tokens,
               forced_tokens=res.forced_tokens, answer_tokens=res.answer_tokens,
               waits_injected=res.waits_injected, forced_end=res.forced_end, finish_reason=res.finish_reason)
    return out


def skipped_row(p: PromptRow, sample: int) -> dict[str, Any]:
    out = {k: v for k, v in p.row.items() if k not in ("id", "sample")}
    out.update(id=p.id, sample=sample, skipped=p.skip, finish_reason="skipped")
    return out


def _backends() -> tuple[str, ...]:
    from s1kit.backends import NAMES

    return NAMES


def check_engine_args(cfg) -> None:
    """The backend-specific fields of a stage config (GenerateConfig, EvalConfig): set only where used."""
    check_int("tensor_parallel_size", cfg.tensor_parallel_size, 1)
    vllm = cfg.backend.startswith("vllm")
    for item in cfg.engine_args:
        if "=" not in item or not vllm:
            raise ConfigError("engine_args", item, "key=value items, with backend vllm or vllm-multiround only")
    if not vllm and cfg.tensor_parallel_size != 1:
        raise ConfigError("tensor_parallel_size", cfg.tensor_parallel_size, "1 unless backend is vllm or vllm-multiround")
    if vllm and cfg.device is not None:
        raise ConfigError("device", cfg.device, "unset with the vllm backends (vLLM places the model: set "
                          "CUDA_VISIBLE_DEVICES and tensor_parallel_size)")
    remote = cfg.backend == "openai"
    for name in ("base_url", "tokenizer"):
        if remote and not getattr(cfg, name):
            raise ConfigError(name, getattr(cfg, name), f"set with backend openai (--{name.replace('_', '-')})")
    for name in ("base_url", "tokenizer", "api_key_env"):
        if not remote and getattr(cfg, name) is not None:
            raise ConfigError(name, getattr(cfg, name), "unset unless backend is openai")
    for name in ("device", "dtype", "revision"):
        if remote and getattr(cfg, name) is not None:
            raise ConfigError(name, getattr(cfg, name), "unset with backend openai (the server holds the model)")


BACKEND_FIELDS = ("model", "revision", "batch_size", "device", "dtype", "tensor_parallel_size", "engine_args",
                  "base_url", "tokenizer", "api_key_env")


def make_backend(cfg):
    """The stage's backend, by name through the registry (s1kit eval, curate and distill use it too:
    their configs carry the same backend fields)."""
    from s1kit.backends import accepted_args, create

    takes = accepted_args(cfg.backend)
    return create(cfg.backend, **{k: getattr(cfg, k, None) for k in BACKEND_FIELDS if k in takes})


def run_generate(cfg: GenerateConfig, policy: BudgetPolicy, backend=None) -> dict[str, Any]:
    """Generate every pending (row, sample) and return the run's counts (also in the manifest)."""
    from s1kit.backends.base import Request
    from s1kit.formats import render_prompt

    if cfg.num_samples > 1 and policy.temperature == 0:
        raise ConfigError("num_samples", cfg.num_samples, "1 with greedy decoding (set temperature > 0)")
    started = time.time()
    backend = backend or make_backend(cfg)
    out_path = Path(cfg.output)
    done = load_done(out_path)
    guard_resume(str(out_path) + ".settings.json", _row_settings(cfg, policy), bool(done), "output", cfg.output)
    writer = RowWriter(out_path)
    counts = {"rows": 0, "already_done": 0, "generated": 0, "skipped": 0}
    skip_reasons: dict[str, int] = {}
    pending: list[tuple[PromptRow, int, str, Any]] = []
    try:
        for p in _limited(read_prompts(cfg), cfg.limit):
            counts["rows"] += 1
            prompt_text = None if p.skip else render_prompt(backend.tokenizer, p.prompt, cfg.chat_template, cfg.system_prompt)
            for s in range(cfg.num_samples):
                if (p.id, s) in done:
                    counts["already_done"] += 1
                    continue
                if p.skip is None:
                    req = Request(backend.tokenizer.encode(prompt_text, add_special_tokens=False), policy, key=f"{p.id}#{s}")
                    too_long = _too_long(backend, req)
                    if too_long:
                        p = PromptRow(p.id, p.prompt, p.row, skip=f"prompt too long: {too_long}")
                if p.skip is not None:
                    writer.write(skipped_row(p, s))
                    counts["skipped"] += 1
                    reason = p.skip.split(":")[0]
                    skip_reasons[reason] = skip_reasons.get(reason, 0) + 1
                    log.warning("skipped %s: %s", p.id, p.skip)
                    continue
                pending.append((p, s, prompt_text, req))
        _generate_pending(backend, pending, writer, cfg.progress)
        counts["generated"] = len(pending)
    finally:
        writer.close()
    manifest = _manifest(cfg, policy, counts, skip_reasons, time.time() - started)
    manifest["backend"] = {"name": cfg.backend, "exact_ids": bool(getattr(backend, "exact_ids", True)),
                           **backend.stats()}
    Path(str(out_path) + ".manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


# Fields that choose which rows to make or how fast, not what a row holds (see config.guard_resume).
_NOT_ROW_SETTINGS = frozenset({"input", "prompt", "limit", "output", "num_samples", "batch_size",
                               "tensor_parallel_size", "engine_args", "device", "progress", "model", "revision",
                               "base_url", "api_key_env"})


def _row_settings(cfg: GenerateConfig, policy: BudgetPolicy) -> dict[str, Any]:
    """What decides a generated row's content: the model's identity, the policy, the prompt format."""
    from s1kit.config import model_identity, to_dict

    return {**{k: v for k, v in to_dict(cfg).items() if k not in _NOT_ROW_SETTINGS},
            "model": model_identity(cfg.model, cfg.revision), "policy": policy.to_dict()}


def _too_long(backend, req) -> str | None:
    """Why the prompt cannot fit the model's context, or None (checked before any decoding)."""
    try:
        backend.machine(req)
    except PromptTooLong as err:
        return str(err)
    return None


def _generate_pending(backend, pending, writer: RowWriter, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), desc="generate", unit="sample", disable=not progress)

    def on_result(j: int, res: SequenceResult) -> None:
        p, s, prompt_text, _ = pending[j]
        writer.write(result_row(p, s, prompt_text, res))
        bar.update(1)
        bar.set_postfix(think=res.thinking_tokens, waits=res.waits_injected)

    backend.generate([req for *_, req in pending], on_result=on_result)
    bar.close()


def _limited(rows: Iterable[PromptRow], limit: int | None) -> Iterator[PromptRow]:
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield row


def _manifest(cfg: GenerateConfig, policy: BudgetPolicy, counts, skip_reasons, seconds: float) -> dict[str, Any]:
    import torch
    import transformers

    import s1kit
    from s1kit.config import to_dict

    return {
        "stage": "generate", "config": to_dict(cfg), "policy": policy.to_dict(), "counts": counts,
        "skip_reasons": skip_reasons, "seconds": round(seconds, 3),
        "versions": {"s1kit": s1kit.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
    }
