"""The `fledgling demo` training stage: a LoRA adapter for `support-agent`, on CPU, in minutes.

The whole demo must stay under 15 minutes on a 2-core machine, where SmolLM2-135M LoRA trains
at 50-300 tokens per second (busy vs idle). So the stage trains on a slice of the curated train
split in the specialist prompt (a quarter of the full prompt's tokens; ~420 tokens an example,
two thirds of them the tool signatures), with long chats trimmed to `MAX_LENGTH`, for one
epoch: ~40k tokens, 2-3 minutes on an idle machine; the adapter becomes the task's selected candidate, which the
eval stage then compares with the base model and the recorded LLM.
"""

from __future__ import annotations

from typing import Any

from fledgling.models import catalog
from fledgling.train.backend import TrainSpec
from fledgling.train.progress import TerminalView
from fledgling.train.runner import train

TASK = "support-agent"
EXAMPLES = 96
EPOCHS = 1
MAX_LENGTH = 512
LEARNING_RATE = 1e-3
RANK = 16


def train_support_agent(ctx: Any) -> str:
    """Demo stage: train, select, and leave the outcome in `ctx.results["trained"][task]`."""
    datasets = ctx.results.get("datasets") or {}
    dataset = datasets.get(TASK)
    spec = TrainSpec(task=TASK, epochs=EPOCHS, max_examples=EXAMPLES, max_length=MAX_LENGTH,
                     lr=LEARNING_RATE, rank=RANK, seed=ctx.seed)
    with TerminalView(ctx.console, title=f"lora {TASK}") as view:
        outcome = train(spec, ctx.store, dataset_dir=getattr(dataset, "path", None), view=view)
    catalog.select_model(ctx.store, TASK, outcome.run_id)
    ctx.results.setdefault("trained", {})[TASK] = outcome
    m = outcome.result.metrics
    evals = m["eval_loss_per_epoch"]
    val = f", val loss {evals[-1]:.3f}" if evals else ""
    return (f"{TASK}: LoRA r={RANK} on {m['train_examples']} examples, {m['global_step']} steps, "
            f"loss {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}{val}, "
            f"{m['train_tokens_per_s']:.0f} tokens/s; selected {outcome.run_id} as the candidate")
