"""The `unsloth` backend: QLoRA through Unsloth on a CUDA GPU, same data and trainer as `lora`.

Unsloth loads the base in 4 bits and attaches its own fused LoRA layers; the rest — the
specialist chat data, TRL's SFTTrainer with assistant-only loss, eval per epoch, checkpoints,
the manifest — is the `lora` backend's. Unsloth cannot read a GGUF file, so the bundled
SmolLM2 base maps to its original Hub checkpoint (downloaded on the GPU machine). It is
imported only when a run starts; without CUDA or without the package the message says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fledgling.train.backend import Plan, Reporter, Result, TrainingError, TrainSpec
from fledgling.train.bases import SMOLLM2
from fledgling.train.dataset import Dataset
from fledgling.train.lora import fit, quiet_libraries, write_chats

HUB_IDS = {SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct"}
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SETTINGS_FILE = "unsloth.json"


def unsloth_settings(spec: TrainSpec) -> dict[str, Any]:
    """The arguments of Unsloth's `FastLanguageModel.from_pretrained` and `get_peft_model`."""
    targets = LLAMA_LINEAR if spec.target_modules == "all-linear" else list(spec.target_modules)
    return {
        "from_pretrained": {"model_name": HUB_IDS.get(spec.base, spec.base),
                            "max_seq_length": spec.max_length, "load_in_4bit": True, "dtype": None},
        "get_peft_model": {"r": spec.rank, "lora_alpha": spec.lora_alpha, "lora_dropout": spec.dropout,
                           "target_modules": targets, "bias": "none",
                           "use_gradient_checkpointing": "unsloth", "random_state": spec.seed},
    }


def environment() -> dict[str, Any]:
    """What this machine offers Unsloth, for the plan and the error message."""
    import importlib.util

    import torch

    return {"cuda": torch.cuda.is_available(), "gpus": torch.cuda.device_count(),
            "unsloth_installed": importlib.util.find_spec("unsloth") is not None}


class UnslothBackend:
    name = "unsloth"

    def prepare(self, spec: TrainSpec, data: Dataset, run_dir: Path) -> Plan:
        files, counts = write_chats(spec, data, run_dir / "data")
        settings = unsloth_settings(spec)
        path = run_dir / SETTINGS_FILE
        path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        files["unsloth"] = path
        return Plan(spec, data, run_dir, files=files, details={"environment": environment(), **settings, **counts})

    def run(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result:
        if plan.spec.launcher == "accelerate":
            from fledgling.train.launcher import launch

            return launch(plan, reporter)
        return self.train_here(plan, reporter, callbacks=callbacks)

    def train_here(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result:
        env = environment()
        if not env["cuda"]:
            raise TrainingError("the unsloth backend needs a CUDA GPU and this machine has none; "
                                "train on CPU with --backend lora, or inspect the plan with --dry-run")
        try:
            from unsloth import FastLanguageModel
        except ImportError:
            raise TrainingError("the unsloth backend needs the unsloth package: "
                                "`pip install unsloth` on the GPU machine") from None
        quiet_libraries()
        settings = json.loads(plan.files["unsloth"].read_text(encoding="utf-8"))
        reporter.update(state="loading", message=f"loading {settings['from_pretrained']['model_name']} in 4 bits")
        model, tokenizer = FastLanguageModel.from_pretrained(**settings["from_pretrained"])
        model = FastLanguageModel.get_peft_model(model, **settings["get_peft_model"])
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return fit(plan, reporter, model, tokenizer, base_sha256=None,
                   base_files=[settings["from_pretrained"]["model_name"]], callbacks=callbacks, peft=False)
