"""The `run` verb: the embedded default, a YAML recipe (section `run:`) with flags overriding it.

    s1kit run recipes/tiny.yaml              # the whole pipeline; prints the report path
    s1kit run recipes/tiny.yaml --smoke      # a few minutes, same code paths
    s1kit run recipes/tiny.yaml --seeds 0,1,2   # one run per seed (<output_dir>/seed<N>) + seeds.md

`register(sub)` adds the verb to an argparse sub-parser set (s1kit/cli.py calls it).
"""

from __future__ import annotations

import argparse
import sys

from s1kit.config import add_dataclass_arguments, load_yaml, resolve
from s1kit.pipeline.config import RunConfig

SECTION = "run"


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="the whole s1 pipeline on a CPU (curate, train, evaluate, report)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", help="YAML recipe with a 'run:' section (e.g. recipes/tiny.yaml)")
    p.add_argument("--seeds", default=None, metavar="0,1,2",
                   help="run once per seed, each into <output_dir>/seed<N>, and write a combined findings table")
    add_dataclass_arguments(p, RunConfig, "pipeline")
    p.set_defaults(func=cmd_run)
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = resolve(RunConfig, args, load_yaml(args.recipe) if args.recipe else {}, SECTION)
    return cfg.smoke_version() if cfg.smoke else cfg


def cmd_run(args: argparse.Namespace) -> int:
    from s1kit.pipeline.run import open_in_browser, run_pipeline

    cfg = config_from_args(args)
    if args.seeds is not None:
        from s1kit.pipeline.seeds import parse_seeds, run_seeds

        table = run_seeds(cfg, parse_seeds(args.seeds))
        sys.stdout.write(f"seeds: {table}\n")
        return 0
    html = run_pipeline(cfg)
    sys.stdout.write(f"report: {html}\n        {html.with_suffix('.md')}\n")
    if cfg.open_report:
        open_in_browser(html)
    return 0
