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
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from s1kit.config import (BACKENDS, BackendGroup, ModelGroup, PromptGroup, RunGroup,  # noqa: F401 (BACKENDS re-exported)
                          check_groups, check_input_file, check_model_path, check_output_file, check_tokenizer_path)
from s1kit.forcing import BudgetPolicy, PromptTooLong, SequenceResult
from s1kit.forcing.validation import ConfigError, check_int
from s1kit.io import JsonlAppender, JsonlScan, scan_jsonl, write_json_atomic
from s1kit.stagecache import check_resume, model_identity, record_settings, stage_settings

log = logging.getLogger(__name__)
PROMPT_FIELDS = ("prompt", "question", "problem")


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class GenerateConfig(RunGroup, PromptGroup, BackendGroup, ModelGroup):
    """Where prompts come from, which model and backend (the shared groups of s1kit.config), and
    where rows go."""

    input: str | None = field(default=None, metadata=_doc("JSONL of prompts (fields: id, prompt|question|problem)."))
    prompt: tuple[str, ...] = field(default=(), metadata=_doc("Prompts given on the command line (comma-separated)."))
    output: str = field(default="generations.jsonl", metadata=_doc("Output JSONL (appended; resumable)."))
    id_field: str = field(default="id", metadata=_doc("Input field holding the row id (line number if absent)."))
    prompt_field: str | None = field(default=None, metadata=_doc(
        "Input field holding the prompt; default: the first of prompt, question, problem."))
    num_samples: int = field(default=1, metadata=_doc("Samples per prompt (sampling needs temperature > 0)."))

    def __post_init__(self) -> None:
        check_groups(self)
        check_int("num_samples", self.num_samples, 1)
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
    with open(cfg.input, "rb") as fh:  # type: ignore[arg-type]
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield PromptRow(f"line-{lineno}", None, {}, skip=f"invalid UTF-8: byte {err.start}")
                continue
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


def _row_key(row: dict[str, Any]) -> tuple[str, int]:
    return str(row["id"]), int(row["sample"])


def load_done(path: Path) -> tuple[set[tuple[str, int]], JsonlScan]:
    """(id, sample) pairs already written, and the scan of the output (see :mod:`s1kit.io`:
    nothing is changed on disk until the caller repairs it)."""
    scan = scan_jsonl(path, check=_row_key)
    return {_row_key(r) for r in scan.rows}, scan


RowWriter = JsonlAppender  # one row per line, flushed and fsynced


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


def check_engine_args(cfg) -> None:
    """The backend fields of a stage config (kept for callers; see BackendGroup)."""
    cfg.check_backend_group()


BACKEND_FIELDS = ("model", "revision", "batch_size", "device", "dtype", "tensor_parallel_size", "engine_args",
                  "base_url", "tokenizer", "api_key_env")


def make_backend(cfg):
    """The stage's backend, by name through the registry (s1kit eval, curate and distill use it too:
    their configs carry the same backend fields)."""
    from s1kit.backends import accepted_args, create

    takes = accepted_args(cfg.backend)
    return create(cfg.backend, **{k: getattr(cfg, k, None) for k in BACKEND_FIELDS if k in takes})


def check_paths(cfg: GenerateConfig) -> None:
    """Every file and folder the run needs, checked before any model is loaded (ConfigError)."""
    if cfg.backend == "openai":  # the server holds the model; the tokenizer is local
        check_tokenizer_path("tokenizer", cfg.tokenizer or "")
    else:
        check_model_path("model", cfg.model)
    if cfg.input:
        check_input_file("input", cfg.input)
    check_output_file("output", cfg.output)


def open_output(out_path: Path, settings: dict[str, Any], field_name: str) -> tuple[set, JsonlScan, dict]:
    """Scan the output and check its settings record; reads only (a refusal changes nothing)."""
    done, scan = load_done(out_path)
    checked = check_resume(str(out_path) + ".settings.json", settings, bool(scan.rows or scan.bad or scan.torn),
                           field_name, str(out_path))
    return done, scan, checked


def run_generate(cfg: GenerateConfig, policy: BudgetPolicy, backend=None) -> dict[str, Any]:
    """Generate every pending (row, sample) and return the run's counts (also in the manifest)."""
    if cfg.num_samples > 1 and policy.temperature == 0:
        raise ConfigError("num_samples", cfg.num_samples, "1 with greedy decoding (set temperature > 0)")
    check_paths(cfg)
    started = time.time()
    out_path = Path(cfg.output)
    done, scan, settings = open_output(out_path, _row_settings(cfg, policy), "output")
    backend = backend or make_backend(cfg)
    record_settings(str(out_path) + ".settings.json", settings)
    quarantined = scan.quarantined()
    scan.repair()
    writer = RowWriter(out_path)
    try:
        counts, skip_reasons = _write_rows(cfg, policy, backend, done, writer)
    finally:
        writer.close()
    if counts["rows"] == 0:
        log.warning("%s holds no prompts: 0 rows to generate", cfg.input)
    manifest = _manifest(cfg, policy, counts, skip_reasons, time.time() - started)
    manifest["backend"] = {"name": cfg.backend, "exact_ids": bool(getattr(backend, "exact_ids", True)),
                           **backend.stats()}
    manifest["quarantined"] = quarantined
    write_json_atomic(str(out_path) + ".manifest.json", manifest)
    return manifest


def _write_rows(cfg: GenerateConfig, policy: BudgetPolicy, backend, done, writer) -> tuple[dict, dict]:
    """Write skipped rows at once and generate the rest; returns (counts, skip reasons)."""
    from s1kit.backends.base import Request
    from s1kit.formats import render_prompt

    counts = {"rows": 0, "already_done": 0, "generated": 0, "skipped": 0}
    skip_reasons: dict[str, int] = {}
    pending: list[tuple[PromptRow, int, str, Any]] = []
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
    return counts, skip_reasons


# Fields that choose which rows to make or how fast, not what a row holds (see s1kit.stagecache).
_NOT_ROW_SETTINGS = frozenset({"input", "prompt", "limit", "output", "num_samples", "batch_size",
                               "tensor_parallel_size", "engine_args", "device", "progress", "model", "revision",
                               "base_url", "api_key_env"})


def _row_settings(cfg: GenerateConfig, policy: BudgetPolicy) -> dict[str, Any]:
    """What decides a generated row's content: the model's identity, the policy, the prompt format."""
    return stage_settings(cfg, _NOT_ROW_SETTINGS, model=model_identity(cfg.model, cfg.revision),
                          policy=policy.to_dict())


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
