"""SFT data: read rows, render them with the chat template, tokenize with a loss mask, check and count.

    rows, read_counts = load_rows(cfg)
    examples, report = build_examples(rows, tokenizer, cfg, read_counts)   # report: counts, never silent

A sample is ``prompt + completion``: the prompt is the chat template's rendering of the (system,)
user turn with the generation prompt, exactly what ``s1kit generate`` feeds the model; the completion
is ``completion_format`` filled with the trace and the answer, plus the end-of-turn token. Labels
are -100 on the prompt, so loss falls only on the assistant turn. The prompt is tokenized alone
and inside the full text, and must be a token prefix of it (else the row is dropped and counted).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s1kit.config import ConfigError
from s1kit.formats import render_prompt
from s1kit.train.config import TrainConfig

log = logging.getLogger(__name__)
IGNORE = -100
PROBE = "\x00S1KIT-PROBE\x00"


class DataError(ValueError):
    """The data cannot be trained on (no usable rows, duplicate ids with duplicates='error')."""


@dataclass
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]
    prompt_len: int
    truncated: bool = False


@dataclass
class Report:
    """Counts of every check; ``dropped`` maps a reason to a count, ``dropped_ids`` to the first ids."""

    rows_read: int = 0
    kept: int = 0
    truncated: int = 0
    duplicate_ids: int = 0
    dropped: Counter = field(default_factory=Counter)
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    loss_tokens: int = 0

    def drop(self, reason: str, rid: str) -> None:
        self.dropped[reason] += 1
        ids = self.dropped_ids.setdefault(reason, [])
        if len(ids) < 5:
            ids.append(rid)

    def to_dict(self) -> dict[str, Any]:
        n = len(self.lengths)
        return {"rows_read": self.rows_read, "kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "dropped_total": sum(self.dropped.values()), "truncated": self.truncated,
                "duplicate_ids": self.duplicate_ids, "dropped_ids": self.dropped_ids,
                "tokens": {"total": sum(self.lengths), "loss": self.loss_tokens, "max": max(self.lengths, default=0),
                           "mean": round(sum(self.lengths) / n, 1) if n else 0.0}}


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def load_rows(cfg: TrainConfig) -> tuple[list[dict[str, Any]], Counter]:
    """Rows of the dataset (first ``limit``) and counts of lines that could not be read."""
    bad: Counter = Counter()
    if cfg.dataset.startswith("synth:"):
        from s1kit.train.tiny import SYNTH_KEYS, parse_spec, synth_rows

        kind, spec = parse_spec(cfg.dataset, SYNTH_KEYS, "dataset")
        if kind != "synth:arith":
            raise ConfigError("dataset", cfg.dataset, "'synth:arith[,n=N,seed=S,digits=D]'")
        rows = synth_rows(spec)
    else:
        rows = _read_path(Path(cfg.dataset), bad)
    return (rows[: cfg.limit] if cfg.limit else rows), bad


def _read_path(path: Path, bad: Counter) -> list[dict[str, Any]]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise ConfigError("dataset", str(path), "a folder that holds .parquet files")
        return [row for f in files for row in _read_parquet(f)]
    if not path.exists():
        raise ConfigError("dataset", str(path), "an existing JSONL or Parquet file")
    if path.suffix == ".parquet":
        return _read_parquet(path)
    if path.suffix in (".jsonl", ".json"):
        return _read_jsonl(path, bad)
    raise ConfigError("dataset", str(path), "a .jsonl, .json (one object per line) or .parquet file")


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _read_jsonl(path: Path, bad: Counter) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad["malformed_json"] += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad["not_an_object"] += 1
    return rows


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


class Renderer:
    """Turns a row into (prompt text, completion text) for one tokenizer and config."""

    def __init__(self, tokenizer: Any, cfg: TrainConfig):
        self.tokenizer, self.cfg = tokenizer, cfg
        if cfg.chat_template == "auto" and not getattr(tokenizer, "chat_template", None):
            log.warning("the tokenizer has no chat template: prompts use ChatML (as `s1kit generate` does)")
        self.end_of_turn = end_of_turn_token(tokenizer, cfg)
        pre, rest = cfg.completion_format.split("{thinking}")
        self._parts = (pre, *rest.split("{answer}"))

    def prompt(self, question: str) -> str:
        return render_prompt(self.tokenizer, question, self.cfg.chat_template, self.cfg.system_prompt)

    def completion(self, thinking: str, attempt: str) -> str:
        pre, mid, post = self._parts
        return pre + thinking + mid + self.answer(attempt) + post + self.end_of_turn

    def answer(self, attempt: str) -> str:
        marker = self.cfg.answer_prefix.strip()
        return attempt if marker and marker in attempt else self.cfg.answer_prefix + attempt


def end_of_turn_token(tokenizer: Any, cfg: TrainConfig) -> str:
    """The token that closes an assistant turn: configured, or read off the chat template."""
    token = cfg.end_of_turn
    if token is None:
        token = "<|im_end|>" if cfg.chat_template == "chatml" or not getattr(tokenizer, "chat_template", None) \
            else _template_end_of_turn(tokenizer)
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ConfigError("end_of_turn", token, f"a single token of this tokenizer (it encodes to {ids})")
    return token


def _template_end_of_turn(tokenizer: Any) -> str:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": PROBE}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    tail = text[text.rindex(PROBE) + len(PROBE):]
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for tid in tokenizer.encode(tail, add_special_tokens=False):
        if tid in special:
            return tokenizer.convert_ids_to_tokens(tid)
    raise ConfigError("end_of_turn", None, f"a token to set: the chat template ends a turn with {tail!r}, "
                      "which holds no special token")


# ---------------------------------------------------------------------------------------------
# checks + tokenization
# ---------------------------------------------------------------------------------------------


def build_examples(rows: list[dict[str, Any]], tokenizer: Any, cfg: TrainConfig,
                   read_counts: Counter | None = None) -> tuple[list[Example], dict[str, Any]]:
    """Check, render and tokenize rows; every dropped row is counted under its reason."""
    report = Report(rows_read=len(rows) + sum((read_counts or Counter()).values()))
    for reason, n in (read_counts or Counter()).items():
        report.dropped[reason] += n
    renderer = Renderer(tokenizer, cfg)
    pending = _check_rows(rows, cfg, renderer, report)
    examples = []
    for start in range(0, len(pending), 256):
        examples += _tokenize(pending[start:start + 256], tokenizer, cfg, report)
    report.kept = len(examples)
    out = report.to_dict()
    out["end_of_turn"] = renderer.end_of_turn
    if not examples:
        raise DataError(f"no trainable rows in {cfg.dataset}: {out}")
    return examples, out


def _check_rows(rows, cfg: TrainConfig, renderer: Renderer, report: Report) -> list[tuple[str, str, str]]:
    """(id, prompt, full text) for rows with all fields present and non-empty, first of each id."""
    seen: set[str] = set()
    out, pending = [], []
    for index, row in enumerate(rows):
        rid = str(row.get(cfg.id_field, index))
        if rid in seen:
            report.duplicate_ids += 1
            if cfg.duplicates == "error":
                raise DataError(f"duplicate id {rid!r} in {cfg.dataset} (duplicates='error')")
            if cfg.duplicates == "drop":
                report.drop("duplicate_id", rid)
                continue
        seen.add(rid)
        if cfg.data_format == "prompt_completion":
            texts = _prompt_completion(row, rid, report)
            if texts:
                out.append((rid, texts[0], texts[0] + texts[1]))
            continue
        fields = {}
        for key, name in (("question", cfg.question_field), ("thinking", cfg.thinking_field),
                          ("attempt", cfg.attempt_field)):
            fields[key] = _text(row.get(name))
            if fields[key] is None:
                report.drop(f"missing_{key}", rid)
                break
            if not fields[key]:
                report.drop(f"empty_{key}", rid)
                break
        else:
            pending.append((rid, fields))
    conditioned = _conditioned_questions(pending, renderer.tokenizer, cfg)
    for (rid, fields), question in zip(pending, conditioned):
        prompt = renderer.prompt(question)
        out.append((rid, prompt, prompt + renderer.completion(fields["thinking"], fields["attempt"])))
    return out


def _conditioned_questions(pending: list[tuple[str, dict[str, str]]], tokenizer: Any, cfg: TrainConfig) -> list[str]:
    """The questions, with each trace's own length stated in the prompt when cfg.condition asks."""
    questions = [fields["question"] for _, fields in pending]
    if cfg.condition == "none" or not pending:
        return questions
    from s1kit.eval.baselines import conditional_prompt

    lengths = [len(ids) for ids in tokenizer([f["thinking"] for _, f in pending], add_special_tokens=False)["input_ids"]]
    if cfg.condition == "token":
        values: list[int | str] = list(lengths)
    elif cfg.condition == "step":
        values = [max(1, -(-n // cfg.condition_tokens_per_step)) for n in lengths]
    else:  # class: the shorter half is 'short', as eval's class mode states the smaller budget as 'short'
        median = sorted(lengths)[len(lengths) // 2]
        values = ["short" if n < median else "long" for n in lengths]
    return [conditional_prompt(q, cfg.condition, v) for q, v in zip(questions, values)]


def _prompt_completion(row: dict[str, Any], rid: str, report: Report) -> tuple[str, str] | None:
    """The verbatim (prompt, completion) of a prompt_completion row; not stripped, since the text
    is already rendered (newlines and special tokens are part of the format)."""
    prompt, completion = row.get("prompt"), row.get("completion")
    for key, value in (("prompt", prompt), ("completion", completion)):
        if not isinstance(value, str):
            report.drop(f"missing_{key}", rid)
            return None
    if not completion.strip():
        report.drop("empty_completion", rid)
        return None
    return prompt, completion


def _text(value: Any) -> str | None:
    """A field as stripped text: a string, or a list of strings joined by newlines (s1K traces)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value).strip()
    return None


def _tokenize(batch, tokenizer: Any, cfg: TrainConfig, report: Report) -> list[Example]:
    enc = tokenizer([p for _, p, _ in batch] + [t for _, _, t in batch], add_special_tokens=False)["input_ids"]
    prompts, fulls = enc[: len(batch)], enc[len(batch):]
    examples = []
    for (rid, _, _), prompt_ids, ids in zip(batch, prompts, fulls):
        n = len(prompt_ids)
        if ids[:n] != prompt_ids:
            report.drop("prompt_not_token_prefix", rid)
            continue
        truncated = len(ids) > cfg.max_length
        if truncated and cfg.truncate_or_drop == "drop":
            report.drop("longer_than_max_length", rid)
            continue
        if n >= cfg.max_length:
            report.drop("prompt_fills_max_length", rid)
            continue
        ids = ids[: cfg.max_length]
        report.truncated += truncated
        report.lengths.append(len(ids))
        report.loss_tokens += len(ids) - n
        examples.append(Example(rid, ids, [IGNORE] * n + ids[n:], n, truncated))
    return examples


def log_report(report: dict[str, Any]) -> None:
    """One INFO line with the counts, one WARNING per drop reason (never silent)."""
    log.info("data: read %d rows, kept %d, dropped %d, truncated %d, duplicate ids %d, tokens %s",
             report["rows_read"], report["kept"], report["dropped_total"], report["truncated"],
             report["duplicate_ids"], report["tokens"])
    for reason, n in report["dropped"].items():
        log.warning("data: dropped %d rows: %s (first ids: %s)", n, reason, report["dropped_ids"].get(reason, []))
    if report["truncated"]:
        log.warning("data: truncated %d samples to max_length (their end-of-turn token is cut off)", report["truncated"])
