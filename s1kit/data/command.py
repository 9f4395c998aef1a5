"""The `curate` and `distill` verbs: flags from CurateConfig / DistillConfig, YAML recipes as defaults.

    s1kit curate --config recipes/curate-synth.yaml                 # every stage (cached stages skip)
    s1kit curate --config recipes/curate-synth.yaml --stages quality,select --force true
    s1kit curate report --config recipes/curate-synth.yaml          # the funnel, printed and as Markdown
    s1kit distill --input q.jsonl --output t.jsonl --base-url http://127.0.0.1:8000/v1 --model s1

`register(sub)` adds both verbs to an argparse sub-parser set (s1kit/cli.py calls it).
"""

from __future__ import annotations

import argparse
import json
import sys

from s1kit.config import add_dataclass_arguments, load_yaml, resolve


def register(sub) -> None:
    """Add `curate` (with its `report` action) and `distill` to the s1kit command line."""
    from s1kit.data.curate import CurateConfig
    from s1kit.data.distill import DistillConfig

    p = sub.add_parser("curate", help="the s1K curation pipeline: collect → … → select (extra: data)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["run", "report"], default="run",
                   help="run the stages (default) or report the funnel of a finished run")
    p.add_argument("--config", help="YAML recipe with a 'curate:' section (and 'distill:' for a teacher)")
    add_dataclass_arguments(p, CurateConfig, "curation")
    p.set_defaults(func=cmd_curate)

    d = sub.add_parser("distill", help="teacher traces + attempts through an OpenAI-compatible API or a local model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--config", help="YAML recipe with a 'distill:' section")
    add_dataclass_arguments(d, DistillConfig, "distillation")
    d.set_defaults(func=cmd_distill)


def cmd_curate(args: argparse.Namespace) -> int:
    from s1kit.data.curate import CurateConfig, curate_report, run_curate

    recipe = load_yaml(args.config) if args.config else {}
    cfg = resolve(CurateConfig, args, recipe, "curate")
    if args.action == "report":
        markdown, path = curate_report(cfg)
        sys.stdout.write(markdown + f"\nwrote {path}\n")
        return 0
    result = run_curate(cfg, distill_section=recipe.get("distill"))
    sys.stdout.write(json.dumps({"funnel": result["funnel"], "output": result["output"]}, ensure_ascii=False) + "\n")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from s1kit.data.distill import DistillConfig, run_distill

    recipe = load_yaml(args.config) if args.config else {}
    cfg = resolve(DistillConfig, args, recipe, "distill")
    manifest = run_distill(cfg)
    summary = manifest.get("estimate") if cfg.dry_run else {**manifest["counts"], "ledger": manifest["ledger"]}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0
