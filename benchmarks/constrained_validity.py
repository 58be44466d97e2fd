"""Constrained means valid: schema-valid share of base SmolLM2's constrained answers, with the
grammar bounded to the token cap (`fledgling.models.grammar`) and without (the schema as
declared, cut at the cap), on the demo's two tasks, in one run.

Workload: the first `--items` requests of each task in the demo traffic (seed 0), in the
compact specialist prompt, greedy, transformers engine (`LocalBackend`, where the xgrammar mask
is applied), batches of 8, at each cap of `--caps` answer tokens. For each (task, cap, bounded
or not): the share of answers that parse and validate against the contract, the share cut at
the cap (finish "length"), mean answer tokens, and what the cap left out of the bounded
grammar (tools, enum values, optional properties whose shortest answer does not fit at worst).

    .venv/bin/python benchmarks/constrained_validity.py [--items 16] [--caps 96,256]

Where a cap is below the schema's shortest answer (counted at worst) the grammar cannot be
bounded and stays as declared; that row is not run twice.
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

TASKS = ("ticket-triage", "support-agent")


def demo_items(task: str, n: int):
    from fledgling.contracts import infer_contract
    from fledgling.demo import generate_calls

    calls = [c for c in generate_calls(seed=0, n=4000) if c.task == task and c.response is not None]
    return calls[:n], infer_contract(calls, task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--caps", default="96,256")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the idle cores)")
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]

    from fledgling.contracts import validate
    from fledgling.models.constrained import request_grammar
    from fledgling.models.local import LocalBackend
    from fledgling.models.smollm2 import smollm2_gguf
    from fledgling.models.spec import allows_text

    console = Console()
    gguf = smollm2_gguf()
    started = time.perf_counter()
    base = LocalBackend("smollm2", gguf.parent, gguf_file=gguf.name, constrained=True, prompt="compact",
                        batch_size=8, max_new_tokens=max(caps), threads=args.threads)
    console.print(f"SmolLM2-135M loaded in {time.perf_counter() - started:.1f} s, dtype {base.dtype}, "
                  f"load average {os.getloadavg()[0]:.2f} / {os.cpu_count()} cores")
    table = Table(title=f"constrained answers, {args.items} items per task, compact prompt, greedy")
    for col in ("task", "cap", "grammar", "schema-valid", "cut at cap", "answer tokens", "s", "left out"):
        table.add_column(col, justify="left" if col in ("task", "grammar") else "right", no_wrap=True)
    notes: list[str] = []
    for task in TASKS:
        calls, contract = demo_items(task, args.items)
        backend = base.variant(task=task, allow_text=allows_text(contract))
        book = backend._grammars
        for cap in caps:
            backend.max_new_tokens = cap
            probe = request_grammar(calls[0].request, prompt="compact", allow_text=backend.allow_text,
                                    max_tokens=cap)
            for bounded in (False, True):
                if bounded and probe is not None and probe.unbounded_reason is not None:
                    table.add_row(task, str(cap), "bounded", "= as declared", "", "", "", "-")
                    notes.append(f"{task} at {cap}: cannot bound: {probe.unbounded_reason}")
                    continue
                book.bound = bounded
                book.left_out.clear()
                t0 = time.perf_counter()
                gens = backend.generate_sync([c.request for c in calls])
                seconds = time.perf_counter() - t0
                valid = sum(1 for g in gens if g.response is not None and not g.parse_failed
                            and not validate(g.response, contract))
                cut = sum(1 for g in gens if g.response is not None and g.response.finish_reason == "length")
                tokens = sum(g.output_tokens for g in gens) / len(gens)
                left = sorted({x for v in book.left_out.values() for x in v})
                table.add_row(task, str(cap), "bounded" if bounded else "as declared",
                              f"{valid / len(gens):.0%} ({valid}/{len(gens)})", f"{cut}", f"{tokens:.1f}",
                              f"{seconds:.1f}", str(len(left)) if bounded else "-")
                if bounded and left:
                    notes.append(f"{task} at {cap} leaves out: {', '.join(left)}")
                console.print(f"  {task} cap {cap} {'bounded' if bounded else 'as declared'}: "
                              f"{valid}/{len(gens)} valid, {cut} cut, {seconds:.1f} s, "
                              f"load {os.getloadavg()[0]:.2f}")
    console.print(table)
    for note in notes:
        console.print(f"  {note}")
    console.print(f"load average at the end: {os.getloadavg()[0]:.2f} / {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
