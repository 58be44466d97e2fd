"""The `dry-run` backend: what a training run would cost, before paying for it.

It checks every line of the dataset, tokenises each example in the specialist prompt and in
the full prompt the base model would otherwise get, and reports token counts, how many
examples exceed `max_length`, and time and memory per backend. The local figure is measured,
not guessed: it times two real LoRA training steps where the dry run runs. GPU figures are
arithmetic from the model size and a stated throughput assumption, labelled as such.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from fledgling.calls import Request
from fledgling.models.specialist import CHAT_TEMPLATE, render_example
from fledgling.train.backend import Plan, Reporter, Result, TrainSpec
from fledgling.train.bases import load_base, resolve_base
from fledgling.train.dataset import Dataset, Example

# Assumed sustained bf16 throughput of one data-centre GPU for LoRA training (an A10G-class
# card at ~35% of its 125 TFLOPS peak). An assumption, printed with the estimate.
GPU_ASSUMED_TFLOPS = 44.0
MEASURE_STEPS = 2
MEASURE_BATCH = 2
MEASURE_LENGTH = 256  # a short probe: tokens/s barely depends on length at these sizes


class DryRunBackend:
    name = "dry-run"

    def prepare(self, spec: TrainSpec, data: Dataset, run_dir: Path) -> Plan:
        from fledgling.train.lora import quiet_libraries

        quiet_libraries()
        base = resolve_base(spec.base)
        model, tokenizer = load_base(base)
        tokenizer.chat_template = CHAT_TEMPLATE
        examples = data.split("train", spec.max_examples)
        signatures = spec.prompt == "compact"
        tokens = token_report(examples, tokenizer, task=spec.task, max_length=spec.max_length,
                              signatures=signatures)
        val = token_report(data.split("val"), tokenizer, task=spec.task, max_length=spec.max_length,
                           signatures=signatures)
        n_params = sum(p.numel() for p in model.parameters())
        shape = model.config.get_text_config()
        act_bytes = activation_bytes(spec, shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers)
        throughput = measure_lora_throughput(model, tokenizer, examples, spec)
        report = {
            "dataset": data.describe(),
            "base": {"name": spec.base, "parameters": n_params},
            "train": tokens, "val": val,
            "estimates": estimates(spec, tokens, n_params, throughput, act_bytes),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "dry_run.json"
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return Plan(spec, data, run_dir, files={"report": path}, details=report)

    def run(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result:
        reporter.update(state="saving", message="dry run: nothing to train")
        return Result(artifacts=dict(plan.files), metrics=plan.details)


def token_report(examples: list[Example], tokenizer: Any, *, task: str, max_length: int,
                 signatures: bool = False) -> dict[str, Any]:
    """Token counts of the specialist chat (what we train on) and of the full prompt it replaces."""
    from fledgling.models.prompting import render_prompt

    compact, answers, full = [], [], []
    for ex in examples:
        chat = render_example(ex.messages, ex.tools, task=task, response_format=ex.response_format,
                              signatures=signatures)
        ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"]
        compact.append(len(ids))
        answers.append(len(tokenizer(chat[-1]["content"] + "<|im_end|>", add_special_tokens=False).input_ids))
        request = Request(messages=ex.messages[:-1], tools=ex.tools, response_format=ex.response_format)
        prompt = render_prompt(tokenizer, request, native_tools=False)
        full.append(len(tokenizer(prompt, add_special_tokens=False).input_ids) + answers[-1])
    if not examples:
        return {"examples": 0}
    return {
        "examples": len(examples),
        "tokens": sum(compact),
        "answer_tokens": sum(answers),
        "mean_tokens": statistics.fmean(compact),
        "max_tokens": max(compact),
        "over_max_length": sum(1 for n in compact if n > max_length),
        "full_prompt_tokens": sum(full),
        "compact_saves": 1 - sum(compact) / sum(full),
    }


def measure_lora_throughput(model: Any, tokenizer: Any, examples: list[Example], spec: TrainSpec) -> dict[str, Any]:
    """Time a few real LoRA steps (forward, backward, AdamW) on a small batch of the data; with
    `method="full"`, steps that train every weight."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(spec.seed)
    peft_model = model if spec.method == "full" else get_peft_model(model, LoraConfig(
        r=spec.rank, lora_alpha=spec.lora_alpha, target_modules=spec.target_modules, task_type="CAUSAL_LM"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peft_model.to(device).train()
    batch_chats = [render_example(ex.messages, ex.tools, task=spec.task, response_format=ex.response_format,
                                  signatures=spec.prompt == "compact")
                   for ex in examples[:MEASURE_BATCH]]
    enc = tokenizer.apply_chat_template(batch_chats, tokenize=True, return_dict=True, padding=True,
                                        truncation=True, max_length=min(spec.max_length, MEASURE_LENGTH),
                                        return_tensors="pt")
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=spec.lr)
    timings = []
    for _ in range(MEASURE_STEPS + 1):  # the first step warms up and is not counted
        started = time.perf_counter()
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        timings.append(time.perf_counter() - started)
    per_step = statistics.fmean(timings[1:])
    tokens = int(mask.sum())
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    peft_model.unload()
    return {"device": device, "tokens_per_s": tokens / per_step, "s_per_step": per_step,
            "batch_tokens": tokens, "trainable_parameters": trainable}


def activation_bytes(spec: TrainSpec, hidden: int, intermediate: int, layers: int) -> int:
    """Approximate bf16 activations kept for backward by one batch of full-length sequences:
    about ten hidden-size tensors (attention) and three intermediate-size ones (MLP) per layer."""
    return spec.batch_size * spec.max_length * layers * (10 * hidden + 3 * intermediate) * 2


def estimates(spec: TrainSpec, tokens: dict[str, Any], n_params: int,
              local: dict[str, Any], activations: int) -> dict[str, Any]:
    """Time and memory per backend for `spec.epochs` epochs over the train split.

    GPU time: ~6 FLOPs per parameter per token (forward, backward) at the assumed throughput.
    Memory: weights (fp32 on CPU, 4-bit for QLoRA, bf16 otherwise) plus activations (twice as
    many bytes in fp32).
    """
    total = tokens["tokens"] * spec.epochs
    lora_gpu_s = 6 * n_params * total / (GPU_ASSUMED_TFLOPS * 1e12)
    return {
        "lora": {"where": local["device"], "measured_tokens_per_s": round(local["tokens_per_s"], 1),
                 "seconds": round(total / local["tokens_per_s"], 1),
                 "memory_mb": round((n_params * (4 if local["device"] == "cpu" else 2)
                                     + activations * (2 if local["device"] == "cpu" else 1)) / 2**20)},
        "unsloth": {"where": "1 CUDA GPU (QLoRA 4-bit)", "assumption": f"{GPU_ASSUMED_TFLOPS:.0f} TFLOPS",
                    "seconds": round(lora_gpu_s, 1),
                    "memory_mb": round((n_params * 0.5 + activations) / 2**20)},
        "accelerate": {"where": f"{spec.num_processes} CUDA GPU(s), DeepSpeed ZeRO-2",
                       "assumption": f"{GPU_ASSUMED_TFLOPS:.0f} TFLOPS each",
                       "seconds": round(lora_gpu_s / spec.num_processes, 1),
                       "memory_mb_per_gpu": round((n_params * 2 + activations) / 2**20)},
        "openai": {"where": "hosted", "billed_training_tokens": total,
                   "note": "hosted fine-tuning bills tokens x epochs; see the provider's price list"},
    }
