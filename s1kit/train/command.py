"""The `train` verb: flags from TrainConfig (TRL's names), a YAML recipe as defaults.

    s1kit train --config recipes/s1.1-32b.yaml --dataset data/s1K-1.1 --output-dir ckpts/s1.1
    s1kit train --config open-r1-style.yaml --sft-arg lr_scheduler_kwargs='{min_lr_rate: 0.1}'
    python -m s1kit.train --config recipes/tiny-train.yaml --max-steps 20    # same, without the CLI wiring

The recipe's `train:` section, or a flat TRL / open-r1 style file without sections, holds
TrainConfig fields and any other trl.SFTConfig field (see :mod:`s1kit.train.trl_args`).
`register(sub)` adds the verb to an argparse sub-parser set (s1kit/cli.py calls it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import yaml

from s1kit.config import ConfigError, add_dataclass_arguments, from_dict, load_yaml
from s1kit.train.config import TrainConfig

SECTION = "train"


def register(sub) -> argparse.ArgumentParser:
    """Add `train` to the sub-parsers of the s1kit command line."""
    p = sub.add_parser("train", help="SFT with loss on the assistant turn (TRL; torchrun/accelerate for GPUs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML recipe with a 'train:' section; flags override it")
    add_dataclass_arguments(p, TrainConfig, "training")
    p.add_argument("--sft-arg", action="append", default=[], metavar="KEY=VALUE", dest="sft_arg",
                   help="any other trl.SFTConfig field (VALUE is read as YAML); repeatable")
    from s1kit.train.trl_args import RENAMED

    for old, new in RENAMED.items():  # also stops argparse reading --lr as an abbreviation of --lr-scheduler-type
        p.add_argument("--" + old.replace("_", "-"), action=_Renamed, new=new, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)
    return p


class _Renamed(argparse.Action):
    """An old flag: fails with TRL's name for it."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        flags = " and ".join("--" + name.replace("_", "-") for name in self.new.split(" (")[0].split(" and "))
        parser.error(f"{option_string} is renamed: use TRL's name {flags} ({self.new})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Recipe values (section `train:`, or the whole file when it has none), then flags over them."""
    from s1kit.train.trl_args import split

    recipe = load_yaml(args.config) if args.config else {}
    where = SECTION if SECTION in recipe else ""
    values = split(recipe.get(SECTION, {}) if where else recipe, where or "config")
    names = {f.name for f in dataclasses.fields(TrainConfig) if f.init}
    values.update({k: v for k, v in vars(args).items() if k in names})
    extra = _sft_flags(getattr(args, "sft_arg", []))
    if extra:
        more = split(extra, "sft_arg")
        values["sft_args"] = {**values.get("sft_args", {}), **more.pop("sft_args", {})}
        values.update(more)
    return from_dict(TrainConfig, values, where=where)


def _sft_flags(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError("sft_arg", item, "KEY=VALUE with a trl.SFTConfig field name")
        out[key.strip()] = yaml.safe_load(text)
    return out


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

    parser = argparse.ArgumentParser(prog="python -m s1kit.train", allow_abbrev=False)
    register(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["train", *(argv if argv is not None else sys.argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as err:
        parser.error(str(err))
    return 2
