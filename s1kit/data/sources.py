"""The 16 s1 question sources, local JSONL/Parquet files and synthetic families, as common rows.

    rows, log = collect([SourceConfig(name="numinamath", path="numina.parquet"),      # local, Hub shape
                         SourceConfig(path="mine.jsonl", source="mine"),                 # local, common rows
                         SourceConfig(synth="add_chain,gcd", n=500)])                    # embedded default
    rows, log = collect([SourceConfig(name="numinamath", revision="<commit sha>")])     # from the Hub

Every record goes through its source's normaliser into the common row (``id``, ``question``,
``solution``, ``answer``, ``source``, ``cot_type``, ``metadata``; see :mod:`s1kit.data.rows`). A
record the normaliser cannot use (missing or non-text field) is a drop with reason
``bad_row:<field>``; a record s1 deliberately left out (non-English, image questions, GPQA
Diamond, AIME after 2021, easy LiveCodeBench ...) is a drop with reason ``filtered:<why>``.
Nothing is skipped silently.

``source`` values follow s1K's ``source_type`` column (``AI-MO/NuminaMath-CoT/olympiads``,
``qfq/openaimath/Algebra``, ``qq8933/AIME_1983_2024`` ...), so s1's auto-include rules work on them.
Row ids are ``<registry name>/<config>/<split>/<record index>``: stable for a pinned revision.

Pinning: every :class:`SourceSpec` has a ``revision`` (default None = the Hub's current main).
We cannot look up Hub commit SHAs offline, so none is pinned here; pin one per source in the
recipe (``sources: [{name: numinamath, revision: <40-hex commit>}]``, the SHA shown on the
dataset page's "Files and versions" tab or by ``huggingface_hub.HfApi().dataset_info(id).sha``).
The collect manifest records the revision each source was read at (``None`` means unpinned).

Hub loading goes through ``datasets.load_dataset(hub_id, config, split=..., revision=...)``;
tests use local fixture files in each source's real column shape instead.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from s1kit.data.rows import DropLog, Row, iter_jsonl, validate_row
from s1kit.forcing.validation import ConfigError, check_float, check_int

from s1kit.data.source_registry import (  # noqa: F401  (the registry, re-exported)
    Normaliser, BadRow, Filtered, SourceSpec, text_field, optional_text, answer_of, boxed_answer, jsonable, make_row, norm_numinamath, norm_math, OLYMPIC_ARENA_COT, norm_olympic_arena, norm_omni_math, AGIEVAL_COT, AGIEVAL_WITH_PASSAGE, norm_agieval, XWORD_INSTRUCTION, norm_xword, norm_olympiadbench, AIME_LAST_YEAR, norm_aime, norm_theoremqa, norm_usaco, JEEBENCH_COT, norm_jeebench, GPQA_LETTERS, norm_gpqa, SCIEVAL_COT, SCIEVAL_REWRITES, norm_scieval, norm_s1_prob, norm_livecodebench, norm_s1_teasers, REGISTRY, get_spec)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceConfig:
    """One entry of a recipe's ``sources:`` list: exactly one of a registry name, a path or synth.

    - ``name`` alone: the registered source from the Hub (``revision`` pins it);
    - ``name`` + ``path``: a local JSONL/Parquet file in that source's Hub column shape;
    - ``path`` alone: a local file already in the common row shape (``source`` names it);
    - ``synth``: comma-separated synthetic families (:mod:`s1kit.synth.tasks`) with their
      programmatic teacher's traces, ``n`` questions per family.
    """

    name: str | None = None
    path: str | None = None
    source: str | None = None
    config: str | None = None  # for a local file in the shape of a multi-config source
    revision: str | None = None
    synth: str | None = None
    n: int = 100
    seed: int = 0
    levels: tuple[int, ...] = (1, 2, 3, 4)
    mistake_rate: float = 0.1
    check_rate: float | None = None  # None: the teacher's default (s1kit.synth.teacher.solve)
    correction_rate: float | None = None
    family_correction_rates: dict[str, float] | None = None  # synth: family -> rate, over correction_rate
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.synth is None and self.name is None and self.path is None:
            raise ConfigError("sources[]", self.to_dict(), "an entry with name, path or synth")
        if self.synth is not None and (self.name or self.path):
            raise ConfigError("sources[].synth", self.synth, "alone (not with name or path)")
        if self.name is not None:
            get_spec(self.name)
        if self.path is not None and self.name is None and not self.source:
            raise ConfigError("sources[].source", self.source, "a source name for a common-shape local file")
        check_int("sources[].n", self.n, 1)
        for name in ("check_rate", "correction_rate"):
            if getattr(self, name) is not None:
                check_float(f"sources[].{name}", getattr(self, name), 0.0, 1.0)
        self._check_family_rates()
        if self.limit is not None:
            check_int("sources[].limit", self.limit, 1)
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision.strip()):
            raise ConfigError("sources[].revision", self.revision, "a Hub commit SHA, tag or branch")

    def _check_family_rates(self) -> None:
        rates, where = self.family_correction_rates, "sources[].family_correction_rates"
        if rates is None:
            return
        families = [f.strip() for f in (self.synth or "").split(",") if f.strip()]
        if not isinstance(rates, Mapping) or any(fam not in families for fam in rates):
            raise ConfigError(where, rates, "a mapping from this synth source's families (" + ", ".join(families)
                              + ") to rates")
        for fam, rate in rates.items():
            check_float(f"{where}.{fam}", rate, 0.0, 1.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SourceConfig":
        from s1kit.forcing.validation import from_dict

        return from_dict(cls, dict(data), where="sources[]")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @property
    def label(self) -> str:
        return self.name or (f"synth:{self.synth}" if self.synth else self.source) or "?"


def read_records(path: str | Path) -> Iterator[Mapping[str, Any]]:
    """Records of a local JSONL or Parquet file (a bad JSON line raises with its line number)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    elif path.suffix in (".jsonl", ".json"):
        yield from iter_jsonl(path)
    else:
        raise ConfigError("sources[].path", str(path), "a .jsonl or .parquet file")


Record = tuple[str | None, str, int, Mapping[str, Any]]  # (config, split, index, record)


def hub_records(spec: SourceSpec, revision: str | None = None) -> Iterator[Record]:
    """(config, split, index, record) from the Hub via ``datasets.load_dataset`` (needs network)."""
    import datasets

    revision = revision or spec.revision
    if revision is None:
        logger.warning("source %s (%s) is not pinned to a revision: the Hub's current main is read",
                       spec.name, spec.hub_id)
    diamond = _gpqa_diamond_questions(revision) if spec.name == "gpqa" else set()
    for config in spec.configs:
        for split in spec.splits:
            kwargs = dict(spec.load_kwargs)
            if spec.name == "livecodebench":  # LiveCodeBench selects releases by version_tag, not name
                kwargs["version_tag"], config_arg = config, None
            else:
                config_arg = config
            ds = datasets.load_dataset(spec.hub_id, config_arg, split=split, revision=revision, **kwargs)
            for i, rec in enumerate(ds):
                if diamond and rec.get("Question") in diamond:
                    rec = {**rec, "_in_diamond": True}
                yield config, split, i, rec


def _gpqa_diamond_questions(revision: str | None) -> set[str]:
    import datasets

    return set(datasets.load_dataset("Idavidrein/gpqa", "gpqa_diamond", split="train", revision=revision)["Question"])


def normalise_records(label: str, normalise: Normaliser,
                      records: Iterable[Record],
                      log: DropLog, limit: int | None = None) -> list[Row]:
    """Normalise records into rows with ids; bad and filtered records go to ``log``."""
    rows: list[Row] = []
    for config, split, index, rec in records:
        if limit is not None and len(rows) >= limit:
            break
        rid = "/".join(p for p in (label, config, split, str(index)) if p)
        try:
            if not isinstance(rec, Mapping):
                raise BadRow("bad_row:not_an_object")
            row = normalise(rec, config)
        except (BadRow, Filtered) as why:
            log.add({"id": rid, "source": label}, why.reason)
            continue
        row["id"] = row.get("id") or rid  # a common-shape file may carry its own ids
        problems = validate_row(row)
        if problems:  # a normaliser bug or an odd record: counted, never passed on
            log.add(row, "bad_row:schema", problems=problems)
            continue
        rows.append(row)
    return rows


def common_row(rec: Mapping[str, Any], config: str | None, source: str) -> Row:
    """A local record already in the common shape (``id`` optional; ``source`` from the config)."""
    row = make_row(rec, ("id", "question", "solution", "answer", "source", "cot_type", "metadata"),
                   question=text_field(rec, "question"), solution=optional_text(rec, "solution"),
                   answer=rec.get("answer"), source=str(rec.get("source") or source),
                   cot_type=str(rec.get("cot_type") or "math"))
    if isinstance(rec.get("id"), (str, int)) and str(rec["id"]).strip():
        row["id"] = str(rec["id"])
    extra = row.pop("metadata")
    row["metadata"] = {**(rec.get("metadata") if isinstance(rec.get("metadata"), Mapping) else {})}
    # later-stage fields (domain, thinking, attempt, ...) pass through as top-level fields
    row.update({k: v for k, v in extra.items() if k not in row})
    return row


def synth_rows(cfg: SourceConfig) -> list[Row]:
    """The embedded default: synthetic questions with the programmatic teacher's traces."""
    from s1kit.synth.tasks import generate
    from s1kit.synth.teacher import teacher_rows

    rows: list[Row] = []
    for family in (f.strip() for f in (cfg.synth or "").split(",") if f.strip()):
        problems = generate(family, cfg.n, seed=cfg.seed, levels=cfg.levels)
        rows += teacher_rows(problems, mistake_rate=cfg.mistake_rate, seed=cfg.seed, check_rate=cfg.check_rate,
                             correction_rate=(cfg.family_correction_rates or {}).get(family, cfg.correction_rate))
    for row in rows:  # the teacher's solution is its own trace; keep the question set's answer only
        row["metadata"]["teacher"] = "synth"
    return rows[: cfg.limit] if cfg.limit else rows


def collect_one(cfg: SourceConfig, log: DropLog) -> list[Row]:
    """Rows of one configured source; drops are added to ``log``."""
    if cfg.synth:
        return synth_rows(cfg)
    if cfg.name and cfg.path:
        spec = get_spec(cfg.name)
        records = ((cfg.config, "local", i, r) for i, r in enumerate(read_records(cfg.path)))
        return normalise_records(cfg.name, spec.normalise, records, log, cfg.limit)
    if cfg.path:
        source = cfg.source or Path(cfg.path).stem
        records = ((None, "", i, r) for i, r in enumerate(read_records(cfg.path)))
        return normalise_records(source, lambda r, c: common_row(r, c, source), records, log, cfg.limit)
    spec = get_spec(cfg.name)  # type: ignore[arg-type]
    return normalise_records(spec.name, spec.normalise, hub_records(spec, cfg.revision), log, cfg.limit)


def collect(sources: Iterable[SourceConfig | Mapping[str, Any]], progress: bool = False) -> tuple[list[Row], DropLog]:
    """Rows of every source in order, and one drop log; ids must be unique across sources."""
    from tqdm.auto import tqdm

    log = DropLog("collect")
    rows: list[Row] = []
    configs = [s if isinstance(s, SourceConfig) else SourceConfig.from_dict(s) for s in sources]
    for cfg in tqdm(configs, desc="collect", unit="source", disable=not progress):
        got = collect_one(cfg, log)
        logger.info("collect: %s gave %d rows", cfg.label, len(got))
        rows += got
    seen: set[str] = set()
    unique: list[Row] = []
    for row in rows:
        if row["id"] in seen:
            log.add(row, "duplicate_id")
        else:
            seen.add(row["id"])
            unique.append(row)
    return unique, log


def pinned_revisions(sources: Iterable[SourceConfig]) -> dict[str, str | None]:
    """What the manifest records: the revision each Hub source was read at (None = unpinned)."""
    return {s.label: (s.revision or get_spec(s.name).revision) for s in sources if s.name and not s.path}


def question_hash(question: str) -> str:
    """sha256 of a question's text: a content key independent of row ids."""
    return hashlib.sha256(question.encode("utf-8")).hexdigest()


__all__ = ["BadRow", "Filtered", "REGISTRY", "SourceConfig", "SourceSpec", "collect", "collect_one", "get_spec",
           "hub_records", "normalise_records", "pinned_revisions", "question_hash", "read_records", "synth_rows"]
