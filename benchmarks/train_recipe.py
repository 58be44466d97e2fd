"""Which training recipe buys the most accuracy per CPU-minute: a sweep on the demo tasks.

Each recipe trains the `lora` backend on the demo's curated train split (label checks on,
flagged examples dropped from train and val) and is scored on the *val* call items (never
test): for support-agent, the val items whose reference is a tool call (right tool, exact
arguments); for ticket-triage, every val item (exact match of the structured answer). Scores
come with 95% Wilson intervals and n; cost is the CPU time of the training (all threads, this
process and its children), in minutes. Knobs swept: examples used, epochs, LoRA rank, learning
rate, the lean vs compact specialist prompt. The recipe the demo uses is chosen from this table
on val (docs/training.md, "Recipe").

    nice -n 19 .venv/bin/python benchmarks/train_recipe.py --task support-agent [--calls 6000]
        [--recipes demo,r32,lr1e-3] [--val-items 120]
    .venv/bin/python benchmarks/train_recipe.py --dry       # CI: a tiny random model, seconds

`--dry` runs the same steps (traffic, curation, training, scoring on val call items) on a
2-layer random Llama and a few examples: it checks the script, and its figures mean nothing.
Print `uptime` beside the figures: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # name: TrainSpec knobs (the rest as the demo: batch 1 x 2, max length 384, bf16 where the CPU has it)
    "demo": {"max_examples": 400, "epochs": 1, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    "ep2": {"max_examples": 400, "epochs": 2, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    "ex800": {"max_examples": 800, "epochs": 1, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    "ex800-ep2": {"max_examples": 800, "epochs": 2, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    "all-1ep": {"max_examples": None, "epochs": 1, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    # the demo's recipes (demo/train_stage.py RECIPES["full"]): ticket-triage two epochs, support-agent three
    "all-2ep": {"max_examples": None, "epochs": 2, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    "all-3ep": {"max_examples": None, "epochs": 3, "rank": 16, "lr": 2e-3, "prompt": "lean"},
    # beside the demo's support-agent recipe: twice the rank, and every weight (full fine-tune)
    "all-3ep-r32": {"max_examples": None, "epochs": 3, "rank": 32, "lr": 2e-3, "prompt": "lean"},
    "full-all-3ep": {"max_examples": None, "epochs": 3, "method": "full", "rank": 16, "lr": 1e-4,
                     "prompt": "lean"},
    "r32": {"max_examples": 400, "epochs": 1, "rank": 32, "lr": 2e-3, "prompt": "lean"},
    "r8": {"max_examples": 400, "epochs": 1, "rank": 8, "lr": 2e-3, "prompt": "lean"},
    "lr1e-3": {"max_examples": 400, "epochs": 1, "rank": 16, "lr": 1e-3, "prompt": "lean"},
    "lr4e-3": {"max_examples": 400, "epochs": 1, "rank": 16, "lr": 4e-3, "prompt": "lean"},
    "compact": {"max_examples": 400, "epochs": 1, "rank": 16, "lr": 2e-3, "prompt": "compact"},
    # full fine-tuning of the 135M model: every weight, at the learning rates that suit it
    "full": {"max_examples": 400, "epochs": 1, "method": "full", "rank": 16, "lr": 1e-4, "prompt": "lean"},
    "full-3e-4": {"max_examples": 400, "epochs": 1, "method": "full", "rank": 16, "lr": 3e-4, "prompt": "lean"},
    # learning curves: several epochs, each judged on val answers (the per-epoch figures are printed),
    # the best epoch kept
    "curve-lora": {"max_examples": 800, "epochs": 3, "rank": 16, "lr": 2e-3, "prompt": "lean",
                   "select_on": "answers", "patience": 3},
    "curve-full": {"max_examples": 800, "epochs": 3, "method": "full", "rank": 16, "lr": 2e-4, "prompt": "lean",
                   "select_on": "answers", "patience": 3},
}
DRY_RECIPES = {
    "dry-a": {"max_examples": 6, "epochs": 1, "rank": 4, "lr": 1e-2, "prompt": "lean"},
    "dry-b": {"max_examples": 6, "epochs": 2, "rank": 8, "lr": 1e-2, "prompt": "compact"},
    "dry-full": {"max_examples": 6, "epochs": 1, "method": "full", "rank": 8, "lr": 1e-3, "prompt": "lean"},
    "dry-curve": {"max_examples": 6, "epochs": 2, "rank": 4, "lr": 1e-2, "prompt": "lean",
                  "select_on": "answers", "probe_answers": 2, "patience": 2},
}
MAX_NEW_TOKENS = 256  # the demo's eval cap (demo/eval_stage.py); the bounded grammar keeps every tool at it
METRIC = {"support-agent": "args_exact_match", "ticket-triage": "exact_match"}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_data(root: Path, task: str, calls: int, seed: int) -> tuple[Any, Any]:
    """Demo traffic -> store -> contract -> curated dataset, as `fledgling demo` does it."""
    from fledgling.contracts import infer_and_save
    from fledgling.curate import curate
    from fledgling.demo import generate_calls
    from fledgling.store import Store

    store = Store(f"sqlite:///{root}/recipe.db")
    store.insert_calls(generate_calls(seed=seed, n=calls))
    infer_and_save(store, task)
    ds = curate(store, task, seed=seed, drop_flagged=True, out_dir=root / "datasets")
    return store, ds


def val_call_items(store: Any, task: str, limit: int, split: str = "val") -> tuple[int, Any, list[Any]]:
    """The items a specialist is judged on: tool-call references (support-agent), all (triage)."""
    from fledgling.evals.runs import load_items, reference_of, task_contract

    version, contract_version, items = load_items(store, task, split)
    if task == "support-agent":
        items = [i for i in items if (ref := reference_of(i.call)) is not None and ref[0].tool_calls]
    items = items[:limit]
    return version, task_contract(store, task, contract_version, items), items


def score(store: Any, task: str, run_id: str, *, version: int, contract: Any, items: list[Any],
          constrained: bool, max_new_tokens: int, split: str = "val") -> dict[str, Any]:
    from fledgling.evals.runs import run_eval
    from fledgling.evals.stats import wilson_interval
    from fledgling.models import catalog
    from fledgling.models.spec import ModelSpec, allows_text, open_local

    entry = catalog.select_model(store, task, run_id)
    spec = ModelSpec(run_id, entry.settings())
    slm = open_local(spec, max_new_tokens=max_new_tokens, batch_size=8)
    backend = slm.variant(constrained=constrained, task=task, allow_text=allows_text(contract))
    run = run_eval(store, task, spec, backend, items, contract, split=split, dataset_version=version,
                   constrained=constrained)
    out: dict[str, Any] = {"n": len(run.items)}
    for metric in ("tool_name_match", METRIC[task]):
        hits = sum(1 for i in run.items if i.scores.get(metric) == 1.0)
        if any(i.scores.get(metric) is not None for i in run.items):
            low, high = wilson_interval(hits, len(run.items))
            out[metric] = (hits / max(len(run.items), 1), low, high)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="support-agent", choices=sorted(METRIC))
    ap.add_argument("--recipes", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--calls", type=int, default=6000, help="demo calls to generate (more -> more val items)")
    ap.add_argument("--val-items", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0, help="seed of the demo traffic and its curation")
    ap.add_argument("--train-seeds", default=None,
                    help="comma-separated training seeds, each recipe trained once per seed (default: --seed); "
                         "the spread of one recipe over seeds")
    ap.add_argument("--test-every", action="store_true",
                    help="also score every row on test (reported beside val, never chosen on)")
    ap.add_argument("--free", action="store_true", help="score without constrained decoding")
    ap.add_argument("--dry", action="store_true", help="tiny random model, a few examples: checks the script")
    args = ap.parse_args()

    from fledgling.train.backend import TrainSpec
    from fledgling.train.orchestrator import train

    recipes = DRY_RECIPES if args.dry else RECIPES
    names = args.recipes.split(",") if args.recipes else list(recipes)
    unknown = [n for n in names if n not in recipes]
    if unknown:
        sys.exit(f"unknown recipe {', '.join(unknown)}; known: {', '.join(recipes)}")
    with tempfile.TemporaryDirectory(prefix="recipe-") as tmp:
        root = Path(tmp)
        base = "smollm2-135m-instruct"
        calls, val_items, max_new_tokens, max_length = args.calls, args.val_items, MAX_NEW_TOKENS, 384
        if args.dry:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.models.tiny import build_tiny_model

            base = str(build_tiny_model(root / "tiny"))
            calls, val_items, max_new_tokens, max_length = 300, 3, 8, 2048
        store, ds = make_data(root, args.task, calls, args.seed)
        version, contract, items = val_call_items(store, args.task, val_items)
        checks = ds.report["label_checks"]
        print(f"{args.task}: {ds.counts['train']} train examples ({sum(checks['flagged'].values())} flagged "
              f"by the label checks, dropped from train/val), {len(items)} val call items; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        seeds = [int(s) for s in args.train_seeds.split(",")] if args.train_seeds else [args.seed]
        t_version, t_contract, t_items = val_call_items(store, args.task, val_items, split="test")
        tested: dict[str, dict[str, Any]] = {}  # run id -> its test scores, each run scored on test once

        def on_test(run_id: str) -> dict[str, Any]:
            if run_id not in tested:
                tested[run_id] = score(store, args.task, run_id, version=t_version, contract=t_contract,
                                       items=t_items, constrained=not (args.free or args.dry),
                                       max_new_tokens=max_new_tokens, split="test")
            return tested[run_id]

        rows = []
        for recipe, train_seed in [(n, s) for n in names for s in seeds]:
            knobs = recipes[recipe]
            name = recipe if len(seeds) == 1 else f"{recipe}@{train_seed}"
            spec = TrainSpec(task=args.task, base=base, batch_size=1, grad_accum=2, max_length=max_length,
                             seed=train_seed, **knobs)
            t0, c0 = time.perf_counter(), cpu_seconds()
            outcome = train(spec, store, dataset_dir=ds.path, out_dir=root / "runs" / name)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            assert outcome.result is not None and outcome.run_id is not None
            scores = score(store, args.task, outcome.run_id, version=version, contract=contract, items=items,
                           constrained=not (args.free or args.dry), max_new_tokens=max_new_tokens)
            m = outcome.result.metrics
            rows.append((name, knobs, m, cpu / 60, wall / 60, scores, outcome.run_id))
            print(_row(name, knobs, m, cpu / 60, wall / 60, scores, args.task), flush=True)
            if args.test_every:
                test = on_test(outcome.run_id)
                print(f"  {name} on {test['n']} test call items (reported, not chosen on): {METRIC[args.task]} "
                      f"{_cell(test, METRIC[args.task])}, right tool {_cell(test, 'tool_name_match')}", flush=True)
            if m.get("eval_answer_exact_per_epoch"):
                curve = ", ".join(f"{x:.1%}" for x in m["eval_answer_exact_per_epoch"])
                print(f"  {name}: exact val answers per epoch (probe of {spec.probe_answers}): {curve}; "
                      f"val loss per epoch: {', '.join(f'{x:.3f}' for x in m.get('eval_loss_per_epoch', []))}",
                      flush=True)
        print("\n| recipe | examples | epochs | LoRA rank | lr | prompt | steps | train CPU min | wall min | "
              f"{METRIC[args.task]} on val call items [95% CI] | right tool | n |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, knobs, m, cpu_min, wall_min, scores, _ in rows:
            print(_row(name, knobs, m, cpu_min, wall_min, scores, args.task))
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        # the recipe chosen on val (best val figure; the cheaper on a tie), then scored once on test
        best = max(rows, key=lambda r: (r[5].get(METRIC[args.task], (0.0,))[0], -r[3]))
        t0 = time.perf_counter()
        test = on_test(best[6])
        print(f"\nchosen on val: {best[0]}; on {test['n']} test call items: {METRIC[args.task]} "
              f"{_cell(test, METRIC[args.task])}, right tool {_cell(test, 'tool_name_match')} "
              f"({(time.perf_counter() - t0) / 60:.1f} min to score)")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        store.close()


def _row(name: str, knobs: dict[str, Any], m: dict[str, Any], cpu_min: float, wall_min: float,
         scores: dict[str, Any], task: str) -> str:
    def cell(key: str) -> str:
        return _cell(scores, key)

    rank = "full" if knobs.get("method") == "full" else knobs["rank"]
    return (f"| {name} | {m.get('train_examples')} | {knobs['epochs']} | {rank} | {knobs['lr']:g} | "
            f"{knobs['prompt']} | {m.get('global_step')} | {cpu_min:.1f} | {wall_min:.1f} | {cell(METRIC[task])} | "
            f"{cell('tool_name_match')} | {scores['n']} |")


def _cell(scores: dict[str, Any], key: str) -> str:
    if key not in scores:
        return "-"
    mean, low, high = scores[key]
    return f"{mean:.1%} [{low:.1%}, {high:.1%}]"


if __name__ == "__main__":
    main()
