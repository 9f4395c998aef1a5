"""`TrainConfig`: one validated, documented dataclass for the SFT stage (s1's train/sft.py, generalised).

    s1kit train --config recipes/s1.1-32b.yaml --dataset data/s1K-1.1.parquet --output-dir ckpts/s1.1
    cfg = TrainConfig(model="Qwen/Qwen2.5-32B-Instruct", dataset="s1K.jsonl", learning_rate=1e-5,
                      sft_args={"lr_scheduler_kwargs": {"min_lr_rate": 0.1}})

The optimisation fields carry trl.SFTConfig's names (learning_rate, num_train_epochs,
per_device_train_batch_size, ...) with s1's values as defaults; any other SFTConfig field goes in
``sft_args`` (see :mod:`s1kit.train.trl_args`, which also reads a recipe section into this class).

No field names a model family, a Hub organisation or a wandb entity: the chat layout comes from the
tokenizer's chat template plus ``completion_format``, and the end-of-turn token from the template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from s1kit.config import ConfigError, check_choice, check_float, check_int
from s1kit.forcing.format import FORMATS

# transformers' SchedulerType values (lr_scheduler_kwargs, e.g. min_lr_rate, pass through in sft_args)
SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial",
             "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
             "warmup_stable_decay", "greedy")
REPORT_TO = ("none", "wandb", "tensorboard")
TRUNCATE_OR_DROP = ("truncate", "drop")
DUPLICATES = ("drop", "keep", "error")
CHAT_TEMPLATES = ("auto", "chatml")
DATA_FORMATS = ("s1", "prompt_completion")
CONDITIONS = ("none", "token", "step", "class")
DTYPES = ("float32", "bfloat16", "float16")


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """Supervised fine-tuning of a causal chat model on (question, thinking, attempt) rows."""

    # -- model -----------------------------------------------------------------------------------
    model: str = field(default="", metadata=_doc(
        "Local model folder or Hub id (a causal LM whose tokenizer has a chat template), or "
        "'tiny:KEY=VAL,...' for a random tiny Qwen2 built in code (keys: hidden, layers, heads, "
        "kv_heads, ffn (0: 4 x hidden), max_positions, seed, init_std)."))
    revision: str | None = field(default=None, metadata=_doc("Hub revision (commit) to pin."))
    tokenizer: str | None = field(default=None, metadata=_doc(
        "Tokenizer folder or Hub id, or 'bytes' (byte-level, built in code); default: the model's own "
        "('bytes' for tiny: models)."))
    attn_implementation: str | None = field(default=None, metadata=_doc(
        "Attention kernel: sdpa, eager, flash_attention_2 ... (default: transformers' choice)."))
    # -- data ------------------------------------------------------------------------------------
    dataset: str = field(default="", metadata=_doc(
        "JSONL or Parquet file, a folder of Parquet files, or 'synth:arith,n=N,seed=S' (built in code)."))
    data_format: str = field(default="s1", metadata=_doc(
        "s1: rows hold question/thinking/attempt, rendered with the chat template and completion_format; "
        "prompt_completion: rows hold already-rendered 'prompt' and 'completion' text used verbatim "
        "(loss on the completion), e.g. a base model's pre-training mix of chat answers and plain documents."))
    condition: str = field(default="none", metadata=_doc(
        "Conditional-control SFT (s1 Table 3): state each trace's own length in its prompt, as "
        "`s1kit eval --prompt-mode` does at test time. token: 'Think for up to N tokens.' (N = the "
        "trace's tokens); step: N = ceil(tokens / condition_tokens_per_step); class: 'short'/'long' "
        "around the median trace; none: the bare question."))
    condition_tokens_per_step: int = field(default=32, metadata=_doc(
        "Thinking tokens per step for condition=step (use the same value as eval's tokens_per_step)."))
    question_field: str = field(default="question", metadata=_doc("Column holding the question."))
    thinking_field: str = field(default="thinking", metadata=_doc(
        "Column holding the reasoning trace (s1K: thinking_trajectories, s1K-1.1: "
        "deepseek_thinking_trajectory); a list of strings is joined with newlines."))
    attempt_field: str = field(default="attempt", metadata=_doc(
        "Column holding the final answer text (s1K: attempt, s1K-1.1: deepseek_attempt)."))
    id_field: str = field(default="id", metadata=_doc("Column holding the row id (row index if absent)."))
    limit: int | None = field(default=None, metadata=_doc("Only the first N rows (None: all)."))
    chat_template: str = field(default="auto", metadata=_doc(
        "auto: the tokenizer's chat template renders the prompt (as `s1kit generate` does; ChatML "
        "with a warning if it has none); chatml: always ChatML."))
    system_prompt: str | None = field(default=None, metadata=_doc(
        "System turn; None keeps the chat template's default (Qwen2.5 adds its own)."))
    completion_format: str = field(default=FORMATS["s1"].completion_template, metadata=_doc(
        "The assistant turn, with {thinking} and {answer} placeholders; the end-of-turn token is "
        "appended. Every token of it carries loss. R1 style: '<think>\\n{thinking}\\n</think>\\n\\n{answer}'."))
    answer_prefix: str = field(default="Answer: ", metadata=_doc(
        "Put before the attempt unless the attempt already contains it (stripped), as s1 does."))
    end_of_turn: str | None = field(default=None, metadata=_doc(
        "Token that ends the assistant turn; None: read from the chat template (<|im_end|> for ChatML)."))
    max_length: int = field(default=32768, metadata=_doc("Maximum tokens per sample (prompt + completion)."))
    truncate_or_drop: str = field(default="drop", metadata=_doc(
        "Samples longer than max_length: 'truncate' (keep the start, as TRL and s1 do) or 'drop'."))
    duplicates: str = field(default="drop", metadata=_doc(
        "Rows whose id was already seen: 'drop' (keep the first), 'keep', or 'error'."))
    # -- optimisation: trl.SFTConfig's names, s1's values (any other SFTConfig field: sft_args) -------
    num_train_epochs: float = field(default=5.0, metadata=_doc("Training epochs."))
    max_steps: int = field(default=-1, metadata=_doc("Stop after this many optimizer steps (overrides "
                                                      "num_train_epochs); -1: no limit."))
    learning_rate: float = field(default=1e-5, metadata=_doc("Peak learning rate."))
    lr_scheduler_type: str = field(default="cosine", metadata=_doc(
        "LR schedule after warmup: " + ", ".join(SCHEDULES) + "."))
    warmup_ratio: float = field(default=0.05, metadata=_doc(
        "Fraction of steps with linear warmup, in [0, 1) (TRL >= 1.16: warmup_steps as a ratio)."))
    adam_beta1: float = field(default=0.9, metadata=_doc("AdamW beta1, in [0, 1)."))
    adam_beta2: float = field(default=0.95, metadata=_doc("AdamW beta2, in [0, 1)."))
    weight_decay: float = field(default=1e-4, metadata=_doc("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_doc("Gradient clipping norm; 0 disables."))
    per_device_train_batch_size: int = field(default=1, metadata=_doc("Samples per device per forward pass."))
    gradient_accumulation_steps: int = field(default=1, metadata=_doc(
        "Micro-batches accumulated per optimizer step (global batch = per_device_train_batch_size x "
        "gradient_accumulation_steps x processes)."))
    bf16: bool = field(default=False, metadata=_doc("bf16 autocast with fp32 master weights (GPU); False: fp32."))
    gradient_checkpointing: bool = field(default=False, metadata=_doc(
        "Recompute activations in the backward pass (not together with FSDP activation checkpointing)."))
    dtype: str = field(default="float32", metadata=_doc(
        "Dtype the weights are loaded in (TRL ModelConfig's dtype / torch_dtype): float32 (master "
        "weights; bf16 then autocasts), bfloat16 or float16 (pure low-precision training)."))
    sft_args: dict = field(default_factory=dict, metadata={"cli": False, "help": (
        "Any other trl.SFTConfig field, passed through and validated by TRL (in a recipe: the "
        "field at the top level of the section; on the command line: --sft-arg KEY=VALUE).")})
    seed: int = field(default=42, metadata=_doc("Seed for initialisation and data order."))
    use_cpu: bool = field(default=False, metadata=_doc("Train on CPU even when a GPU is present."))
    # -- checkpoints, logging, output -------------------------------------------------------------
    output_dir: str = field(default="runs/train", metadata=_doc("Checkpoints and the final model folder."))
    save_steps: int = field(default=0, metadata=_doc(
        "Save a resumable checkpoint (model, optimizer, scheduler, RNG, data position) every N steps; 0: never."))
    save_total_limit: int | None = field(default=2, metadata=_doc("Keep at most this many checkpoints."))
    resume: str | None = field(default=None, metadata=_doc(
        "'auto': resume from the newest complete checkpoint in output_dir if there is one; a "
        "checkpoint folder; None: start fresh."))
    logging_steps: int = field(default=1, metadata=_doc("Log the loss every N steps."))
    report_to: str = field(default="none", metadata=_doc(
        "none, wandb (entity/project from WANDB_ENTITY / WANDB_PROJECT) or tensorboard."))
    run_name: str | None = field(default=None, metadata=_doc("Run name for the tracker."))
    push_to_hub: bool = field(default=False, metadata=_doc("Push the final model to hub_model_id."))
    hub_model_id: str | None = field(default=None, metadata=_doc("Hub repo 'owner/name' for push_to_hub."))
    inspect: bool = field(default=False, metadata=_doc(
        "Check the data, show which tokens of the first sample carry loss, and stop before training."))

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model", self.model, "a model folder, a Hub id or 'tiny:...'")
        if not self.dataset:
            raise ConfigError("dataset", self.dataset, "a JSONL/Parquet path or 'synth:...'")
        for name in ("question_field", "thinking_field", "attempt_field", "id_field"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(name, getattr(self, name), "a non-empty column name")
        if self.limit is not None:
            check_int("limit", self.limit, 1)
        check_choice("chat_template", self.chat_template, CHAT_TEMPLATES)
        check_choice("data_format", self.data_format, DATA_FORMATS)
        check_choice("condition", self.condition, CONDITIONS)
        check_int("condition_tokens_per_step", self.condition_tokens_per_step, 1)
        if self.condition != "none" and self.data_format != "s1":
            raise ConfigError("condition", self.condition, "'none' when data_format is prompt_completion")
        self._check_format()
        check_int("max_length", self.max_length, 8)
        check_choice("truncate_or_drop", self.truncate_or_drop, TRUNCATE_OR_DROP)
        check_choice("duplicates", self.duplicates, DUPLICATES)
        self._check_optim()
        self._check_output()

    def _check_format(self) -> None:
        fmt = self.completion_format
        if not isinstance(fmt, str) or fmt.count("{thinking}") != 1 or fmt.count("{answer}") != 1 \
                or fmt.index("{thinking}") > fmt.index("{answer}"):
            raise ConfigError("completion_format", fmt, "a string with one {thinking} followed by one {answer}")
        if not isinstance(self.answer_prefix, str):
            raise ConfigError("answer_prefix", self.answer_prefix, "a string (may be empty)")
        if self.end_of_turn is not None and (not isinstance(self.end_of_turn, str) or not self.end_of_turn):
            raise ConfigError("end_of_turn", self.end_of_turn, "a non-empty token string or None")

    def _check_optim(self) -> None:
        check_float("num_train_epochs", self.num_train_epochs, 0.0, 1e6, lo_open=True)
        check_int("max_steps", self.max_steps, -1)
        if self.max_steps == 0:
            raise ConfigError("max_steps", 0, "-1 (no limit) or an integer >= 1")
        check_float("learning_rate", self.learning_rate, 0.0, 1.0, lo_open=True)
        check_choice("lr_scheduler_type", self.lr_scheduler_type, SCHEDULES)
        check_float("warmup_ratio", self.warmup_ratio, 0.0, 0.999)
        check_float("adam_beta1", self.adam_beta1, 0.0, 0.999999)
        check_float("adam_beta2", self.adam_beta2, 0.0, 0.999999)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e6)
        check_int("per_device_train_batch_size", self.per_device_train_batch_size, 1)
        check_int("gradient_accumulation_steps", self.gradient_accumulation_steps, 1)
        check_choice("dtype", self.dtype, DTYPES)
        check_int("seed", self.seed, 0)
        if not isinstance(self.sft_args, dict):
            raise ConfigError("sft_args", self.sft_args, "a mapping of trl.SFTConfig field names to values")
        if self.sft_args:
            from s1kit.train.trl_args import check_sft_args

            check_sft_args(self.sft_args)

    def _check_output(self) -> None:
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ConfigError("output_dir", self.output_dir, "a folder path")
        check_int("save_steps", self.save_steps, 0)
        if self.save_total_limit is not None:
            check_int("save_total_limit", self.save_total_limit, 1)
        if self.resume is not None and not (isinstance(self.resume, str) and self.resume):
            raise ConfigError("resume", self.resume, "'auto', a checkpoint folder, or None")
        check_int("logging_steps", self.logging_steps, 1)
        check_choice("report_to", self.report_to, REPORT_TO)
        if self.push_to_hub and not self.hub_model_id:
            raise ConfigError("hub_model_id", self.hub_model_id, "'owner/name' when push_to_hub is true")
