"""Training throughput on SmolLM2-135M: our `lora` backend vs a plain TRL SFTTrainer.

All variants train one epoch on the same chats — the demo's support-agent task, curated, in the
specialist prompt, folded into conversations — from the same dequantised SmolLM2-135M-Instruct:

  lora         Fledgling's backend as it ships: LoRA r=16 on every linear layer, loss on the
               answers only with the LM head run on those positions alone, bf16 autocast where
               the CPU has bf16 units, LoRA dropout 0, batch 1 x 2
  lora-trl     the same, with TRL's own loss (the LM head on every position)
  lora-before  the same batches, with the settings it had before: TRL's loss, fp32, LoRA
               dropout 0.05
  trl          `SFTTrainer(model, args=SFTConfig(output_dir, use_cpu=True), train_dataset)` — TRL's
               defaults (full fine-tuning, loss on the whole sequence, gradient checkpointing on,
               bf16 autocast, batch 8,
               max_length 1024) plus `use_cpu`, without which TRL refuses to start on a machine
               with no GPU

Each variant runs in its own process, so its peak resident memory (VmHWM) is its own. Printed:
training tokens per second (tokens in the batches / train runtime; loading and our per-epoch
val pass excluded), peak memory, and each variant's ratio to `trl`. One run each; the machine
is shared, so expect noise.

    .venv/bin/python benchmarks/train_throughput.py [--examples 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "support-agent"
VARIANTS = ("lora", "lora-trl", "lora-before", "trl")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_data(root: Path, seed: int) -> Path:
    """Demo traffic -> store -> contract -> curated dataset (what `fledgling demo` does)."""
    from fledgling.contracts import infer_contract, save_contract
    from fledgling.curate import curate
    from fledgling.demo import generate_calls
    from fledgling.store import CallFilter, Store

    store = Store(f"sqlite:///{root}/bench.db")
    store.insert_calls(generate_calls(seed=seed, n=1200))
    save_contract(store, infer_contract(store.iter_calls(CallFilter(task=TASK)), TASK))
    ds = curate(store, TASK, seed=seed, out_dir=root / "datasets")
    store.close()
    return ds.path


def run_lora(data: Path, out: Path, examples: int, seed: int, variant: str = "lora") -> dict:
    from fledgling.store import Store
    from fledgling.train.backend import TrainSpec
    from fledgling.train.orchestrator import train

    extra: dict = {}
    if variant in ("lora-trl", "lora-before"):
        from trl import SFTTrainer

        from fledgling.train.answer_loss import AnswerLossTrainer

        AnswerLossTrainer.compute_loss = SFTTrainer.compute_loss  # this process only
    if variant == "lora-before":
        extra = {"precision": "fp32", "dropout": 0.05}
    store = Store(f"sqlite:///{out}/{variant}.db")
    spec = TrainSpec(task=TASK, epochs=1, max_examples=examples, max_length=1024, seed=seed, rank=16,
                     batch_size=1, grad_accum=2, **extra)
    outcome = train(spec, store, dataset_dir=data, out_dir=out / variant)
    m = outcome.result.metrics
    return {"tokens": m["train_tokens_per_epoch"], "runtime_s": m["train_runtime_s"] - m["eval_runtime_s"],
            "tokens_per_s": m["train_tokens_per_s"], "steps": m["global_step"]}


def run_trl(data: Path, out: Path, examples: int, seed: int) -> dict:
    from datasets import Dataset as HFDataset
    from trl import SFTConfig, SFTTrainer

    from fledgling.models.specialist import CHAT_TEMPLATE
    from fledgling.train.backend import TrainSpec
    from fledgling.train.bases import load_base, resolve_base
    from fledgling.train.dataset import load
    from fledgling.train.lora import quiet_libraries, write_chats

    quiet_libraries()
    spec = TrainSpec(task=TASK, max_examples=examples, seed=seed)
    files, _ = write_chats(spec, load(data, task=TASK), out / "trl-data")
    rows = [json.loads(line) for line in files["train"].read_text().splitlines()]
    model, tokenizer = load_base(resolve_base(spec.base))
    tokenizer.chat_template = CHAT_TEMPLATE
    trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=str(out / "trl"), num_train_epochs=1,
                                                     seed=seed, report_to="none", save_strategy="no",
                                                     use_cpu=True),
                         train_dataset=HFDataset.from_list(rows), processing_class=tokenizer)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    result = trainer.train()
    runtime = result.metrics["train_runtime"]
    return {"tokens": tokens, "runtime_s": runtime, "tokens_per_s": tokens / runtime,
            "steps": trainer.state.global_step}


def child(variant: str, data: str, out: str, examples: int, seed: int) -> None:
    t0 = time.perf_counter()
    if variant == "trl":
        figures = run_trl(Path(data), Path(out), examples, seed)
    else:
        figures = run_lora(Path(data), Path(out), examples, seed, variant)
    figures.update(variant=variant, wall_s=time.perf_counter() - t0, peak_rss_mb=peak_rss_mb())
    print("RESULT " + json.dumps(figures))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.examples, args.seed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, args.seed)
        results = {}
        for variant in VARIANTS:
            proc = subprocess.run([sys.executable, __file__, "--examples", str(args.examples), "--seed",
                                   str(args.seed), "--child", variant, str(data), str(root)],
                                  capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            results[variant] = json.loads(line[len("RESULT "):])
            print(f"{variant}: {results[variant]}", flush=True)
    print(f"SmolLM2-135M-Instruct, {args.examples} curated {TASK} examples, 1 epoch, CPU, one run each")
    print(f"{'variant':12} {'tokens':>8} {'steps':>6} {'train s':>8} {'tokens/s':>9} {'vs trl':>7} "
          f"{'peak MB':>8} {'vs trl':>7} {'wall s':>7}")
    base = results["trl"]
    for r in results.values():
        print(f"{r['variant']:12} {r['tokens']:>8,} {r['steps']:>6} {r['runtime_s']:>8.1f} "
              f"{r['tokens_per_s']:>9.1f} {r['tokens_per_s'] / base['tokens_per_s']:>6.2f}x "
              f"{r['peak_rss_mb']:>8.0f} {r['peak_rss_mb'] / base['peak_rss_mb']:>6.2f}x {r['wall_s']:>7.1f}")


if __name__ == "__main__":
    main()
