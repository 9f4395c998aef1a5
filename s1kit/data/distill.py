"""Teacher distillation: a thinking trace and an attempt per question, cached, resumable, costed.

    DEEPSEEK_API_KEY=... s1kit distill --input questions.jsonl --output traces.jsonl \
        --base-url https://api.deepseek.com/v1 --model deepseek-reasoner --api-key-env DEEPSEEK_API_KEY \
        --concurrency 16 --price-input-per-1m 0.55 --price-output-per-1m 2.19
    s1kit distill --config recipes/curate-s1k.yaml --dry-run true    # requests and cost, nothing sent
    s1kit distill --input q.jsonl --output t.jsonl --teacher local --model ./my-model   # s1kit's own backend

Teachers: any OpenAI-compatible ``/chat/completions`` endpoint (DeepSeek, Gemini's compatible
endpoint, vLLM, SGLang, ``s1kit serve``), or a local model through :mod:`s1kit.generate`. The trace
is ``message.reasoning_content`` (DeepSeek-R1, s1kit; ``reasoning`` on some vLLM versions) or a
``<think>...</think>`` block at the start of ``content``; the attempt is the rest of ``content``.

Cache: every finished (question, sample) is appended to ``<output>.cache.jsonl`` (flushed and
fsynced) under ``key = sha256(question, model, decoding params, prompt template, sample)``. A
killed run loses at most the requests in flight; a rerun cuts a torn last line off, skips cached
keys and then writes ``<output>`` afresh (atomically) from the input rows and the cache, so the
output has exactly one row per (question, sample). Changing the model, the decoding parameters
or the template changes the key, so nothing stale is reused.

Failures: 429, 5xx, timeouts and connection errors are retried with exponential backoff and
jitter (``Retry-After`` honoured, capped); other 4xx and malformed responses (bad JSON, no
choices, no trace, empty attempt) are drops with reasons in the manifest, never cached, so a
rerun asks again. The API key is read from the environment variable named by ``api_key_env``
and never logged or written. ``<output>.manifest.json`` holds the config (without the key), the
token and cost ledger (prices per 1M tokens from the config) and the drops.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from s1kit.data.rows import Row, iter_jsonl
from s1kit.data.teacher_reply import Malformed, parse_chat_response, split_thinking, usage_of  # noqa: F401
from s1kit.forcing.validation import ConfigError, check_choice, check_float, check_int
from s1kit.http import Retry, RetriesExhausted, apost_json, async_client
from s1kit.io import JsonlAppender, scan_jsonl, write_json_atomic, write_jsonl_atomic

logger = logging.getLogger(__name__)



def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DistillConfig:
    """Where questions come from, which teacher, how to call it and what it costs."""

    input: str = field(default="", metadata=_doc("JSONL of question rows (id, question, ...)."))
    output: str = field(default="distilled.jsonl", metadata=_doc(
        "Output JSONL: the input rows with thinking, attempt (cache: <output>.cache.jsonl)."))
    teacher: str = field(default="openai", metadata=_doc("openai (any OpenAI-compatible server) or local."))
    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata=_doc(
        "OpenAI-compatible API root (…/v1); /chat/completions is appended."))
    model: str = field(default="", metadata=_doc("Teacher model name (openai) or model folder / Hub id (local)."))
    api_key_env: str | None = field(default="OPENAI_API_KEY", metadata=_doc(
        "Environment variable holding the API key (never logged); none: no key."))
    prompt_template: str = field(default="{question}", metadata=_doc("User turn; {question} is replaced."))
    system_prompt: str | None = field(default=None, metadata=_doc("Optional system turn."))
    temperature: float = field(default=0.0, metadata=_doc("Sampling temperature."))
    top_p: float = field(default=1.0, metadata=_doc("Nucleus sampling."))
    max_tokens: int = field(default=32768, metadata=_doc("Completion token limit per request."))
    samples: int = field(default=1, metadata=_doc("Traces per question (k); ids get '#k' for k >= 1."))
    concurrency: int = field(default=8, metadata=_doc("Requests in flight at once."))
    max_retries: int = field(default=6, metadata=_doc("Retries of a 429/5xx/timeout before the row is dropped."))
    backoff_s: float = field(default=1.0, metadata=_doc("First retry delay; doubles each retry, with jitter."))
    backoff_max_s: float = field(default=60.0, metadata=_doc("Longest retry delay (also caps Retry-After)."))
    timeout_s: float = field(default=600.0, metadata=_doc("Per-request timeout in seconds."))
    price_input_per_1m: float = field(default=0.0, metadata=_doc("Price per 1M prompt tokens (ledger)."))
    price_output_per_1m: float = field(default=0.0, metadata=_doc("Price per 1M completion tokens (ledger)."))
    dry_run: bool = field(default=False, metadata=_doc("Only estimate requests, tokens and cost."))
    dry_run_output_tokens: int = field(default=8000, metadata=_doc("Completion tokens assumed per request."))
    chars_per_token: float = field(default=3.5, metadata=_doc("Prompt characters per token (dry-run estimate)."))
    question_field: str = field(default="question", metadata=_doc("Input field holding the question."))
    limit: int | None = field(default=None, metadata=_doc("Only the first N input rows."))
    progress: bool = field(default=True, metadata=_doc("Show a progress bar."))

    def __post_init__(self) -> None:
        check_choice("teacher", self.teacher, ("openai", "local"))
        if not self.input:
            raise ConfigError("input", self.input, "a JSONL file of question rows")
        if not self.model:
            raise ConfigError("model", self.model, "the teacher model name (or folder for teacher=local)")
        if "{question}" not in self.prompt_template:
            raise ConfigError("prompt_template", self.prompt_template, "a template containing {question}")
        check_float("temperature", self.temperature, 0.0, 2.0)
        check_float("top_p", self.top_p, 0.0, 1.0, lo_open=True)
        check_int("max_tokens", self.max_tokens, 1)
        check_int("samples", self.samples, 1, 64)
        check_int("concurrency", self.concurrency, 1, 1024)
        check_int("max_retries", self.max_retries, 0, 100)
        check_float("backoff_s", self.backoff_s, 0.0, 3600.0)
        check_float("backoff_max_s", self.backoff_max_s, 0.0, 3600.0)
        check_float("timeout_s", self.timeout_s, 0.0, 86400.0, lo_open=True)
        check_float("price_input_per_1m", self.price_input_per_1m, 0.0, 1e6)
        check_float("price_output_per_1m", self.price_output_per_1m, 0.0, 1e6)
        check_int("dry_run_output_tokens", self.dry_run_output_tokens, 0)
        check_float("chars_per_token", self.chars_per_token, 0.0, 100.0, lo_open=True)
        if self.limit is not None:
            check_int("limit", self.limit, 1)
        if self.samples > 1 and self.temperature == 0:
            raise ConfigError("samples", self.samples, "1 with greedy decoding (set temperature > 0)")

    def decoding(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


# ---------------------------------------------------------------------------------------------
# keys, cache, ledger
# ---------------------------------------------------------------------------------------------


# Fields that do not change the teacher's answer: where rows come from and go, how the server is
# reached, paced and paid, and the dry-run estimate. Every other field is part of the cache key.
NOT_ANSWER_FIELDS = ("input", "output", "base_url", "api_key_env", "samples", "concurrency", "max_retries",
                     "backoff_s", "backoff_max_s", "timeout_s", "price_input_per_1m", "price_output_per_1m",
                     "dry_run", "dry_run_output_tokens", "chars_per_token", "question_field", "limit", "progress")


def cache_key(question: str, cfg: DistillConfig, sample: int) -> str:
    """sha256 over the whole config minus :data:`NOT_ANSWER_FIELDS` (never the API key or URL),
    the question and the sample index (s1kit.stagecache)."""
    from s1kit.stagecache import settings_key, stage_settings

    return settings_key(stage_settings(cfg, NOT_ANSWER_FIELDS, question=question, sample=sample))


def cache_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".cache.jsonl")


def load_cache(path: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """key -> cached record, and the lines set aside (s1kit.io: a torn last line is cut, a lost
    final newline restored, a malformed line anywhere is quarantined and the later records kept)."""
    scan = scan_jsonl(path, check=lambda rec: str(rec["key"]))
    quarantined = scan.quarantined()
    scan.repair()
    records: dict[str, dict[str, Any]] = {}
    for rec in scan.rows:
        records.setdefault(rec["key"], rec)
    return records, quarantined


def CacheWriter(path: Path) -> JsonlAppender:
    """Appends one record per line, flushed and fsynced, so a kill loses at most what is in flight."""
    return JsonlAppender(path, sort_keys=True)


@dataclass
class Ledger:
    """Tokens and cost: new requests and cache hits counted apart."""

    requests: int = 0
    retries: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0

    def add(self, usage: Mapping[str, Any], cfg: DistillConfig) -> None:
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.reasoning_tokens += int(usage.get("reasoning_tokens") or 0)
        self.cost += request_cost(prompt, completion, cfg)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost"] = round(self.cost, 6)
        return out


def request_cost(prompt_tokens: int, completion_tokens: int, cfg: DistillConfig) -> float:
    return (prompt_tokens * cfg.price_input_per_1m + completion_tokens * cfg.price_output_per_1m) / 1e6


# ---------------------------------------------------------------------------------------------
# the work list
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    row_id: str
    sample: int
    question: str
    key: str


def read_questions(cfg: DistillConfig) -> tuple[list[Row], dict[str, int]]:
    """Input rows with a question, and counts of rows that cannot be asked (never silent)."""
    rows: list[Row] = []
    bad: dict[str, int] = {}
    try:
        records = list(iter_jsonl(cfg.input))
    except (ValueError, UnicodeDecodeError) as err:  # a bad line of the input is the user's to fix
        raise ConfigError("input", cfg.input, f"a JSONL file of question rows ({err})") from None
    for rec in records:
        if cfg.limit is not None and len(rows) >= cfg.limit:
            break
        q = rec.get(cfg.question_field) if isinstance(rec, dict) else None
        if not isinstance(q, str) or not q.strip() or "id" not in rec:
            reason = "no_question" if isinstance(rec, dict) and "id" in rec else "no_id_or_not_an_object"
            bad[reason] = bad.get(reason, 0) + 1
            logger.warning("distill: input row %r cannot be asked: %s", rec.get("id") if isinstance(rec, dict) else rec,
                           reason)
            continue
        rows.append(rec)
    return rows, bad


def make_jobs(rows: Iterable[Row], cfg: DistillConfig) -> list[Job]:
    jobs, seen = [], set()
    for row in rows:
        for s in range(cfg.samples):
            key = cache_key(row[cfg.question_field], cfg, s)
            if key not in seen:  # two rows with the same question share one request
                seen.add(key)
                jobs.append(Job(str(row["id"]), s, row[cfg.question_field], key))
    return jobs


def messages_for(question: str, cfg: DistillConfig) -> list[dict[str, str]]:
    user = cfg.prompt_template.replace("{question}", question)
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return system + [{"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------------
# the OpenAI-compatible client
# ---------------------------------------------------------------------------------------------


def api_key(cfg: DistillConfig) -> str | None:
    """The key from the named environment variable (None when unnamed or unset)."""
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        logger.warning("distill: $%s is not set; requests go out without an API key", cfg.api_key_env)
    return key or None


def retry_of(cfg: DistillConfig) -> Retry:
    return Retry(cfg.max_retries, cfg.backoff_s, cfg.backoff_max_s)


def payload_for(cfg: DistillConfig, question: str, sample: int) -> dict[str, Any]:
    payload = {"model": cfg.model, "messages": messages_for(question, cfg), **cfg.decoding()}
    if cfg.samples > 1:
        payload["seed"] = sample  # servers that honour seeds give reproducible samples
    return payload


async def ask_with_retries(client: Any, cfg: DistillConfig, job: Job, rng: random.Random,
                           ledger: Ledger) -> dict[str, Any]:
    """The job's record, or a drop record ``{"drop": reason}`` (other 4xx, malformed, retries out)."""
    def on_attempt() -> None:
        ledger.requests += 1

    def on_retry(attempt: int, reason: str, delay: float) -> None:
        ledger.retries += 1
        logger.info("distill: %s#%d got %s; retry %d in %.2fs", job.row_id, job.sample, reason, attempt + 1, delay)

    try:
        status, body = await apost_json(client, "/chat/completions", payload_for(cfg, job.question, job.sample),
                                        retry_of(cfg), rng, on_attempt=on_attempt, on_retry=on_retry)
    except RetriesExhausted as err:
        return {"drop": f"retries_exhausted:{err.reason}"}
    try:
        if status >= 400:
            raise Malformed(f"http_{status}")
        if body is None:
            raise Malformed("malformed:invalid_json")
        thinking, attempt, finish, usage = parse_chat_response(body)
    except Malformed as err:
        return {"drop": err.reason}
    return {"thinking": thinking, "attempt": attempt, "finish_reason": finish, "usage": usage}


async def run_api_jobs(jobs: list[Job], cfg: DistillConfig, writer: CacheWriter, ledger: Ledger,
                       drops: dict[str, list[str]]) -> None:
    """Ask every job with at most ``concurrency`` in flight; cache each success as it lands."""
    from tqdm.auto import tqdm

    key = api_key(cfg)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    semaphore = asyncio.Semaphore(cfg.concurrency)
    rng = random.Random()  # jitter only spreads retries; it never changes a result
    bar = tqdm(total=len(jobs), desc="distill", unit="req", disable=not cfg.progress)

    async with async_client(cfg.concurrency, cfg.timeout_s, cfg.base_url.rstrip("/"), headers) as client:
        async def one(job: Job) -> None:
            async with semaphore:
                rec = await ask_with_retries(client, cfg, job, rng, ledger)
            if "drop" in rec:
                drops.setdefault(rec["drop"], []).append(f"{job.row_id}#{job.sample}")
                logger.warning("distill: dropped %s#%d: %s", job.row_id, job.sample, rec["drop"])
            else:
                ledger.add(rec["usage"], cfg)
                writer.write({"key": job.key, "id": job.row_id, "sample": job.sample, "model": cfg.model, **rec})
            bar.update(1)

        await asyncio.gather(*(one(j) for j in jobs))
    bar.close()


# ---------------------------------------------------------------------------------------------
# the local teacher (s1kit's own backends)
# ---------------------------------------------------------------------------------------------


def run_local_jobs(jobs: list[Job], cfg: DistillConfig, writer: CacheWriter, ledger: Ledger,
                   drops: dict[str, list[str]], policy: Any = None, backend: Any = None) -> None:
    """Generate the jobs with :func:`s1kit.generate.run_generate` (resumable itself) and cache them."""
    from s1kit.forcing import BudgetPolicy
    from s1kit.generate import GenerateConfig, run_generate

    work = Path(cfg.output).with_name(Path(cfg.output).name + ".local")
    work.mkdir(parents=True, exist_ok=True)
    prompts = work / "prompts.jsonl"
    with open(prompts, "w", encoding="utf-8") as fh:
        for job in jobs:
            prompt = cfg.prompt_template.replace("{question}", job.question)
            fh.write(json.dumps({"id": job.key, "prompt": prompt}, ensure_ascii=False) + "\n")
    policy = policy or BudgetPolicy(max_thinking_tokens="auto", temperature=cfg.temperature, top_p=cfg.top_p)
    # one generations file per teacher setting: the job keys already tell settings apart, and
    # run_generate refuses to resume a file made under other settings
    setting = hashlib.sha256(json.dumps([cfg.model, cfg.system_prompt, policy.to_dict()], sort_keys=True,
                                        default=str).encode()).hexdigest()[:12]
    generations = work / f"generations-{setting}.jsonl"
    gen = GenerateConfig(model=cfg.model, input=str(prompts), output=str(generations),
                         system_prompt=cfg.system_prompt, progress=cfg.progress)
    run_generate(gen, policy, backend=backend)
    by_key = {job.key: job for job in jobs}
    for out in iter_jsonl(generations):
        job = by_key.get(str(out.get("id")))
        if job is None:
            continue
        ledger.requests += 1
        if out.get("skipped"):
            drops.setdefault(f"local_skipped:{out['skipped'].split(':')[0]}", []).append(f"{job.row_id}#{job.sample}")
            continue
        thinking, attempt = (out.get("thinking") or "").strip(), (out.get("answer_text") or "").strip()
        if not thinking or not attempt:
            drops.setdefault("empty_thinking" if not thinking else "empty_attempt", []).append(
                f"{job.row_id}#{job.sample}")
            continue
        usage = {"prompt_tokens": 0, "completion_tokens": int(out.get("thinking_tokens", 0)) +
                 int(out.get("answer_tokens", 0)), "reasoning_tokens": int(out.get("thinking_tokens", 0))}
        ledger.add(usage, cfg)
        writer.write({"key": job.key, "id": job.row_id, "sample": job.sample, "model": cfg.model,
                      "thinking": thinking, "attempt": attempt, "finish_reason": out.get("finish_reason"),
                      "usage": usage})


# ---------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------


def dry_run_estimate(jobs: list[Job], cfg: DistillConfig) -> dict[str, Any]:
    """Requests, tokens and cost of the pending jobs (prompt tokens estimated from characters)."""
    chars = sum(len(m["content"]) for j in jobs for m in messages_for(j.question, cfg))
    prompt_tokens = int(chars / cfg.chars_per_token)
    completion_tokens = len(jobs) * cfg.dry_run_output_tokens
    return {"requests": len(jobs), "prompt_tokens_est": prompt_tokens, "completion_tokens_est": completion_tokens,
            "cost_est": round(request_cost(prompt_tokens, completion_tokens, cfg), 4)}


def output_rows(rows: list[Row], cfg: DistillConfig, cache: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """Each input row once per sample, with the cached teacher fields (rows not cached are left out)."""
    out: list[Row] = []
    for row in rows:
        for s in range(cfg.samples):
            rec = cache.get(cache_key(row[cfg.question_field], cfg, s))
            if rec is None:
                continue
            meta = dict(row.get("metadata") or {})
            meta.update(teacher=cfg.model, finish_reason=rec.get("finish_reason"), teacher_usage=rec.get("usage", {}))
            new = {**row, "thinking": rec["thinking"], "attempt": rec["attempt"], "metadata": meta}
            if cfg.samples > 1:
                new.update(id=f"{row['id']}#{s}", sample=s)
                meta["question_id"] = row["id"]
            out.append(new)
    return out


def write_atomic(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    return write_jsonl_atomic(path, rows)


def public_config(cfg: DistillConfig) -> dict[str, Any]:
    """The config as the manifest records it: the key's variable name, never its value."""
    from s1kit.config import to_dict

    return to_dict(cfg)


def run_distill(cfg: DistillConfig, policy: Any = None, backend: Any = None) -> dict[str, Any]:
    """Distill every pending (question, sample), then write the output and its manifest."""
    from s1kit.config import check_input_file, check_output_file

    check_input_file("input", cfg.input)
    check_output_file("output", cfg.output)
    started = time.time()
    rows, bad_input = read_questions(cfg)
    jobs = make_jobs(rows, cfg)
    cpath = cache_path(cfg.output)
    cache, quarantined = load_cache(cpath)
    pending = [j for j in jobs if j.key not in cache]
    ledger = Ledger(cached=len(jobs) - len(pending))
    if cfg.dry_run:
        estimate = dry_run_estimate(pending, cfg)
        logger.info("distill dry run: %d of %d requests pending: %s", len(pending), len(jobs), estimate)
        return {"stage": "distill", "dry_run": True, "config": public_config(cfg), "jobs": len(jobs),
                "cached": ledger.cached, "estimate": estimate}
    drops: dict[str, list[str]] = {}
    writer = CacheWriter(cpath)
    try:
        if pending and cfg.teacher == "openai":
            asyncio.run(run_api_jobs(pending, cfg, writer, ledger, drops))
        elif pending:
            run_local_jobs(pending, cfg, writer, ledger, drops, policy=policy, backend=backend)
    finally:
        writer.close()
    cache, _ = load_cache(cpath)
    out_path = Path(cfg.output)
    written = write_atomic(out_path, output_rows(rows, cfg, cache))
    manifest = {
        "stage": "distill", "config": public_config(cfg), "cache": str(cpath),
        "counts": {"rows": len(rows), "jobs": len(jobs), "cached_before": ledger.cached, "asked": len(pending),
                   "written": written, "dropped": sum(map(len, drops.values())), "bad_input": bad_input},
        "drops": {reason: len(ids) for reason, ids in sorted(drops.items())},
        "drop_ids": {reason: ids[:20] for reason, ids in sorted(drops.items())},
        "ledger": ledger.to_dict(), "seconds": round(time.time() - started, 3), "quarantined": quarantined,
    }
    write_json_atomic(out_path.with_name(out_path.name + ".manifest.json"), manifest)
    for reason, ids in sorted(drops.items()):
        logger.warning("distill: %d dropped: %s (e.g. %s)", len(ids), reason, ids[:3])
    return manifest
