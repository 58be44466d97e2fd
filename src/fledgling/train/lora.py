"""The `lora` backend: transformers + PEFT + TRL's SFTTrainer, on CPU or CUDA.

Importing this module imports transformers (seconds); the CLI imports it only to train.

The run is four visible steps — load, tokenize, train, save — with the knobs in `TrainSpec`.
`method="full"` trains every weight of the base instead of LoRA adapters (the 135M model fits a
small CPU's memory: weights, gradients and AdamW state are 16 bytes a parameter); the run then
saves the whole model (`merged/`), which loads and serves like a merged adapter.
Loss falls on the assistant's tokens only (TRL's `assistant_only_loss` with the specialist
chat template's `{% generation %}` markers). The val split is evaluated every epoch; training
stops early when val loss stops improving (or, with `select_on="answers"`, the share of val
answers generated exactly right, `train.answer_probe`) and the best epoch is what gets saved. A checkpoint
is written every epoch, and `--resume` continues from the newest one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from fledgling.models import manifest
from fledgling.models.specialist import CHAT_TEMPLATE, FORMAT_IDS
from fledgling.train import conversations
from fledgling.train.backend import Plan, Reporter, Result, TrainingError, TrainSpec
from fledgling.train.bases import load_base, resolve_base
from fledgling.train.dataset import Dataset

ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
CHECKPOINTS_DIR = "checkpoints"


class LoraBackend:
    name = "lora"

    def prepare(self, spec: TrainSpec, data: Dataset, run_dir: Path) -> Plan:
        """Render the splits into the specialist chat format and write them next to the run."""
        files, counts = write_chats(spec, data, run_dir / "data")
        return Plan(spec, data, run_dir, files=files,
                    details={"device": device_name(), "checkpoints": str(run_dir / CHECKPOINTS_DIR), **counts})

    def run(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result:
        if plan.spec.launcher == "accelerate":
            from fledgling.train.launcher import launch

            return launch(plan, reporter)
        return self.train_here(plan, reporter, callbacks=callbacks)

    def train_here(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result:
        """Train in this process (a launched worker calls this directly)."""
        spec = plan.spec
        quiet_libraries()

        # 1. load: the base model (dequantised to fp32 when it is a GGUF) and its tokenizer
        reporter.update(state="loading", message=f"loading {spec.base}")
        base = resolve_base(spec.base)
        model, tokenizer = load_base(base)
        return fit(plan, reporter, model, tokenizer, base_sha256=base.sha256(),
                   base_files=[p.name for p in base.files], callbacks=callbacks)


def fit(plan: Plan, reporter: Reporter, model: Any, tokenizer: Any, *, base_sha256: str | None,
        base_files: list[str], callbacks: list[Any] | None = None, peft: bool = True) -> Result:
    """Steps 2-4 of a run, shared by the `lora` and `unsloth` backends."""
    spec, run_dir = plan.spec, plan.run_dir
    tokenizer.chat_template = CHAT_TEMPLATE

    # 2. tokenize: TRL renders each chat with the template and masks all but the answers
    progress = ProgressCallback(reporter)
    trainer = build_trainer(plan, model, tokenizer, [progress, *(callbacks or [])], peft=peft)
    train_tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    supervised = sum(sum(1 for t in labels if t != -100) for labels in trainer.train_dataset["labels"])

    # 3. train (from the newest checkpoint when resuming)
    checkpoint = latest_checkpoint(run_dir) if plan.resume else None
    reporter.update(state="training",
                    message=f"resuming from {checkpoint.name}" if checkpoint else "training")
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    # 4. save: the adapter (and, when asked, the merged weights) with the manifest
    reporter.update(state="saving", message="saving adapter")
    history = trainer.state.log_history
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    losses = [h["loss"] for h in history if "loss" in h]
    runtime = output.metrics.get("train_runtime") or 0.0
    eval_runtime = sum(h.get("eval_runtime", 0.0) for h in history)
    metrics = {
        "global_step": trainer.state.global_step,
        "epochs_completed": trainer.state.epoch,
        "steps_this_run": progress.steps_seen,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "eval_loss_per_epoch": eval_losses,
        "eval_answer_exact_per_epoch": [h["eval_answer_exact"] for h in history if "eval_answer_exact" in h],
        "selected_on": trainer.args.metric_for_best_model,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        "best_metric": trainer.state.best_metric,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name
        if trainer.state.best_model_checkpoint else None,
        "stopped_early": bool(eval_losses) and trainer.state.epoch < spec.epochs,
        "train_examples": plan.details.get("train_examples", len(trainer.train_dataset)),
        "train_chats": len(trainer.train_dataset),
        "length_fit": {k: plan.details[k] for k in ("train_fit", "val_fit") if k in plan.details},
        "val_examples": plan.details.get("val_examples", 0),
        "val_chats": len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
        "train_tokens_per_epoch": train_tokens,
        "supervised_tokens_per_epoch": supervised,
        "train_runtime_s": runtime,
        "eval_runtime_s": eval_runtime,
        "train_tokens_per_s": (train_tokens * progress.epochs_seen / (runtime - eval_runtime)
                               if runtime > eval_runtime else None),
        "device": device_name(),
        "precision": "bf16" if trainer.args.bf16 else "fp32",
    }
    if not trainer.is_world_process_zero():
        return Result(metrics=metrics)
    artifacts = save(trainer, tokenizer, run_dir, merge=spec.merge, full=spec.method == "full")
    info = build_manifest(plan, base_files, base_sha256, metrics, artifacts)
    manifest.write(run_dir, info)
    entry: dict[str, Any] = {"kind": "hf", "origin": "merged", "base": spec.base,
                             "path": str(artifacts["merged"].resolve())} if spec.method == "full" else \
        {"kind": "hf", "origin": "adapter", "base": spec.base, "adapter": str(artifacts["adapter"].resolve())}
    return Result(artifacts={**artifacts, "manifest": run_dir / manifest.MANIFEST}, metrics=metrics,
                  model={**entry, "manifest": info})


def build_trainer(plan: Plan, model: Any, tokenizer: Any, callbacks: list[Any], *, peft: bool = True) -> Any:
    """The SFTTrainer for a plan: LoRA on every linear layer (or, with `method="full"`, every
    weight trained), assistant-only loss, eval per epoch.

    `peft=False` when the model already carries its adapter (Unsloth attaches its own)."""
    import torch
    from datasets import Dataset as HFDataset
    from peft import LoraConfig
    from transformers import EarlyStoppingCallback, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from fledgling.train.answer_loss import AnswerLossTrainer

    spec, run_dir = plan.spec, plan.run_dir
    train_rows, plan.details["train_fit"] = fit_to_length(_read_jsonl(plan.files["train"]), tokenizer,
                                                          spec.max_length)
    if not train_rows:
        raise TrainingError(f"no training example fits --max-length {spec.max_length}, even with its "
                            "history trimmed (the system line and the answer alone are longer); "
                            "raise --max-length")
    train_ds = HFDataset.from_list(train_rows)
    val_ds = None
    if "val" in plan.files:
        val_rows, plan.details["val_fit"] = fit_to_length(_read_jsonl(plan.files["val"]), tokenizer,
                                                          spec.max_length)
        val_ds = HFDataset.from_list(val_rows) if val_rows else None
    cuda = torch.cuda.is_available()
    has_val = val_ds is not None
    by_answers = has_val and peft and spec.select_on == "answers"
    args = SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        num_train_epochs=spec.epochs,
        learning_rate=spec.lr,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum,
        lr_scheduler_type="linear",
        warmup_steps=0,
        max_length=spec.max_length,
        assistant_only_loss=True,
        activation_checkpointing=False,
        bf16=use_bf16(spec),
        fp16=False,
        use_cpu=not cuda,
        seed=spec.seed,
        data_seed=spec.seed,
        eval_strategy="epoch" if has_val else "no",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=has_val,
        metric_for_best_model=(("eval_answer_exact" if by_answers else "eval_loss") if has_val else None),
        greater_is_better=by_answers if has_val else None,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    peft_config = LoraConfig(r=spec.rank, lora_alpha=spec.lora_alpha, lora_dropout=spec.dropout,
                             target_modules=spec.target_modules, bias="none",
                             task_type="CAUSAL_LM") if peft and spec.method == "lora" else None
    if has_val:
        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=spec.patience)]
    trainer_cls = AnswerLossTrainer if peft else SFTTrainer  # Unsloth patches its own loss
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                          processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    if by_answers and isinstance(trainer, AnswerLossTrainer):
        from fledgling.train.answer_probe import AnswerProbe

        trainer.answer_probe = AnswerProbe(val_rows, tokenizer, spec.probe_answers)
    return trainer


def fit_to_length(rows: list[dict[str, Any]], tokenizer: Any,
                  max_length: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Make every chat fit `max_length` tokens by dropping its oldest turns (whole user-led
    exchanges; system context and the last answer stay). Cutting the end instead would cut the
    answer. Answers to learn among the dropped turns are not lost: the dropped part becomes a
    chat of its own, up to its last learnt answer. A chat that cannot fit even then is left out,
    and counted."""
    kept, trimmed, split_off, dropped = [], 0, 0, 0
    queue = [row["messages"] for row in rows]
    while queue:
        messages = queue.pop(0)
        k = 0
        while k < len(messages) - 1 and messages[k]["role"] == "system":
            k += 1
        head, body = messages[:k], messages[k:]
        n = _chat_tokens(tokenizer, head + body)
        cut: list[dict[str, Any]] = []
        while n > max_length and len(body) > 1:
            drop = 1
            while drop < len(body) - 1 and body[drop]["role"] != "user":
                drop += 1
            cut, body = cut + body[:drop], body[drop:]
            n = _chat_tokens(tokenizer, head + body)
        if n > max_length:
            dropped += 1
            continue
        trimmed += bool(cut)
        kept.append({"messages": head + body})
        learnt = [i for i, m in enumerate(cut) if m["role"] == "assistant" and m.get("train") is not False]
        if learnt:
            queue.append(head + cut[:learnt[-1] + 1])
            split_off += 1
    return kept, {"chats": len(rows), "history_trimmed": trimmed, "split_off": split_off,
                  "dropped_too_long": dropped}


def _chat_tokens(tokenizer: Any, messages: list[dict[str, Any]]) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def quiet_libraries() -> None:
    """Our progress bar replaces the libraries' own bars and log prints."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def write_chats(spec: TrainSpec, data: Dataset, out: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """Each split as `{"messages": [...]}` lines in the specialist prompt format, its examples
    folded into conversations (`conversations.fold`); returns the files and the example counts."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for split in ("train", "val"):
        examples = data.split(split, spec.max_examples if split == "train" else _val_limit(spec))
        if not examples:
            continue
        path = out / f"{split}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for chat in conversations.fold(examples, task=spec.task, signatures=spec.prompt == "compact"):
                f.write(json.dumps({"messages": chat}, ensure_ascii=False) + "\n")
        tmp.replace(path)
        files[split] = path
        counts[f"{split}_examples"] = len(examples)
    return files, counts


def save(trainer: Any, tokenizer: Any, run_dir: Path, *, merge: bool, full: bool = False) -> dict[str, Path]:
    """Adapter (+ tokenizer and chat template) always; merged fp32 weights when asked. A full
    fine-tune has no adapter: its whole model is saved as `merged/`."""
    model = trainer.model
    if full:
        merged_dir = run_dir / MERGED_DIR
        model.save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
        (merged_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
        return {"merged": merged_dir}
    adapter_dir = run_dir / ADAPTER_DIR
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    out = {"adapter": adapter_dir}
    if merge:
        merged_dir = run_dir / MERGED_DIR
        merged = model.merge_and_unload()
        merged.save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
        (merged_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
        out["merged"] = merged_dir
    return out


def load_trained(run_dir: Path, *, merged: bool = False) -> tuple[Any, Any]:
    """A trained model ready for inference: base + adapter (or the merged weights), eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = manifest.read(run_dir)
    run_dir = Path(run_dir)
    model: Any  # a transformers model, or a PeftModel wrapping one
    if merged:
        model = AutoModelForCausalLM.from_pretrained(run_dir / MERGED_DIR)
        tokenizer = AutoTokenizer.from_pretrained(run_dir / MERGED_DIR)
    else:
        base, _ = load_base(resolve_base(info["base_model"]["name"]))
        model = PeftModel.from_pretrained(base, run_dir / ADAPTER_DIR)
        tokenizer = AutoTokenizer.from_pretrained(run_dir / ADAPTER_DIR)
    tokenizer.chat_template = CHAT_TEMPLATE
    model.eval()
    return model, tokenizer


def build_manifest(plan: Plan, base_files: list[str], base_sha256: str | None, metrics: dict[str, Any],
                   artifacts: dict[str, Path]) -> dict[str, Any]:
    spec = plan.spec
    return manifest.build(
        task=spec.task, backend=spec.backend,
        base_model={"name": spec.base, "files": base_files, "sha256": base_sha256},
        dataset=plan.data.describe(),
        hyperparameters=spec.model_dump(exclude={"task", "backend", "base", "seed"}),
        seed=spec.seed, metrics=metrics, prompt_format=FORMAT_IDS[spec.prompt], copy_rules=plan.data.copy_rules(),
        call_rules=plan.data.call_rules(),
        artifacts={k: str(v.relative_to(plan.run_dir)) for k, v in artifacts.items()},
    )


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return ckpts[-1] if ckpts else None


def use_bf16(spec: TrainSpec) -> bool:
    """bf16 autocast (weights and optimizer stay fp32): on a GPU with bf16, and on a CPU with
    bf16 units, where it and LoRA dropout 0 train faster (`benchmarks/train_throughput.py`, docs/training.md)."""
    import torch

    if spec.precision != "auto":
        return spec.precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    from fledgling.models.local import cpu_has_bf16

    return cpu_has_bf16()


def device_name() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def _val_limit(spec: TrainSpec) -> int | None:
    return max(8, spec.max_examples // 4) if spec.max_examples else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class ProgressCallback(TrainerCallback):
    """Forwards the trainer's steps, losses and evals to the reporter (bar + status record)."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.steps_seen = 0
        self.epochs_seen = 0.0
        self._start_epoch: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._start_epoch = state.epoch or 0.0
        self.reporter.update(step=state.global_step, total_steps=state.max_steps, epoch=state.epoch,
                             state="training")

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.steps_seen += 1
        self.epochs_seen = (state.epoch or 0.0) - (self._start_epoch or 0.0)
        self.reporter.update(step=state.global_step, total_steps=state.max_steps, epoch=state.epoch)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kw: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            self.reporter.update(loss=float(logs["loss"]), epoch=state.epoch)
        evals = {k: v for k, v in logs.items() if k.startswith("eval_")}
        if evals:
            self.reporter.update(metrics=evals, epoch=state.epoch)
