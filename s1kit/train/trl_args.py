"""TRL's names for the SFT stage: a recipe section -> TrainConfig, TrainConfig -> ``trl.SFTConfig``.

A train recipe speaks TRL: ``learning_rate``, ``num_train_epochs``, ``per_device_train_batch_size``,
``gradient_accumulation_steps``, ``adam_beta1/2``, ``lr_scheduler_type``, ``max_length``, ``bf16`` …
are fields of :class:`~s1kit.train.config.TrainConfig` (with s1's values as defaults); any other
``trl.SFTConfig`` field (``lr_scheduler_kwargs``, ``save_strategy``, ``optim``, …) goes through
unchanged in ``TrainConfig.sft_args`` and TRL validates it. TRL's ``ModelConfig`` /
``ScriptArguments`` names that open-r1 recipes use (``model_name_or_path``, ``model_revision``,
``torch_dtype``, ``dataset_name``) and ``eos_token`` are read as s1kit's ``model``, ``revision``,
``dtype``, ``dataset`` and ``end_of_turn``. s1kit's old names are an error that says the new one.

    cfg = train_config(load_yaml("recipes/s1-32b.yaml")["train"], where="train")
    args = sft_config(cfg)      # trl.SFTConfig
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

from s1kit.config import ConfigError, from_dict
from s1kit.train.config import TrainConfig

log = logging.getLogger(__name__)

# s1kit's names before TRL's (a recipe or flag using one fails with the new name)
RENAMED = {
    "lr": "learning_rate", "epochs": "num_train_epochs", "schedule": "lr_scheduler_type",
    "betas": "adam_beta1 and adam_beta2", "micro_batch": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps", "block_size": "max_length",
    "global_batch": "per_device_train_batch_size and gradient_accumulation_steps (global batch = "
                    "per_device_train_batch_size x gradient_accumulation_steps x processes)",
}
# TRL ModelConfig / ScriptArguments / SFTConfig names for fields s1kit already has under its own name
ALIASES = {"model_name_or_path": "model", "model_revision": "revision", "torch_dtype": "dtype",
           "dataset_name": "dataset", "eos_token": "end_of_turn"}
# SFTConfig fields s1kit sets itself: its data are rendered and tokenized here (data_format, completion_format)
OWNED = {"output_dir", "dataset_kwargs", "remove_unused_columns", "max_length", "warmup_steps",
         "activation_checkpointing", "fp16"}
# SFTConfig data options with no effect on pre-tokenized data: only TRL's default (no-op) value is accepted
DATA_ONLY = {"packing", "packing_strategy", "padding_free", "assistant_only_loss", "completion_only_loss",
             "dataset_text_field", "truncation_mode", "chat_template_path", "pad_token"}


def train_config(values: dict[str, Any], where: str = "train") -> TrainConfig:
    """A recipe section (TRL's names) as a validated TrainConfig."""
    return from_dict(TrainConfig, split(values, where), where=where)


def split(values: dict[str, Any], where: str = "train") -> dict[str, Any]:
    """TrainConfig keyword arguments from a flat mapping: its own fields, aliases, and the other
    SFTConfig fields gathered into ``sft_args``; an old or unknown name fails naming it."""
    if not isinstance(values, dict):
        raise ConfigError(where, values, "a mapping of field names to values")
    prefix = f"{where}." if where else ""
    own = {f.name for f in dataclasses.fields(TrainConfig) if f.init}
    out: dict[str, Any] = {}
    extra = dict(values.get("sft_args") or {})
    for key, value in values.items():
        if key == "sft_args":
            continue
        if key in RENAMED:
            raise ConfigError(prefix + key, value, f"TRL's name instead: {RENAMED[key]}")
        name = ALIASES.get(key, key)
        if name in own:
            if name in out:
                raise ConfigError(prefix + key, value, f"one of {key} and {name} (both set)")
            out[name] = value
        else:
            extra[key] = value
    if extra:
        _check_names(extra, prefix)
        out["sft_args"] = extra
    return out


def check_sft_args(extra: dict[str, Any], prefix: str = "") -> None:
    """Reject names that are no SFTConfig field, that s1kit sets itself, or that have no effect."""
    _check_names(extra, prefix)


def _check_names(extra: dict[str, Any], prefix: str) -> None:
    fields = sft_fields()
    for key, value in extra.items():
        if key in RENAMED:
            raise ConfigError(prefix + key, value, f"TRL's name instead: {RENAMED[key]}")
        if key not in fields:
            raise ConfigError(prefix + key, value, "an s1kit train field or a trl.SFTConfig field "
                                                   "(see `s1kit train --help` and TRL's SFTConfig)")
        if key in OWNED:
            raise ConfigError(prefix + key, value, "unset: s1kit sets it (its data are pre-tokenized; "
                                                   "warmup_ratio, gradient_checkpointing, max_length and "
                                                   "output_dir are its own fields)")
        if key in DATA_ONLY and value != fields[key]:
            raise ConfigError(prefix + key, value, f"{fields[key]!r} (TRL's default): s1kit renders and "
                                                   "tokenizes the rows itself, so it would have no effect")


@functools.lru_cache(maxsize=1)
def sft_fields() -> dict[str, Any]:
    """SFTConfig's init fields and their defaults (None where the default is a factory)."""
    trl = import_trl()
    return {f.name: (None if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(trl.SFTConfig) if f.init}


def import_trl():
    try:
        import trl
    except ImportError as err:
        raise ImportError("training needs TRL: pip install 's1kit[train]'") from err
    return trl


def sft_config(cfg: TrainConfig):
    """TrainConfig -> trl.SFTConfig. Every value is explicit, since TRL's defaults differ from s1's
    (e.g. gradient checkpointing on); ``cfg.sft_args`` come last and TRL validates them."""
    trl = import_trl()
    args = dict(
        output_dir=cfg.output_dir, num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_ratio,
        adam_beta1=cfg.adam_beta1, adam_beta2=cfg.adam_beta2, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, bf16=cfg.bf16, fp16=False, use_cpu=cfg.use_cpu,
        activation_checkpointing=cfg.gradient_checkpointing, seed=cfg.seed, data_seed=cfg.seed,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit, save_only_model=False, logging_steps=cfg.logging_steps,
        report_to=cfg.report_to, run_name=cfg.run_name, push_to_hub=cfg.push_to_hub,
        hub_model_id=cfg.hub_model_id, hub_strategy="end", max_length=cfg.max_length,
        dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False,
        ddp_find_unused_parameters=False, average_tokens_across_devices=True, disable_tqdm=True,
    )
    if cfg.sft_args.get("dataset_num_proc") is not None:
        log.warning("sft_args.dataset_num_proc has no effect: s1kit tokenizes the rows in-process")
    args.update(cfg.sft_args)
    try:
        return trl.SFTConfig(**args)
    except (TypeError, ValueError) as err:
        names = ", ".join(sorted(cfg.sft_args)) or "none"
        raise ConfigError("sft_args" if cfg.sft_args else "train", cfg.sft_args,
                          f"values trl.SFTConfig accepts (passed through: {names}); TRL says: {err}") from None
