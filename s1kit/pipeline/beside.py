"""Two independent stages side by side: one in a spawned second process, the other in this one.

    base_large, base_small = side_by_side(st, cfg, ("base_small", params, [], stage_base, args), run_large)

The embedded default trains on one torch thread (``threads: 1``: with two the float order, and so
the run, differs), which leaves the second core of a 2-core machine idle. Each process here runs
torch with the recipe's ``threads``, so every number is the same as when the stages run one after
the other; ``stage_workers: 1`` runs them one after the other. The second process records its stage
in the same stage cache (its ``stage.json``), which this process then reads.
"""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

Side = tuple[str, dict[str, Any], list[str], Callable[..., dict[str, Any]], tuple[Any, ...]]
"""(stage name, params, upstream stage names, the stage function, its arguments between cfg and its folder).
The function must be a module-level one (the spawned process imports it by name)."""


def _child(root: str, side: Side, records: dict[str, Any], cfg: Any) -> None:
    import torch

    from s1kit.pipeline.run import Stages

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(cfg.threads)
    name, params, upstream, job, args = side
    st = Stages(Path(root))
    st.done.update(records)
    st.run(name, params, upstream, lambda d: job(cfg, *args, d))


def side_by_side(st: Any, cfg: Any, side: Side, here: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run stage ``side`` in a second process while ``here()`` runs in this one; returns
    (``here()``'s result, the side stage's outputs). A side stage that fails stops the run."""
    name, params, upstream, job, args = side
    if cfg.stage_workers < 2 or st.finished(name, params, upstream) is not None:
        outputs = st.run(name, params, upstream, lambda d: job(cfg, *args, d))
        return here(), outputs
    records = {u: st.done[u] for u in upstream}
    proc = multiprocessing.get_context("spawn").Process(
        target=_child, args=(str(st.root), side, records, cfg), name=f"s1kit-{name}")
    proc.start()
    log.info("stage %s: running beside the next stage, in process %d", name, proc.pid)
    try:
        result = here()
    except BaseException:
        proc.terminate()  # its stage stays pending: the next run resumes it
        proc.join()
        raise
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"stage {name} failed in its own process (exit code {proc.exitcode}); its log is above")
    return result, st.adopt(name, params, upstream)  # the record the second process wrote
