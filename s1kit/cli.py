"""The s1kit command line: verbs mapped to stage functions.

    s1kit run recipes/tiny.yaml                  # the whole pipeline on a CPU: curate, train, eval, report
    s1kit demo                                   # budget forcing on a tiny local model
    s1kit generate --model PATH --input prompts.jsonl --output out.jsonl --max-thinking-tokens 2048 --num-ignore 2
    s1kit generate --config recipes/generate-s1.yaml --prompt "How many r in raspberry?"
    s1kit eval --model PATH --benchmarks math500,aime24 --budgets 512,1024,2048 --waits 0,1,2
    s1kit serve --model PATH                     # OpenAI-compatible, per-request budget fields
    s1kit train --config recipes/s1.1-32b.yaml   # SFT, loss on thinking + answer (extra: train)
    s1kit curate --config recipes/curate-synth.yaml   # collect → … → select 1K; `s1kit curate report` for the funnel
    s1kit distill --input q.jsonl --output t.jsonl --base-url URL --model NAME   # teacher traces (extra: data)

A YAML recipe (``--config``) sets defaults, with sections ``generate:`` and ``policy:``; flags override.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from s1kit.config import ConfigError, add_dataclass_arguments, load_yaml, resolve

# The top-level keys a verb's recipe may hold; any other is an error listing these.
VERB_SECTIONS = {"generate": ("generate", "policy", "preset"), "eval": ("eval", "policy", "preset"),
                 "serve": ("serve",), "train": ("train",), "curate": ("curate", "distill"),
                 "distill": ("distill",), "run": ("run",), "demo": ()}


class Parser(argparse.ArgumentParser):
    """No prefix matching of flags (``--max-thinking 5`` is an error, not --max-thinking-tokens),
    and every usage error is one line ``s1kit: error: …`` with exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"s1kit: error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(2)


def _policy_stage_parser(sub, verb: str, help_text: str, config_cls, section: str, func) -> None:
    """A verb whose flags are a stage config plus the BudgetPolicy, with an optional YAML recipe."""
    from s1kit.forcing import BudgetPolicy

    p = sub.add_parser(verb, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help=f"YAML recipe with '{section}:' and 'policy:' sections")
    p.add_argument("--preset", choices=["s1", "r1"], default=argparse.SUPPRESS,
                   help="delimiter preset for the policy (default: s1)")
    add_dataclass_arguments(p, config_cls, section)
    add_dataclass_arguments(p, BudgetPolicy, "budget forcing policy")
    p.set_defaults(func=func)


def _generate_parser(sub) -> None:
    from s1kit.generate import GenerateConfig

    _policy_stage_parser(sub, "generate", "budget-forced generation for prompts (JSONL or --prompt)",
                         GenerateConfig, "generate", _cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from s1kit.generate import GenerateConfig, run_generate

    recipe = load_yaml(args.config, VERB_SECTIONS["generate"]) if args.config else {}
    cfg = resolve(GenerateConfig, args, recipe, "generate")
    manifest = run_generate(cfg, _policy(args, recipe))
    logging.getLogger("s1kit").info("wrote %s", cfg.output)
    sys.stdout.write(json.dumps(manifest["counts"]) + "\n")
    return 0


def _eval_parser(sub) -> None:
    from s1kit.eval.run import EvalConfig

    _policy_stage_parser(sub, "eval", "budget-forced evaluation on benchmarks, graded offline, scaling curves",
                         EvalConfig, "eval", _cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from s1kit.eval.run import EvalConfig, run_eval

    recipe = load_yaml(args.config, VERB_SECTIONS["eval"]) if args.config else {}
    cfg = resolve(EvalConfig, args, recipe, "eval")
    results = run_eval(cfg, _policy(args, recipe))
    sys.stdout.write(json.dumps({b: {"performance": r["performance"], "control": r["control"],
                                     "scaling_per_1k_tokens": r["scaling_per_1k_tokens"]}
                                 for b, r in results["benchmarks"].items()}) + "\n")
    sys.stdout.write(f"report: {cfg.output_dir}/report.md\n")
    return 0


def _policy(args: argparse.Namespace, recipe: dict):
    """The policy: preset, then the recipe's 'policy:' section, then flags."""
    from s1kit.forcing import BudgetPolicy

    from s1kit.config import check_finite

    preset = getattr(args, "preset", None) or recipe.get("preset", "s1")
    if preset not in ("s1", "r1"):
        raise ConfigError("preset", preset, "one of 's1', 'r1'")
    values = {**BudgetPolicy.preset(preset).to_dict(), **(recipe.get("policy") or {})}
    values.update({k: v for k, v in vars(args).items() if k in values})
    check_finite(values, "policy")
    return BudgetPolicy.from_dict(values)


def _serve_parser(sub) -> None:
    from s1kit.serve.app import ServeConfig

    p = sub.add_parser("serve", help="OpenAI-compatible server with per-request budget forcing (extra: serve)")
    p.add_argument("--config", help="YAML recipe with a 'serve:' section")
    add_dataclass_arguments(p, ServeConfig)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from s1kit.serve.app import ServeConfig, run_serve

    recipe = load_yaml(args.config, VERB_SECTIONS["serve"]) if args.config else {}
    run_serve(resolve(ServeConfig, args, recipe, "serve"))
    return 0


def _demo_parser(sub) -> None:
    from s1kit.demo import DemoConfig

    p = sub.add_parser("demo", help="budget forcing on a tiny local model (no GPU, no network)")
    add_dataclass_arguments(p, DemoConfig)
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from s1kit.demo import DemoConfig, run_demo, summary_table

    cfg = resolve(DemoConfig, args)
    out = run_demo(cfg)
    first = next(r for r in out["rows"] if "text" in r)
    sys.stdout.write(f"\n{summary_table(out['rows'])}\n\nFirst sample ({first['id']}):\n{first['prompt']}"
                     f"<|im_start|>think{first['text']}\n\nRows: {out['output']}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="s1kit", description="s1: simple test-time scaling, as a toolkit")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    sub = parser.add_subparsers(dest="verb", required=True)
    _demo_parser(sub)
    _generate_parser(sub)
    _eval_parser(sub)
    _serve_parser(sub)
    from s1kit.train.command import register as register_train

    register_train(sub)
    from s1kit.data.command import register as register_data

    register_data(sub)
    from s1kit.pipeline.command import register as register_run

    register_run(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _check_recipe(args)
        return args.func(args)
    except ConfigError as err:
        sys.stderr.write(f"s1kit: error: {err}\n")
        raise SystemExit(2) from None


def _check_recipe(args: argparse.Namespace) -> None:
    """The recipe file and its sections, before any stage starts (a second read is cheap)."""
    path = getattr(args, "config", None) or (getattr(args, "recipe", None) if args.verb == "run" else None)
    if path:
        load_yaml(path, VERB_SECTIONS.get(args.verb))


if __name__ == "__main__":
    raise SystemExit(main())
