"""Per-stage manifests (what ran, on what, with which versions, what it dropped) and the funnel.

    kept, log, m = run_stage("quality", quality_filter, rows, output=out)
    m.write(manifest_path(out))              # out + ".manifest.json"
    print(funnel_markdown([m1, m2, m3]))     # "59,029 → 51,581 → 24,496 → 1,000" and tables

A manifest sits next to the stage output as ``<output>.manifest.json``. ``run_stage`` checks that
every input row is either kept or in the drop log, so a stage cannot lose rows silently.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from s1kit.data.rows import DropLog, Row

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
# Distributions whose versions change stage results; absent ones are simply not recorded.
VERSIONED_PACKAGES = ("s1kit", "datasketch", "numpy")


@dataclass
class StageManifest:
    """What one curation stage did; JSON round-trips through :meth:`to_dict`/:meth:`from_dict`."""

    stage: str
    inputs_hash: str
    parameters: dict[str, Any]
    count_in: int
    count_out: int
    drops: dict[str, int]
    wall_seconds: float
    versions: dict[str, str] = field(default_factory=lambda: package_versions())
    output: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StageManifest":
        return cls(**data)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> "StageManifest":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def manifest_path(output: str | Path) -> Path:
    """Where the manifest of a stage that wrote ``output`` lives: ``<output>.manifest.json``."""
    output = Path(output)
    return output.with_name(output.name + MANIFEST_SUFFIX)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            logger.debug("%s is not installed; not recorded in the manifest", name)
    return versions


def sha256_files(paths: Iterable[str | Path]) -> str:
    """sha256 over the bytes of the files, in the given order (each length-prefixed)."""
    digest = hashlib.sha256()
    for p in paths:
        data = Path(p).read_bytes()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return "sha256:" + digest.hexdigest()


def sha256_row_ids(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 over the row ids in order: identifies an in-memory input without serialising it."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(str(row["id"]).encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


def run_stage(stage: str, fn: Callable[..., tuple[list[Row], DropLog]], rows: Iterable[Row],
              params: Mapping[str, Any] | None = None, recorded: Mapping[str, Any] | None = None,
              inputs_hash: str | None = None,
              output: str | Path | None = None) -> tuple[list[Row], DropLog, StageManifest]:
    """Run ``fn(rows, **params)``, time it and build its manifest.

    ``recorded`` is what the manifest stores as parameters (default ``params``, which must then be
    JSON-serialisable); pass it when a parameter is an object such as a rule list or an index.
    ``inputs_hash`` defaults to the hash of the input row ids.
    """
    rows = list(rows)
    params = dict(params or {})
    recorded = dict(params if recorded is None else recorded)
    _check_jsonable(stage, recorded)
    start = time.perf_counter()
    kept, log = fn(rows, **params)
    wall = time.perf_counter() - start
    if len(kept) + len(log) != len(rows):
        raise RuntimeError(f"stage {stage!r}: {len(rows)} rows in, {len(kept)} kept + {len(log)} logged drops; "
                           "a stage must account for every row")
    manifest = StageManifest(stage=stage, inputs_hash=inputs_hash or sha256_row_ids(rows), parameters=recorded,
                             count_in=len(rows), count_out=len(kept), drops=dict(sorted(log.counts().items())),
                             wall_seconds=round(wall, 4), output=None if output is None else str(output))
    return kept, log, manifest


def _check_jsonable(stage: str, recorded: Mapping[str, Any]) -> None:
    try:
        json.dumps(recorded)
    except TypeError as err:
        raise TypeError(f"stage {stage!r}: parameters are not JSON-serialisable ({err}); "
                        "pass `recorded=` with a JSON description of them") from err


# ---------------------------------------------------------------------------------------------
# funnel
# ---------------------------------------------------------------------------------------------


def funnel_line(manifests: Sequence[StageManifest]) -> str:
    """``59,029 → 51,581 → 24,496 → 1,000``: the first stage's input, then each stage's output."""
    if not manifests:
        raise ValueError("funnel needs at least one stage manifest")
    counts = [manifests[0].count_in] + [m.count_out for m in manifests]
    return " → ".join(f"{c:,}" for c in counts)


def funnel_markdown(manifests: Sequence[StageManifest]) -> str:
    """The funnel line, a per-stage table and a per-stage table of drop reasons, as Markdown."""
    lines = [f"**Funnel:** {funnel_line(manifests)}", ""]
    lines += _chain_notes(manifests)
    lines += ["| stage | in | out | dropped | wall s |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {m.stage} | {m.count_in:,} | {m.count_out:,} | {m.count_in - m.count_out:,} | "
              f"{m.wall_seconds:.2f} |" for m in manifests]
    lines += ["", "| stage | drop reason | rows |", "| --- | --- | ---: |"]
    for m in manifests:
        if not m.drops:
            lines.append(f"| {m.stage} | (none) | 0 |")
        lines += [f"| {m.stage} | {reason} | {count:,} |"
                  for reason, count in sorted(m.drops.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines) + "\n"


def _chain_notes(manifests: Sequence[StageManifest]) -> list[str]:
    """Say so when a stage did not start from the previous stage's output (a gap in the funnel)."""
    notes = []
    for prev, cur in zip(manifests, manifests[1:]):
        if cur.count_in != prev.count_out:
            logger.warning("funnel: %s starts from %d rows but %s ended with %d", cur.stage, cur.count_in,
                           prev.stage, prev.count_out)
            notes.append(f"> note: {cur.stage} starts from {cur.count_in:,} rows, "
                         f"but {prev.stage} ended with {prev.count_out:,}")
    return notes + ([""] if notes else [])
