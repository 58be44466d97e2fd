"""What the specialist prompt saves: tokens and prefill latency on SmolLM2-135M, vs the full prompt.

For demo support-agent calls (curated test split) each request is rendered two ways and
tokenised with SmolLM2's tokenizer:

  full        the agent's own system prompt and every tool's JSON description, as the base SLM
              is prompted in evals (`fledgling.models.prompting.render_prompt`)
  specialist  `fledgling.models.specialist.compact_request`: one system line, compact signatures

Latency is the prefill (one forward pass over the prompt, batch 1, fp32 on CPU) — the part of an
answer's latency that grows with the prompt; the answer itself is the same length either way.
Printed: total and median tokens, median prefill ms, and the ratios specialist/full. One run.

    .venv/bin/python benchmarks/specialist_prompt.py [--requests 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

TASK = "support-agent"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from fledgling.calls import Request
    from fledgling.contracts import infer_contract, save_contract
    from fledgling.curate import curate
    from fledgling.demo import generate_calls
    from fledgling.models.prompting import render_prompt
    from fledgling.models.specialist import CHAT_TEMPLATE, compact_request
    from fledgling.store import CallFilter, Store
    from fledgling.train.bases import SMOLLM2, load_base, resolve_base
    from fledgling.train.dataset import load
    from fledgling.train.lora import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.insert_calls(generate_calls(seed=args.seed, n=600))
        contract = infer_contract(store.iter_calls(CallFilter(task=TASK)), TASK)
        save_contract(store, contract)
        ds = curate(store, TASK, seed=args.seed, out_dir=Path(tmp) / "datasets")
        examples = load(ds.path, task=TASK).split("test", args.requests)
        store.close()

    model, tokenizer = load_base(resolve_base(SMOLLM2))
    model.eval()
    full_ids, compact_ids = [], []
    for ex in examples:
        request = Request(messages=ex.messages[:-1], tools=ex.tools)
        full_ids.append(tokenizer(render_prompt(tokenizer, request, native_tools=False),
                                  add_special_tokens=False).input_ids)
        compact = compact_request(request, contract)
        text = tokenizer.apply_chat_template(compact.messages, tokenize=False, add_generation_prompt=True,
                                             chat_template=CHAT_TEMPLATE)
        compact_ids.append(tokenizer(text, add_special_tokens=False).input_ids)

    def prefill_ms(ids: list[int]) -> float:
        with torch.inference_mode():
            started = time.perf_counter()
            model(input_ids=torch.tensor([ids]), logits_to_keep=1)
            return (time.perf_counter() - started) * 1000

    prefill_ms(compact_ids[0])  # warm-up
    rows = {}
    for name, ids in (("full", full_ids), ("specialist", compact_ids)):
        lengths = [len(i) for i in ids]
        rows[name] = {"total": sum(lengths), "median": statistics.median(lengths),
                      "prefill_ms": statistics.median(prefill_ms(i) for i in ids)}
    print(f"SmolLM2-135M-Instruct, {len(examples)} demo {TASK} requests (test split), CPU fp32, one run")
    print(f"{'prompt':11} {'tokens':>8} {'median':>7} {'median prefill ms':>18}")
    for name, r in rows.items():
        print(f"{name:11} {r['total']:>8,} {r['median']:>7.0f} {r['prefill_ms']:>18.1f}")
    f, s = rows["full"], rows["specialist"]
    print(f"specialist / full: tokens x{s['total'] / f['total']:.2f} ({1 - s['total'] / f['total']:.0%} fewer), "
          f"median prefill x{s['prefill_ms'] / f['prefill_ms']:.2f}")


if __name__ == "__main__":
    main()
