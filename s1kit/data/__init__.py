"""Curation stages (pure Python, no torch): collect → decontaminate → dedup → [distill] → quality →
difficulty → domains → select; ``s1kit curate`` runs them (:mod:`s1kit.data.curate`), ``s1kit distill``
asks a teacher (:mod:`s1kit.data.distill`).

    rows, log = collect([SourceConfig(name="aime", path="aime.jsonl")])   # s1kit.data.sources
    kept, log = decontaminate(rows, load_benchmarks("benchmarks/"))

Each stage takes row dicts (see :mod:`s1kit.data.rows`) and returns the kept rows and a
:class:`DropLog` of every drop.
``run_stage`` wraps a stage with timing and a :class:`StageManifest`; ``funnel_markdown`` renders
the funnel. Near-duplicate removal needs ``pip install 's1kit[data]'`` (datasketch).
"""

from s1kit.data.decontaminate import (NgramIndex, decontaminate, hits_by_source, load_benchmark_jsonl,
                                      load_benchmarks)
from s1kit.data.dedup import dedup, exact_dedup, near_dedup
from s1kit.data.manifest import (StageManifest, funnel_line, funnel_markdown, manifest_path, run_stage,
                                 sha256_files, sha256_row_ids)
from s1kit.data.quality import Rule, default_rules, quality_filter, rules_from_config
from s1kit.data.rows import Drop, DropLog, iter_jsonl, normalize_text, validate_row, words, write_jsonl
from s1kit.data.select import METHODS, AutoInclude, select
from s1kit.data.sources import REGISTRY, SourceConfig, collect

__all__ = [
    "METHODS", "REGISTRY", "AutoInclude", "SourceConfig", "collect", "Drop", "DropLog", "NgramIndex", "Rule", "StageManifest", "decontaminate", "dedup",
    "default_rules", "exact_dedup", "funnel_line", "funnel_markdown", "hits_by_source", "iter_jsonl",
    "load_benchmark_jsonl", "load_benchmarks", "manifest_path", "near_dedup", "normalize_text", "quality_filter",
    "rules_from_config", "run_stage", "select", "sha256_files", "sha256_row_ids", "validate_row", "words",
    "write_jsonl",
]
