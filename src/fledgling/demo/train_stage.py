"""The `fledgling demo` training stage: a tuned specialist per demo task, on CPU, in minutes.

Each task (support-agent's tool calls, ticket-triage's structured answers) is trained the same
way, with its `RECIPES` entry: the first `max_examples` curated train examples (their labels
cleaned by curation's label checks, which the demo runs with flagged examples dropped from
train and val), in the lean specialist prompt, folded into their conversations (each answer
learnt once) and cut to `MAX_LENGTH`, in micro-batches of one (no padding), with bf16 autocast
where the CPU has it. `benchmarks/train_recipe.py` measures recipes on val (docs/training.md,
"Recipe"). The tuned model (a LoRA adapter, or a full fine-tune) becomes the task's selected
candidate; it is then evaluated on the same test items as the base SLM and the recorded LLM
(by the eval stage's `evaluate_on_demo`), free and constrained, and the task's report is
rewritten with all of them: base vs tuned vs recorded. Last, `final_comparison` scores tuned and
recorded on up to `FINAL_ITEMS` test items that are calls (support-agent: items whose reference
calls a tool; ticket-triage: every item), so the specialist's main figure has an interval of
about +-10 points rather than +-20.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fledgling.models import catalog
from fledgling.train.backend import TrainSpec
from fledgling.train.orchestrator import train
from fledgling.train.progress import TerminalView

TASKS = ("support-agent", "ticket-triage")
# Per task: "full", chosen on val (docs/training.md, "Recipe"): every curated train example; for
# support-agent three epochs of a full fine-tune (every weight of the 135M model, lr 1e-4: on its
# 54 val call items exact arguments 90.7%, against 87.0% for LoRA r=16 in the same run, at 1.4x
# the CPU minutes), for ticket-triage two epochs of LoRA (86-92% exact on test already); and
# "quick" (`fledgling demo --quick`), the recipe the demo trained before, a fraction of the time.
FULL = {"max_examples": None, "epochs": 2, "lr": 2e-3, "rank": 16}
QUICK = {"max_examples": 400, "epochs": 1, "lr": 2e-3, "rank": 16}
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "support-agent": {"full": {**FULL, "epochs": 3, "method": "full", "lr": 1e-4}, "quick": QUICK},
    "ticket-triage": {"full": FULL, "quick": QUICK},
}
MAX_LENGTH = 384
MICRO_BATCH, GRAD_ACCUM = 1, 2
FINAL_ITEMS = 100
MAIN_METRIC = {"support-agent": "args_exact_match", "ticket-triage": "exact_match"}


def train_tasks(ctx: Any) -> str:
    """Demo stage: train, select, evaluate and report each task; outcomes in `ctx.results["trained"]`."""
    return " ".join(train_task(ctx, task) for task in TASKS)


def train_task(ctx: Any, task: str) -> str:
    """Train one task's adapter, select it, evaluate it like the baselines and refresh the report."""
    from fledgling.contracts import load_contract
    from fledgling.demo.eval_stage import BASE_SLM, BATCH, MAX_NEW_TOKENS, evaluate_on_demo, write_reports
    from fledgling.models.spec import ModelSpec, allows_text, open_local

    dataset = (ctx.results.get("datasets") or {}).get(task)
    recipe = RECIPES[task]["quick" if ctx.quick else "full"]
    spec = TrainSpec(task=task, max_length=MAX_LENGTH, batch_size=MICRO_BATCH, grad_accum=GRAD_ACCUM,
                     seed=ctx.seed, **recipe)
    method = "full fine-tune" if spec.method == "full" else f"LoRA r={spec.rank}"
    with TerminalView(ctx.console, title=f"{method} {task}") as view:
        outcome = train(spec, ctx.store, dataset_dir=getattr(dataset, "path", None), view=view)
    entry = catalog.select_model(ctx.store, task, outcome.run_id)
    ctx.results.setdefault("trained", {})[task] = outcome
    assert outcome.result is not None  # not a dry run: the run produced a result
    m = outcome.result.metrics
    ctx.console.print(f"  trained {outcome.run_id}: {m['train_examples']} examples, {m['global_step']} steps, "
                      f"loss {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}, "
                      f"{m['train_tokens_per_s']:.0f} tokens/s -> {outcome.plan.run_dir}")

    tuned = ModelSpec(outcome.run_id, entry.settings())
    contract = (ctx.results.get("contracts") or {}).get(task) or load_contract(ctx.store, task)
    with ctx.console.status(f"loading {tuned.name}"):
        slm = open_local(tuned, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH)  # in its trained prompt
    scores = []
    for constrained in (False, True):
        variant = slm.variant(constrained=constrained, task=task, allow_text=allows_text(contract))
        run = evaluate_on_demo(ctx, task, tuned, constrained=constrained, backend=variant)
        success = run.summary["metrics"].get("success")
        label = "tuned constrained" if constrained else "tuned"
        scores.append(f"{label} {success['mean']:.0%}" if success else f"{label} n/a")
    verdicts = write_reports(ctx, [task])
    needs_call = tool_call_summary(ctx.results.get("report_data", {}).get(task) or {},
                                   {outcome.run_id: "tuned", BASE_SLM: "base", "recorded": "recorded LLM"})
    final = final_comparison(ctx, task, slm.variant(constrained=True, task=task, allow_text=allows_text(contract)))
    epochs = f"{recipe['epochs']} epoch" + ("s" if recipe["epochs"] > 1 else "")
    return (f"{task}: {method}, {epochs} on {m['train_examples']} examples in {m['train_runtime_s']:.0f} s; "
            f"success on the test items: {', '.join(scores)}.{needs_call} {final} Report: {'; '.join(verdicts)}.")


def final_comparison(ctx: Any, task: str, tuned: Any) -> str:
    """Tuned (constrained) vs the recorded LLM on up to `FINAL_ITEMS` test items that are calls,
    scored against the references; not stored as runs, so the report keeps its paired runs."""
    from fledgling.evals.runs import evaluate, load_items, reference_of, task_contract
    from fledgling.evals.stats import wilson_interval
    from fledgling.models.spec import open_backend, resolve_model

    _, contract_version, items = load_items(ctx.store, task, "test")
    if task == "support-agent":
        items = [i for i in items if (ref := reference_of(i.call)) is not None and ref[0].tool_calls]
    items = items[:FINAL_ITEMS]
    if not items:
        return ""
    contract = task_contract(ctx.store, task, contract_version, items)
    recorded = open_backend(resolve_model("recorded"), recorded_calls=(i.call for i in items))
    metric = MAIN_METRIC[task]
    parts = []
    figures: dict[str, Any] = {"n": len(items), "metric": metric}
    held = dict(getattr(tuned, "copy_counts", {}))
    for label, backend in (("tuned", tuned), ("recorded LLM", recorded)):
        with ctx.console.status(f"{label} on {len(items)} {task} test call items"):
            results = asyncio.run(evaluate(items, backend, contract, chunk=getattr(backend, "batch_size", 16)))
        hits = sum(1 for r in results if r.scores.get(metric) == 1.0)
        low, high = wilson_interval(hits, len(results))
        figures[label] = {"mean": hits / len(results), "low": low, "high": high}
        parts.append(f"{label} {hits / len(results):.0%} [{low:.0%}, {high:.0%}]")
    copied = {k: v - held.get(k, 0) for k, v in getattr(tuned, "copy_counts", {}).items()}
    if copied.get("held"):
        figures["copy_guard"] = copied
        ctx.console.print(f"  copied values held to the conversation: {copied['held']} tokens, the model's "
                          f"first choice refused {copied.get('refused', 0)} times (docs/engine.md)")
    if copied.get("calls_dropped"):
        ctx.console.print(f"  repeated calls left out of the answers: {copied['calls_dropped']} "
                          f"(call rules {', '.join(getattr(tuned, 'call_rules', ()))}; docs/curation.md)")
    ctx.results.setdefault("final_comparison", {})[task] = figures
    ctx.console.print(f"  {task}, {metric} on {len(items)} test call items [95% CI]: " + "; ".join(parts))
    return f"{metric.replace('_', ' ')} on {len(items)} test call items [95% CI]: " + "; ".join(parts) + "."


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
