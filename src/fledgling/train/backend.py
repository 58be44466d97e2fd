"""What every trainer backend shares: the spec it is given, and prepare -> run -> artifacts.

`prepare` does everything that needs no GPU and no money — check the data, render it into the
specialist prompt, write the files and command lines the run would use — and returns a `Plan`.
`run` executes a plan and returns a `Result` (artifacts and metrics). `--dry-run` on any
backend stops after `prepare`, so the plan can be read before anything is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fledgling.errors import FledglingError
from fledgling.train.bases import SMOLLM2
from fledgling.train.dataset import Dataset

BackendName = Literal["lora", "unsloth", "openai", "dry-run"]
BACKENDS = ("lora", "unsloth", "openai", "dry-run")


class TrainingError(FledglingError):
    """A training run cannot start or did not finish; the message says why and what to do."""

    exit_code = 7


class TrainSpec(BaseModel):
    """The knobs of one training run, all of them recorded in the manifest."""

    model_config = ConfigDict(extra="forbid")

    task: str
    backend: BackendName = "lora"
    base: str = SMOLLM2
    epochs: int = Field(default=3, ge=1)
    lr: float = Field(default=2e-4, gt=0)
    method: Literal["lora", "full"] = Field(
        default="lora", description="lora: train low-rank adapters; full: every weight of the base (lora backend)")
    rank: int = Field(default=16, ge=1)
    alpha: int | None = Field(default=None, ge=1, description="LoRA alpha; default 2 x rank")
    dropout: float = Field(default=0.0, ge=0, lt=1,
                           description="LoRA dropout; 0 skips the dropout copies of every layer input (faster)")
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    batch_size: int = Field(default=2, ge=1, description="examples per forward pass")
    grad_accum: int = Field(default=4, ge=1, description="forward passes per optimizer step")
    max_length: int = Field(default=512, ge=16)
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="auto: bf16 mixed precision where the GPU or CPU has bf16 units, else fp32")
    prompt: Literal["lean", "compact"] = Field(
        default="lean", description="specialist prompt taught: lean (task line only) or compact (+ tool signatures)")
    seed: int = 0
    max_examples: int | None = Field(default=None, ge=1)
    patience: int = Field(default=1, ge=1, description="epochs without val improvement before stopping")
    select_on: Literal["loss", "answers"] = Field(
        default="loss", description="what picks the best epoch and stops early: val loss, or answers (the share of "
                                    "val answers a greedy generation gets exactly right; a generation pass per epoch)")
    probe_answers: int = Field(default=48, ge=1, description="select_on=answers: val answers generated per epoch")
    merge: bool = False
    launcher: Literal["none", "accelerate"] = "none"
    num_processes: int = Field(default=1, ge=1)
    suffix: str | None = Field(default=None, description="openai: suffix of the fine-tuned model name")
    poll_s: float = Field(default=10.0, gt=0, description="openai: seconds between job polls")

    @model_validator(mode="after")
    def _lora_backend_only(self) -> TrainSpec:
        if self.method == "full" and self.backend not in ("lora", "dry-run"):
            raise ValueError(f"full fine-tuning runs on the lora backend (or dry-run), not {self.backend}")
        if self.select_on == "answers" and self.backend not in ("lora", "dry-run"):
            raise ValueError(f"choosing the epoch on val answers runs on the lora backend, not {self.backend}")
        return self

    @property
    def lora_alpha(self) -> int:
        return self.alpha or 2 * self.rank


@dataclass
class Plan:
    """What a run will do, written down before it does it."""

    spec: TrainSpec
    data: Dataset
    run_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    command: list[str] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    run_id: str | None = None


@dataclass
class Result:
    """What a run produced: files, figures, and the catalog entry it adds (if any)."""

    artifacts: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None


class Reporter(Protocol):
    """Where a backend reports progress (the terminal bar and the store's status record)."""

    def update(self, *, step: int | None = None, total_steps: int | None = None,
               epoch: float | None = None, loss: float | None = None,
               metrics: dict[str, Any] | None = None, state: str | None = None,
               message: str | None = None) -> None: ...


class TrainerBackend(Protocol):
    """A way to train: `prepare` writes the plan down (no GPU, no money), `run` carries it out.

    `callbacks` are extra transformers `TrainerCallback`s for backends that drive a transformers
    Trainer (lora, unsloth); the others accept and ignore them.
    """

    name: str

    def prepare(self, spec: TrainSpec, data: Dataset, run_dir: Path) -> Plan: ...

    def run(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result: ...


class LaunchedBackend(TrainerBackend, Protocol):
    """A backend whose runs the launcher can start as worker processes (`train.worker`)."""

    def train_here(self, plan: Plan, reporter: Reporter, *, callbacks: list[Any] | None = None) -> Result: ...
