"""The `train` verb: flags from TrainConfig, a YAML recipe (section `train:`) as defaults.

    s1kit train --config recipes/s1.1-32b.yaml --dataset data/s1K-1.1 --output-dir ckpts/s1.1
    python -m s1kit.train --config recipes/tiny-train.yaml --max-steps 20    # same, without the CLI wiring

`register(sub)` adds the verb to an argparse sub-parser set (s1kit/cli.py calls it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from s1kit.config import add_dataclass_arguments, load_yaml, resolve
from s1kit.train.config import TrainConfig

SECTION = "train"


def register(sub) -> argparse.ArgumentParser:
    """Add `train` to the sub-parsers of the s1kit command line."""
    p = sub.add_parser("train", help="SFT with loss on the assistant turn (TRL; torchrun/accelerate for GPUs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML recipe with a 'train:' section; flags override it")
    add_dataclass_arguments(p, TrainConfig, "training")
    p.set_defaults(func=cmd_train)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    recipe = load_yaml(args.config) if args.config else {}
    return resolve(TrainConfig, args, recipe, SECTION)


def cmd_train(args: argparse.Namespace) -> int:
    from s1kit.train import run_train

    out = run_train(config_from_args(args))
    if "inspect" in out:
        sys.stdout.write(out["inspect"] + "\n" + json.dumps(out["report"]) + "\n")
    else:
        sys.stdout.write(json.dumps({k: out[k] for k in ("output", "global_step", "metrics")}, default=str) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    from s1kit.config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m s1kit.train")
    register(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["train", *(argv if argv is not None else sys.argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as err:
        parser.error(str(err))
    return 2
