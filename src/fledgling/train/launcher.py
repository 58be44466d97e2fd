"""`--launcher accelerate --num-processes N`: the same run, data-parallel over N GPUs.

The plan is written to `plan.json`, the accelerate configuration (DeepSpeed ZeRO-2: optimizer
states and gradients sharded, bf16) to `accelerate_config.yaml`, and the command line is
`accelerate launch --config_file ... -m fledgling.train.worker plan.json`. Each process runs
the backend from the plan; process 0 reports progress and saves. The files are the same ones a
`--dry-run` shows, so what was checked is what runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fledgling.models import manifest
from fledgling.train.backend import Plan, Reporter, Result, TrainingError

PLAN_FILE = "plan.json"
ACCELERATE_CONFIG = "accelerate_config.yaml"


def accelerate_config(num_processes: int, grad_accum: int) -> dict[str, Any]:
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "DEEPSPEED",
        "deepspeed_config": {
            "zero_stage": 2,
            "gradient_accumulation_steps": grad_accum,
            "gradient_clipping": 1.0,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": False,
        },
        "mixed_precision": "bf16",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": num_processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }


def write_plan(plan: Plan) -> Path:
    """The plan as JSON: everything a worker process needs (never a secret: the store URL
    reaches workers through the environment)."""
    body = {"spec": plan.spec.model_dump(mode="json"), "run_id": plan.run_id, "resume": plan.resume,
            "run_dir": str(plan.run_dir.resolve()),
            "dataset": {"path": str(plan.data.path.resolve()), "version": plan.data.version},
            "files": {k: str(v.resolve()) for k, v in plan.files.items()}}
    path = plan.run_dir / PLAN_FILE
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def worker_command(plan: Plan) -> list[str]:
    """The command line that runs `plan`: under accelerate when asked, else one Python process."""
    plan_path = str((plan.run_dir / PLAN_FILE).resolve())
    if plan.spec.launcher != "accelerate":
        return [sys.executable, "-m", "fledgling.train.worker", plan_path]
    return [sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str((plan.run_dir / ACCELERATE_CONFIG).resolve()),
            "--num_processes", str(plan.spec.num_processes),
            "-m", "fledgling.train.worker", plan_path]


def prepare_launch(plan: Plan) -> Plan:
    """Write plan.json (and the accelerate config when launching with accelerate) and the command."""
    if plan.spec.launcher == "accelerate":
        cfg = accelerate_config(plan.spec.num_processes, plan.spec.grad_accum)
        path = plan.run_dir / ACCELERATE_CONFIG
        path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        plan.files["accelerate_config"] = path
    plan.files["plan"] = write_plan(plan)
    plan.command = worker_command(plan)
    return plan


def launch(plan: Plan, reporter: Reporter) -> Result:
    """Run the command line on this machine; the workers update the status record themselves."""
    import torch

    need = plan.spec.num_processes
    have = torch.cuda.device_count()
    if have < need:
        raise TrainingError(f"--launcher accelerate --num-processes {need} needs {need} CUDA GPUs; "
                            f"this machine has {have}. Check the plan with --dry-run, or train "
                            "here without --launcher")
    write_plan(plan)
    reporter.update(state="training", message=" ".join(plan.command or []))
    env = {**os.environ, "FLEDGLING_TRAIN_RUN_ID": plan.run_id or ""}
    proc = subprocess.run(plan.command or [], env=env, check=False)
    if proc.returncode != 0:
        raise TrainingError(f"the launched training exited with status {proc.returncode}; "
                            "its output is above")
    info = manifest.read(plan.run_dir)
    artifacts = {k: plan.run_dir / v for k, v in info["artifacts"].items()}
    return Result(artifacts={**artifacts, "manifest": plan.run_dir / manifest.MANIFEST},
                  metrics=info["metrics"],
                  model={"kind": "hf", "origin": "adapter", "base": plan.spec.base,
                         "adapter": str(artifacts["adapter"].resolve()), "manifest": info})
