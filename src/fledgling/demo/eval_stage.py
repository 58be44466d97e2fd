"""The `fledgling demo` eval stage: the recorded LLM and the base SLM on both demo tasks, then
the swap-readiness report of each task.

The whole demo must stay under 15 minutes on a 2-core machine, training included, so every run
here scores the same first `ITEMS[task]` items of each task's test split — more for the task the
demo trains, whose base-vs-tuned difference must come with useful intervals — and answers are capped at
`MAX_NEW_TOKENS` (above the 90th percentile of the reference answers in the compact format:
support-agent 61 tokens, ticket-triage 74; and high enough that the bounded grammar, which leaves
out what cannot close before the cap, keeps every tool and optional argument of both
contracts). The base SLM is loaded once and asked in the compact specialist prompt (the one the
trainer teaches), with and without constrained
decoding, so the report shows what the grammar buys before any training. It runs on the fast
engine (llama.cpp, one item at a time, so each item's latency is its own) when that is installed,
else on the transformers one (`fledgling.models.spec.choose_engine`). Later stages reuse
`evaluate_on_demo` for their own candidates and `write_reports` to refresh the reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fledgling.evals.runs import EvalRun, evaluate_model
from fledgling.models.generation import ModelBackend
from fledgling.models.spec import ModelSpec, resolve_model

ITEMS = {"support-agent": 48, "ticket-triage": 12}
MAX_NEW_TOKENS = 256
BATCH = 12
BASE_SLM = "gguf:smollm2"


def evaluate_on_demo(ctx: Any, task: str, spec: ModelSpec, *, constrained: bool = False,
                     prompt: str | None = None, backend: ModelBackend | None = None) -> EvalRun:
    """Evaluate `spec` (or an already loaded `backend` of it) on the demo's slice of `task`'s
    test split, with a progress bar; the run is stored and returned."""
    from fledgling.report.tables import run_table

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=ctx.console, transient=True) as bar:
        job = bar.add_task(f"{spec.name} on {task}", total=None)
        run = evaluate_model(ctx.store, task, spec, limit=ITEMS[task], constrained=constrained, prompt=prompt,
                             backend=backend, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH,
                             on_items=lambda n: bar.update(job, total=n),
                             progress=lambda n: bar.advance(job, n))
    ctx.console.print(run_table(run))
    ctx.results.setdefault("eval_runs", {}).setdefault(task, []).append(run)
    return run


def write_reports(ctx: Any, tasks: list[str]) -> list[str]:
    """Write each task's report from its newest runs; print the verdict and where the files are."""
    from fledgling.report import build_report, write_report

    settings = ctx.settings
    verdicts = []
    for task in tasks:
        report = build_report(ctx.store, settings, task)
        paths = write_report(report, Path(ctx.out_dir).parent / "reports" / task)
        colour = {"SWAP": "green", "NOT YET": "yellow", "NO": "red"}[report["verdict"]]
        ctx.console.print(f"  {task}: [bold {colour}]{report['verdict']}[/] for {report['primary']}  "
                          f"[dim]{paths['html']}[/]", highlight=False)
        ctx.results.setdefault("reports", {})[task] = paths["html"]
        ctx.results.setdefault("report_data", {})[task] = report
        verdicts.append(f"{task} {report['verdict']} ({paths['html']})")
    return verdicts


def evaluate_baselines(ctx: Any) -> str:
    """Demo stage: recorded LLM, base SLM (compact prompt) free and constrained, per task; reports."""
    from fledgling.demo.traffic import TASKS
    from fledgling.models.spec import open_local

    recorded, base = resolve_model("recorded"), resolve_model(BASE_SLM)
    with ctx.console.status(f"loading {base.name}"):
        slm = open_local(base, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH, prompt="compact")
    ctx.console.print(f"  {base.name} on the {slm.engine_name} engine, "
                      f"loaded in {slm.load_seconds:.1f} s", highlight=False)
    parts = []
    for task in TASKS:
        ref = evaluate_on_demo(ctx, task, recorded)
        scores = [f"LLM {_success(ref)}"]
        for constrained in (False, True):
            contract = ctx.results.get("contracts", {}).get(task)
            variant = slm.variant(constrained=constrained, task=task,
                                  allow_text=_allows_text(contract, ctx, task))
            run = evaluate_on_demo(ctx, task, base, constrained=constrained, backend=variant)
            scores.append(f"SLM{' constrained' if constrained else ''} {_success(run)}")
        parts.append(f"{task} success on {ref.n_items}: " + ", ".join(scores))
    verdicts = write_reports(ctx, list(TASKS))
    return "; ".join(parts) + ". Reports: " + "; ".join(verdicts)


def _allows_text(contract: Any, ctx: Any, task: str) -> bool:
    from fledgling.contracts import load_contract
    from fledgling.models.spec import allows_text

    return allows_text(contract or load_contract(ctx.store, task))


def _success(run: EvalRun) -> str:
    m = run.summary["metrics"].get("success")
    return f"{m['mean']:.0%}" if m else "n/a"
