"""Decoding throughput of the local (`hf`) backend on SmolLM2-135M, against a plain `model.generate` loop.

Workload: the first `--requests` support-agent requests of the demo traffic (seed 0), asked in
the compact specialist prompt, greedy, at most `--max-new-tokens` answer tokens each. Measured in
one process, on the same prompts, with the same number of intra-op threads (printed):

- the backend at batch 1, 8 and 32 (sorted by length, left padding, KV cache, finished rows leave
  the batch, the shared prompt prefix encoded once), unconstrained;
- the backend at batch 8 with constrained decoding (xgrammar, the contract's tool calls or text);
- the baseline: `model.generate` over batches of 8 left-padded prompts (how the original pipeline
  did it), its answers cut at the first end token.

Tokens/second counts answer tokens only (up to and including the end token). The ratios compare
each row with the baseline; the target is >= 3x at batch 8 and beyond. A second table gives
seconds per item and prompt tokens for the same few items in the agent's own chat prompt and in
the compact one (constrained, as `fledgling eval --constrained` runs them).

    .venv/bin/python benchmarks/eval_throughput.py [--requests 32] [--max-new-tokens 48] [--threads N]
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

TASK = "support-agent"


def demo_requests(n: int):
    from fledgling.contracts import infer_contract
    from fledgling.demo import generate_calls

    calls = [c for c in generate_calls(seed=0, n=4000) if c.task == TASK]
    return [c.request for c in calls[:n]], infer_contract(calls, TASK)


def plain_generate_loop(backend, requests, max_new_tokens: int, batch: int = 8) -> tuple[int, float, list[str]]:
    """(answer tokens, seconds, texts) of `model.generate` over left-padded batches of `batch`."""
    import torch

    tok, model = backend.tokenizer, backend.model
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompts = [backend.render(r) for r in requests]
    tokens, texts = 0, []
    started = time.perf_counter()
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=backend.pad_id)
        for row in out[:, enc.input_ids.shape[1]:].tolist():
            ends = [k for k, t in enumerate(row) if t in backend.stop_ids]
            answer = row[: ends[0] + 1] if ends else row
            tokens += len(answer)
            texts.append(tok.decode([t for t in answer if t not in backend.stop_ids], skip_special_tokens=True))
    return tokens, time.perf_counter() - started, texts


def backend_run(backend, requests) -> tuple[int, float, list[str]]:
    started = time.perf_counter()
    gens = backend.generate_sync(requests)
    seconds = time.perf_counter() - started
    return sum(g.output_tokens for g in gens), seconds, [g.text or "" for g in gens]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the idle cores)")
    parser.add_argument("--format-items", type=int, default=6, help="items for the chat vs compact table")
    args = parser.parse_args()

    import torch

    from fledgling.models import open_backend, resolve_model
    from fledgling.models.local import decode_threads

    console = Console()
    threads = decode_threads(args.threads)
    requests, contract = demo_requests(args.requests)
    with console.status("loading SmolLM2-135M"):
        base = open_backend(resolve_model("gguf:smollm2"), prompt="compact", contract=contract,
                            max_new_tokens=args.max_new_tokens, threads=threads)
    torch.set_num_threads(threads)
    console.print(f"{len(requests)} {TASK} requests, compact prompt, <= {args.max_new_tokens} answer tokens, "
                  f"{threads} thread(s), torch {torch.__version__}")

    with console.status("warming up"):
        plain_generate_loop(base, requests[:1], 2)
        base.variant().generate_sync(requests[:1])
    rows = []
    with console.status("plain model.generate loop, batch 8"):
        base_tokens, base_s, base_texts = plain_generate_loop(base, requests, args.max_new_tokens)
    rows.append(("model.generate loop, batch 8", base_tokens, base_s))
    same = None
    for label, batch, constrained in (("backend, batch 1", 1, False), ("backend, batch 8", 8, False),
                                      ("backend, batch 32", 32, False),
                                      ("backend, batch 8, constrained", 8, True)):
        backend = base.variant(constrained=constrained, batch_size=batch)  # encodes its own shared prefix
        with console.status(label):
            tokens, seconds, texts = backend_run(backend, requests)
        rows.append((label, tokens, seconds))
        if batch == 8 and not constrained:
            same = sum(a == b for a, b in zip(texts, base_texts, strict=True))

    table = Table(title="SmolLM2-135M decoding throughput (answer tokens per second)")
    for col in ("configuration", "answer tokens", "seconds", "tokens/s", "vs generate loop"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    base_rate = base_tokens / base_s
    for label, tokens, seconds in rows:
        rate = tokens / seconds
        table.add_row(label, f"{tokens:,}", f"{seconds:.1f}", f"{rate:.1f}", f"{rate / base_rate:.2f}x")
    console.print(table)
    console.print(f"identical answers, backend batch 8 vs generate loop: {same}/{len(requests)}")

    items = requests[: args.format_items]
    fmt = Table(title=f"Prompt formats: {len(items)} {TASK} items, constrained, <= {args.max_new_tokens} tokens")
    for col in ("prompt", "prompt tokens/item", "seconds/item"):
        fmt.add_column(col, justify="left" if col == "prompt" else "right")
    for prompt in ("chat", "compact"):
        backend = base.variant(prompt=prompt, constrained=True, batch_size=8)
        with console.status(f"{prompt} prompt"):
            started = time.perf_counter()
            gens = backend.generate_sync(items)
            seconds = time.perf_counter() - started
        fmt.add_row(prompt, f"{sum(g.input_tokens for g in gens) / len(items):,.0f}", f"{seconds / len(items):.2f}")
    console.print(fmt)


if __name__ == "__main__":
    main()
