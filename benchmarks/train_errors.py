"""Why a tuned specialist is wrong: its wrong answers on the demo's val call items, by kind.

Rebuilds the demo's data as `fledgling demo` does (seed, 2,000 calls, contract, curation with
the label checks on and flagged examples dropped from train and val), runs a trained adapter
(default: the newest `.fledgling/runs/<task>-lora-*`) on the *val* items whose reference calls a
tool, constrained, and sorts each wrong answer into the first kind that fits:

    no answer       the generation failed or did not parse
    cut off         it stopped at the token limit
    text, no call   it answered in text where a tool call was due
    wrong tool      another tool (or another set of tools)
    wrong count     the right tool, called a different number of times
    missing arg     an argument of the reference left out
    extra arg       an argument the reference does not have
    id format       a value equal to the reference once case and separators are ignored
                    ("ORD 776538" for "ORD-776538")
    cut short       a string that starts as the reference does and stops early: the bounded
                    grammar (models/grammar.py) leaves each string only the room the token cap
                    has for it at worst ("electric-b" for "electric toothbrush" at 160 tokens)
    other value     a value found in the conversation, but not the right one
    hallucinated    a value that appears nowhere in the conversation

and prints the table (with every argument-level kind counted too: one answer can have several).

    nice -n 19 .venv/bin/python benchmarks/train_errors.py [--adapter RUN_DIR] [--split val]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

KINDS = ("no answer", "cut off", "text, no call", "wrong tool", "wrong count", "missing arg", "extra arg",
         "id format", "cut short", "other value", "hallucinated")


def newest_adapter(task: str) -> Path | None:
    found = sorted(Path(".fledgling/runs").glob(f"{task}-lora-*/adapter/adapter_config.json"),
                   key=lambda p: p.stat().st_mtime)
    return found[-1].parent.parent if found else None


def conversation_text(request: Any) -> str:
    parts = []
    for m in request.messages:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
        parts.append(str(content or ""))
        for tc in m.get("tool_calls") or []:
            parts.append(str((tc.get("function") or {}).get("arguments", "")))
    return "\n".join(parts)


def _norm(value: Any) -> str:
    return re.sub(r"[^0-9a-z]", "", json.dumps(value, sort_keys=True).lower()) if not isinstance(value, str) \
        else re.sub(r"[^0-9a-z]", "", value.lower())


def cut_short(got: str, want: str) -> bool:
    """`got` is shorter than `want` and agrees with its start, all but its last two characters."""
    g, w = _norm(got), _norm(want)
    shared = next((i for i, (a, b) in enumerate(zip(g, w, strict=False)) if a != b), min(len(g), len(w)))
    return len(got) < len(want) and shared >= max(1, len(g) - 2)


def _args(tc: Any) -> dict[str, Any]:
    try:
        parsed = tc.parsed_arguments()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def classify(result: Any, reference: Any, conversation: str, max_new_tokens: int) -> tuple[str, list[str]]:
    """(the first kind that fits, every argument-level kind found) for one wrong answer."""
    pred = result.prediction
    if pred is None or result.parse_failed:
        return ("cut off" if result.output_tokens >= max_new_tokens else "no answer"), []
    if not pred.tool_calls:
        return "text, no call", []
    if sorted({tc.name for tc in pred.tool_calls}) != sorted({tc.name for tc in reference.tool_calls}):
        return "wrong tool", []
    if len(pred.tool_calls) != len(reference.tool_calls):
        return "wrong count", []
    lowered = conversation.lower()
    found: list[str] = []
    remaining = list(pred.tool_calls)
    for ref in reference.tool_calls:
        match = next(tc for tc in remaining if tc.name == ref.name)
        remaining.remove(match)
        want, got = _args(ref), _args(match)
        found += ["missing arg"] * len(set(want) - set(got))
        found += ["extra arg"] * len(set(got) - set(want))
        for key in set(want) & set(got):
            if got[key] == want[key]:
                continue
            if _norm(got[key]) == _norm(want[key]):
                found.append("id format")
            elif isinstance(got[key], str) and isinstance(want[key], str) and cut_short(got[key], want[key]):
                found.append("cut short")
            elif isinstance(got[key], str | int | float) and not isinstance(got[key], bool) \
                    and str(got[key]).lower() not in lowered:
                found.append("hallucinated")
            else:
                found.append("other value")
    first = next((k for k in KINDS if k in found), "other value")
    return first, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="support-agent")
    ap.add_argument("--adapter", type=Path, default=None, help="run directory (default: the newest of the task)")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--free", action="store_true", help="unconstrained decoding (no grammar)")
    ap.add_argument("--examples", type=int, default=3, help="wrong answers to print per kind")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_recipe import make_data

    from fledgling.config import ModelSettings
    from fledgling.evals.runs import evaluate, load_items, reference_of, task_contract
    from fledgling.models.spec import ModelSpec, allows_text, open_local

    run_dir = args.adapter or newest_adapter(args.task)
    if run_dir is None or not (run_dir / "adapter").is_dir():
        sys.exit(f"no trained adapter for {args.task}: give --adapter RUN_DIR")
    with tempfile.TemporaryDirectory(prefix="errors-") as tmp:
        store, _ = make_data(Path(tmp), args.task, args.calls, args.seed)
        _, contract_version, items = load_items(store, args.task, args.split)
        if args.task == "support-agent":
            items = [i for i in items if (ref := reference_of(i.call)) is not None and ref[0].tool_calls]
        contract = task_contract(store, args.task, contract_version, items)
        spec = ModelSpec(run_dir.name, ModelSettings(kind="hf", base="smollm2-135m-instruct",
                                                      adapter=str((run_dir / "adapter").resolve())))
        slm = open_local(spec, max_new_tokens=args.max_new_tokens, batch_size=8)
        backend = slm.variant(constrained=not args.free, task=args.task, allow_text=allows_text(contract))
        results = asyncio.run(evaluate(items, backend, contract, chunk=8))
        store.close()
    metric = "args_exact_match" if args.task == "support-agent" else "exact_match"
    first: Counter[str] = Counter()
    every: Counter[str] = Counter()
    shown: dict[str, list[str]] = {}
    for item, result in zip(items, results, strict=True):
        if result.scores.get(metric) == 1.0:
            continue
        kind, found = classify(result, item.reference, conversation_text(item.call.request), args.max_new_tokens)
        first[kind] += 1
        every.update(found or [kind])
        if len(shown.setdefault(kind, [])) < args.examples:
            pred = result.prediction
            got = [(tc.name, tc.arguments) for tc in pred.tool_calls] if pred else None
            want = [(tc.name, tc.arguments) for tc in item.reference.tool_calls]
            shown[kind].append(f"    got {got if pred and pred.tool_calls else (pred.content if pred else None)!r}"
                               f"\n    want {want}")
    n, wrong = len(results), sum(first.values())
    print(f"{args.task}, {run_dir.name}, {'free' if args.free else 'constrained'}, "
          f"max_new_tokens {args.max_new_tokens}, {args.split} call items: {n}, "
          f"exact {n - wrong} ({(n - wrong) / n:.0%}), "
          f"wrong {wrong}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| kind of wrong answer | answers (first kind) | share of wrong | occurrences (all kinds) |")
    print("|---|---|---|---|")
    for kind in KINDS:
        if first[kind] or every[kind]:
            print(f"| {kind} | {first[kind]} | {first[kind] / max(wrong, 1):.0%} | {every[kind]} |")
    for kind in KINDS:
        for text in shown.get(kind, []):
            print(f"\n[{kind}]\n{text}")


if __name__ == "__main__":
    main()
