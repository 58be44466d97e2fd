"""Decoding throughput of the local (`hf`) backend on SmolLM2-135M, against a plain `model.generate` loop.

Workload: the first `--requests` support-agent requests of the demo traffic (seed 0), asked in
the compact specialist prompt, greedy, at most `--max-new-tokens` answer tokens each. Measured in
one process, on the same prompts, with the same number of intra-op threads (printed):

- the backend at batch 1, 8 and 32 (sorted by length, left padding, KV cache, finished rows leave
  the batch, the shared prompt prefix encoded once), unconstrained, in its default precision
  (bfloat16 on a CPU with bfloat16 instructions, else float32);
- the backend at batch 8 with constrained decoding (xgrammar, the contract's tool calls or text);
- the llama.cpp engine (`LlamaCppBackend`, its default Q8_0 copy of the GGUF), one request at a time,
  free and constrained (with jump-forward over the tokens the grammar forces);
- the baseline: `model.generate` over batches of 8 left-padded prompts in float32 (how the
  original pipeline did it), its answers cut at the first end token; and the same loop and the
  backend at batch 8 in the other precision, so the engine and the precision count separately.

Tokens/second counts answer tokens only (up to and including the end token). The ratios compare
each row with the float32 baseline (the target is >= 3x; >= 10x for llama.cpp) and with the
loop in its own precision. A second table gives
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
    from fledgling.models.local import decode_threads, default_dtype

    console = Console(width=150)
    threads = decode_threads(args.threads)
    requests, contract = demo_requests(args.requests)
    shipped = default_dtype("cpu")
    loaded = {}
    for dtype in dict.fromkeys(("float32", shipped)):
        with console.status(f"loading SmolLM2-135M in {dtype}"):
            loaded[dtype] = open_backend(resolve_model("gguf:smollm2"), prompt="compact", contract=contract,
                                         max_new_tokens=args.max_new_tokens, threads=threads, dtype=dtype,
                                         engine="transformers")
    torch.set_num_threads(threads)
    console.print(f"{len(requests)} {TASK} requests, compact prompt, <= {args.max_new_tokens} answer tokens, "
                  f"{threads} thread(s), torch {torch.__version__}; the backend's default precision here: "
                  f"{shipped}")
    with console.status("warming up"):
        for backend in loaded.values():
            plain_generate_loop(backend, requests[:1], 2)
            backend.variant().generate_sync(requests[:1])

    rows, same = [], {}
    for dtype, backend in loaded.items():
        with console.status(f"plain model.generate loop, batch 8, {dtype}"):
            tokens, seconds, plain_texts = plain_generate_loop(backend, requests, args.max_new_tokens)
        rows.append((f"model.generate loop, batch 8, {dtype}", tokens, seconds))
        configs = [(1, False), (8, False), (32, False), (8, True)] if dtype == shipped else [(8, False)]
        for batch, constrained in configs:
            label = f"backend, batch {batch}, {dtype}" + (", constrained" if constrained else "")
            with console.status(label):
                tokens, seconds, texts = backend_run(
                    backend.variant(constrained=constrained, batch_size=batch), requests)
            rows.append((label, tokens, seconds))
            if batch == 8 and not constrained:
                same[dtype] = sum(a == b for a, b in zip(texts, plain_texts, strict=True))

    fast = open_backend(resolve_model("gguf:smollm2"), prompt="compact", contract=contract,
                        max_new_tokens=args.max_new_tokens, threads=threads, engine="llama.cpp")
    if getattr(fast, "engine_name", None) == "llama.cpp":
        fast.variant().generate_sync(requests[:1])  # type: ignore[attr-defined]
        for constrained in (False, True):
            label = f"llama.cpp, one at a time, {fast.weights_type}{', constrained' if constrained else ''}"  # type: ignore[attr-defined]
            with console.status(label):
                tokens, seconds, texts = backend_run(fast.variant(constrained=constrained), requests)  # type: ignore[attr-defined]
            rows.append((label, tokens, seconds))
    else:
        console.print("llama.cpp is not installed (scripts/llama_cpp.sh): its rows are left out")

    base_tokens, base_s = rows[0][1], rows[0][2]
    same_dtype = {dtype: next(r for r in rows if r[0] == f"model.generate loop, batch 8, {dtype}") for dtype in loaded}
    table = Table(title="SmolLM2-135M decoding throughput (answer tokens per second)")
    for col in ("configuration", "answer tokens", "seconds", "tokens/s", "vs float32 generate loop",
                "vs generate loop, same precision"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for label, tokens, seconds in rows:
        rate = tokens / seconds
        dtype = label.split(", ")[2] if label.startswith("backend") else label.rsplit(", ", 1)[1]
        ref = same_dtype.get(dtype, same_dtype["float32"])  # llama.cpp: against the float32 loop
        table.add_row(label, f"{tokens:,}", f"{seconds:.1f}", f"{rate:.1f}",
                      f"{rate / (base_tokens / base_s):.2f}x", f"{rate / (ref[1] / ref[2]):.2f}x")
    console.print(table)
    for dtype, n in same.items():
        console.print(f"identical answers, backend batch 8 vs generate loop, {dtype}: {n}/{len(requests)}")

    items = requests[: args.format_items]
    fmt = Table(title=f"Prompt formats: {len(items)} {TASK} items, constrained, <= {args.max_new_tokens} tokens, "
                      f"{shipped}")
    for col in ("prompt", "prompt tokens/item", "seconds/item"):
        fmt.add_column(col, justify="left" if col == "prompt" else "right")
    for prompt in ("chat", "compact"):
        backend = loaded[shipped].variant(prompt=prompt, constrained=True, batch_size=8)
        with console.status(f"{prompt} prompt"):
            started = time.perf_counter()
            gens = backend.generate_sync(items)
            seconds = time.perf_counter() - started
        fmt.add_row(prompt, f"{sum(g.input_tokens for g in gens) / len(items):,.0f}", f"{seconds / len(items):.2f}")
    console.print(fmt)


if __name__ == "__main__":
    main()
