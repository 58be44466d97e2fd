"""The `fledgling demo` training stage: a LoRA adapter for `support-agent`, on CPU, in minutes.

The whole demo must stay under 15 minutes on a 2-core machine, so training gets about four of
them. What fits: the first `EXAMPLES` curated train examples (about half the split), in the
lean specialist prompt, folded into their conversations (each answer learnt once; 44k tokens,
not the 119k of the examples one by one) and cut to `MAX_LENGTH`, for one epoch in micro-batches
of one (no padding; ~100 optimizer steps), with bf16 autocast where the CPU has it. Its measured
time is in docs/training.md ("Speed on a small CPU"). The adapter becomes the task's selected candidate; it is
then evaluated on the same test items as the base SLM and the recorded LLM (by the eval stage's
`evaluate_on_demo`), free and constrained, and the task's report is rewritten with all of them:
base vs tuned vs recorded.
"""

from __future__ import annotations

from typing import Any

from fledgling.models import catalog
from fledgling.train.backend import TrainSpec
from fledgling.train.orchestrator import train
from fledgling.train.progress import TerminalView

TASK = "support-agent"
EXAMPLES = 400
EPOCHS = 1
MAX_LENGTH = 384
LEARNING_RATE = 2e-3
RANK = 16
MICRO_BATCH, GRAD_ACCUM = 1, 2


def train_support_agent(ctx: Any) -> str:
    """Demo stage: train, select, evaluate, refresh the report; the outcome is left in
    `ctx.results["trained"][task]`."""
    from fledgling.contracts import load_contract
    from fledgling.demo.eval_stage import BASE_SLM, BATCH, MAX_NEW_TOKENS, evaluate_on_demo, write_reports
    from fledgling.models.spec import ModelSpec, allows_text, open_local

    dataset = (ctx.results.get("datasets") or {}).get(TASK)
    spec = TrainSpec(task=TASK, epochs=EPOCHS, max_examples=EXAMPLES, max_length=MAX_LENGTH,
                     lr=LEARNING_RATE, rank=RANK, batch_size=MICRO_BATCH, grad_accum=GRAD_ACCUM, seed=ctx.seed)
    with TerminalView(ctx.console, title=f"lora {TASK}") as view:
        outcome = train(spec, ctx.store, dataset_dir=getattr(dataset, "path", None), view=view)
    entry = catalog.select_model(ctx.store, TASK, outcome.run_id)
    ctx.results.setdefault("trained", {})[TASK] = outcome
    assert outcome.result is not None  # not a dry run: the run produced a result
    m = outcome.result.metrics
    ctx.console.print(f"  trained {outcome.run_id}: {m['train_examples']} examples, {m['global_step']} steps, "
                      f"loss {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}, "
                      f"{m['train_tokens_per_s']:.0f} tokens/s -> {outcome.plan.run_dir}")

    tuned = ModelSpec(outcome.run_id, entry.settings())
    contract = (ctx.results.get("contracts") or {}).get(TASK) or load_contract(ctx.store, TASK)
    with ctx.console.status(f"loading {tuned.name}"):
        slm = open_local(tuned, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)  # in its trained prompt
    scores = []
    for constrained in (False, True):
        variant = slm.variant(constrained=constrained, task=TASK, allow_text=allows_text(contract))
        run = evaluate_on_demo(ctx, TASK, tuned, constrained=constrained, backend=variant)
        success = run.summary["metrics"].get("success")
        label = "tuned constrained" if constrained else "tuned"
        scores.append(f"{label} {success['mean']:.0%}" if success else f"{label} n/a")
    verdicts = write_reports(ctx, [TASK])
    needs_call = tool_call_summary(ctx.results.get("report_data", {}).get(TASK) or {},
                                   {outcome.run_id: "tuned", BASE_SLM: "base", "recorded": "recorded LLM"})
    return (f"{TASK}: LoRA r={RANK} on {m['train_examples']} examples in {m['train_runtime_s']:.0f} s; "
            f"success on the test items: {', '.join(scores)}.{needs_call} Report: {'; '.join(verdicts)}")


def tool_call_summary(report: dict[str, Any], names: dict[str, str]) -> str:
    """One sentence: right tool and exact arguments per run, on the test items whose answer is a
    tool call; `names` shortens model names in the run labels."""
    rows = report.get("tool_call_items") or {}
    if not rows:
        return ""
    n = next(iter(rows.values()))["n"]
    parts = []
    for label, row in rows.items():
        for long, short in names.items():
            label = label.replace(long, short)
        tool, args = row["tool_name_match"], row["args_exact_match"]
        parts.append(f"{label.replace(' prompt', '')} {tool['mean']:.0%} [{tool['low']:.0%}, {tool['high']:.0%}] / "
                     f"{args['mean']:.0%}")
    return f" On the {n} items that need a tool call, right tool [95% CI] / exact arguments: " + "; ".join(parts) + "."
