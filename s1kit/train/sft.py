"""The SFT stage: s1's train/sft.py on TRL's SFTTrainer, for any causal chat model.

    s1kit train --config recipes/tiny-train.yaml                       # CPU, fp32, minutes
    accelerate launch --config_file recipes/accelerate/fsdp-qwen2.yaml -m s1kit.cli train \
        --config recipes/s1.1-32b.yaml --dataset data/s1K-1.1 --output-dir ckpts/s1.1-32b
    from s1kit.train import TrainConfig, run_train; run_train(TrainConfig(...))

Rows are checked, rendered and tokenized by :mod:`s1kit.train.data` (labels are -100 outside the
assistant turn), then handed pre-tokenized to ``trl.SFTTrainer`` (``skip_prepare_dataset``), which
runs the loop, checkpoints (model, optimizer, scheduler, RNG, data position) and resumes. The
launcher (torchrun / accelerate, with an FSDP config from recipes/accelerate/) decides the
parallelism; nothing here branches on a model name. The result is a Hugging Face model folder in
``output_dir`` whose generation config stops at the chat format's end-of-turn token.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from s1kit.config import ConfigError, to_dict
from s1kit.train.config import TrainConfig
from s1kit.train.data import Example, build_examples, load_rows, log_report
from s1kit.train.trl_args import import_trl, sft_config
from s1kit.train.inspect import render_inspection, summarize

log = logging.getLogger(__name__)
COMPLETE_MARKER = "trainer_state.json"  # HF Trainer writes it last in a checkpoint


def run_train(cfg: TrainConfig) -> dict[str, Any]:
    """Check the data, train, save the model folder; returns the manifest (or the inspection)."""
    tokenizer = load_tokenizer(cfg)
    rows, bad = load_rows(cfg)
    examples, report = build_examples(rows, tokenizer, cfg, bad)
    if is_main():
        log_report(report)
    if cfg.inspect:
        text = render_inspection(tokenizer, examples[0])
        log.info("inspect (loss tokens in ⟦ ⟧):\n%s", text)
        return {"report": report, "inspect": text, "summary": summarize(tokenizer, examples[0])}
    resume = resolve_resume(cfg)
    _check_launch(cfg)
    args = sft_config(cfg)  # first: it starts torch.distributed, which rank-0-only FSDP loading needs
    model = load_model(cfg, tokenizer, report["end_of_turn"])
    trainer = build_trainer(cfg, model, tokenizer, examples, args)
    _write_json(Path(cfg.output_dir) / "data_report.json", report)
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    save_final(trainer, tokenizer, cfg)
    manifest = _manifest(cfg, trainer, report, result.metrics, time.time() - start, resume)
    _write_json(Path(cfg.output_dir) / "train_manifest.json", manifest)
    return manifest


# ---------------------------------------------------------------------------------------------
# model + tokenizer
# ---------------------------------------------------------------------------------------------


def load_tokenizer(cfg: TrainConfig):
    """The tokenizer: cfg.tokenizer, else the model's ('bytes' for tiny: models)."""
    source = cfg.tokenizer or ("bytes" if cfg.model.startswith("tiny:") else cfg.model)
    if source == "bytes":
        from s1kit.train.tiny import bytes_chat_tokenizer

        return bytes_chat_tokenizer()
    from transformers import AutoTokenizer

    from s1kit.gguf import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(source), revision=cfg.revision if source == cfg.model else None)
    if tok.pad_token is None:
        log.info("the tokenizer has no pad token: padding with %s (padding never carries loss)", tok.eos_token)
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: TrainConfig, tokenizer: Any, end_of_turn: str):
    """Weights in cfg.dtype (float32: master weights, bf16 autocasts), generation stopping at the end-of-turn token."""
    import torch

    if cfg.model.startswith("tiny:"):
        from s1kit.train.tiny import TINY_KEYS, build_tiny_model, parse_spec

        head, spec = parse_spec(cfg.model, TINY_KEYS, "model")
        if head != "tiny":
            raise ConfigError("model", cfg.model, "'tiny:KEY=VAL,...' with keys " + ", ".join(TINY_KEYS))
        model = build_tiny_model(spec, len(tokenizer)).to(getattr(torch, cfg.dtype))
    else:
        from transformers import AutoModelForCausalLM

        kwargs = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
        from s1kit.gguf import resolve_model

        model = AutoModelForCausalLM.from_pretrained(resolve_model(cfg.model), revision=cfg.revision,
                                                     dtype=getattr(torch, cfg.dtype),
                                                     **kwargs)
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ConfigError("tokenizer", cfg.tokenizer or cfg.model, f"a tokenizer of at most {vocab} tokens (the model's embedding)")
    model.config.use_cache = False
    model.generation_config.eos_token_id = eos_ids(model, tokenizer, end_of_turn)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def eos_ids(model: Any, tokenizer: Any, end_of_turn: str) -> list[int]:
    """The end-of-turn id first, then the model's and tokenizer's existing EOS ids."""
    found = [tokenizer.convert_tokens_to_ids(end_of_turn)]
    existing = model.generation_config.eos_token_id
    found += existing if isinstance(existing, list) else [existing]
    found.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(i for i in found if i is not None))


# ---------------------------------------------------------------------------------------------
# trainer
# ---------------------------------------------------------------------------------------------


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def build_trainer(cfg: TrainConfig, model: Any, tokenizer: Any, examples: list[Example], args: Any = None):
    """trl.SFTTrainer over pre-tokenized examples (input_ids, labels with -100 outside the loss)."""
    trl = import_trl()
    from datasets import Dataset

    args = args or sft_config(cfg)
    data = Dataset.from_dict({"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]})
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size()
    log.info("plan: %d samples, world %d x per-device batch %d x accum %d = global batch %d, ~%d steps/epoch, %s",
             len(examples), world_size(), args.per_device_train_batch_size, args.gradient_accumulation_steps,
             per_step, -(-len(examples) // per_step),
             f"max_steps {args.max_steps}" if args.max_steps > 0 else f"{args.num_train_epochs} epochs")
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                             callbacks=[_LogCallback()])
    trainer.remove_callback(PrinterCallback)  # logs go through logging (_LogCallback)
    _check_collator(trainer, examples[:2])
    _check_parallelism(trainer)
    return trainer


def _check_collator(trainer: Any, examples: list[Example]) -> None:
    """The batches TRL builds must carry our labels (-100 outside the assistant turn), whatever its version."""
    batch = trainer.data_collator([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    for row, e in zip(batch["labels"].tolist(), examples):
        if row[: len(e.labels)] != e.labels:
            raise RuntimeError("the TRL collator does not keep the dataset's labels: the loss would not be "
                               "limited to the assistant turn (install s1kit[train], TRL >= 1.16)")


def _check_launch(cfg: TrainConfig) -> None:
    if cfg.gradient_checkpointing and os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "").lower() == "true":
        raise ConfigError("gradient_checkpointing", True,
                          "false when the accelerate FSDP config turns on fsdp_activation_checkpointing")


def _check_parallelism(trainer: Any) -> None:
    """Fail instead of silently training with other parallelism than the launcher asked for."""
    acc = trainer.accelerator
    if acc.num_processes != world_size():
        raise RuntimeError(f"the launcher started {world_size()} processes but accelerate uses {acc.num_processes}")
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not trainer.is_fsdp_enabled:
        raise RuntimeError(f"the launch config asks for FSDP but accelerate runs {acc.distributed_type} "
                           "(accelerate has no FSDP for CPU processes; use torchrun for CPU data parallel)")
    if is_main():
        log.info("parallelism: %s, %d processes, fsdp=%s", acc.distributed_type, acc.num_processes, trainer.is_fsdp_enabled)


class _LogCallback(TrainerCallback):
    """Loss, learning rate and grad norm through logging (the trainer's own printing is off)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            log.info("step %d/%d %s", state.global_step, state.max_steps,
                     " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()))


# ---------------------------------------------------------------------------------------------
# checkpoints, final save
# ---------------------------------------------------------------------------------------------


def checkpoints(output_dir: str | Path) -> list[Path]:
    """checkpoint-N folders, oldest first."""
    root = Path(output_dir)
    found = [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint is complete once its trainer state (written last) parses."""
    try:
        json.loads((checkpoint / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return True


def resolve_resume(cfg: TrainConfig) -> str | None:
    """The checkpoint to resume from; refuses to start fresh over someone's checkpoints."""
    found = checkpoints(cfg.output_dir)
    if cfg.resume is None:
        if found:
            raise ConfigError("resume", None, f"'auto' or a checkpoint: {cfg.output_dir} already holds "
                              f"{found[-1].name}; pick another output_dir to start fresh")
        return None
    if cfg.resume != "auto":
        if not is_complete(Path(cfg.resume)):
            raise ConfigError("resume", cfg.resume, f"a complete checkpoint folder (with {COMPLETE_MARKER})")
        return cfg.resume
    complete = [p for p in found if is_complete(p)]
    for p in found:
        if p not in complete:
            log.warning("resume: skipping incomplete checkpoint %s (killed while saving?)", p)
    if not complete:
        log.info("resume=auto: no complete checkpoint in %s, starting fresh", cfg.output_dir)
        return None
    log.info("resume=auto: resuming from %s", complete[-1])
    return str(complete[-1])


def save_final(trainer: Any, tokenizer: Any, cfg: TrainConfig) -> None:
    """A full (unsharded) HF model folder in output_dir, usable by `s1kit generate`."""
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True
    trainer.save_model(cfg.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(cfg.output_dir)
        log.info("saved the model folder %s (eos ids %s)", cfg.output_dir, model.generation_config.eos_token_id)
    if cfg.push_to_hub:
        trainer.push_to_hub()


def _manifest(cfg, trainer, report, metrics, seconds, resume) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    curve = [{"step": h["step"], "loss": h["loss"], "lr": h.get("learning_rate")}
             for h in trainer.state.log_history if "loss" in h]
    return {"stage": "train", "config": to_dict(cfg), "output": cfg.output_dir, "resumed_from": resume,
            "world_size": world_size(), "distributed_type": str(trainer.accelerator.distributed_type),
            "fsdp": bool(trainer.is_fsdp_enabled), "grad_accum": trainer.args.gradient_accumulation_steps,
            "global_step": trainer.state.global_step, "metrics": metrics, "loss_curve": curve, "data": report,
            "seconds": round(seconds, 2), "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                                       "trl": trl.__version__, "python": platform.python_version()}}


def _write_json(path: Path, data: Any) -> None:
    if not is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
