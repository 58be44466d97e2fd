"""Publishing a trained adapter to the Hugging Face Hub, with its manifest and a model card.

The token comes from `HF_TOKEN` or the Hugging Face token file (`hf auth login`), never from
Fledgling's database. `auto=True` publishes only when the task's acceptance gates give the
verdict SWAP for the model (its eval run against the reference's, as `fledgling report` shows).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fledgling.config import Settings, load_settings
from fledgling.errors import FledglingError
from fledgling.models import catalog, manifest
from fledgling.store import Store


class PublishError(FledglingError):
    """Publishing was refused or failed; the message says why and what to do."""

    exit_code = 8


def hf_token() -> str:
    """The Hugging Face token from the environment or the token file."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (the token "
                           "is read from the environment or the HF token file, never from Fledgling's store)")
    return token


def require_gates_pass(store: Store, task: str, model: str, settings: Settings | None = None) -> None:
    """Refuse unless the task's gates say SWAP for `model`: its newest eval run on the test split
    against the reference's (`fledgling eval`), under `[tasks.T.gates]` (or the default gates)."""
    from fledgling.contracts import load_contract
    from fledgling.evals.gates import evaluate_gates
    from fledgling.evals.runs import load_run_items
    from fledgling.report.parity import latest_runs

    settings = settings or load_settings()
    runs = latest_runs(store, task, "test")
    candidate = next((r for r in runs if r.model == model), None)
    if candidate is None:
        raise PublishError(f"--auto publishes only when the gates of task '{task}' pass, and '{model}' "
                           f"has no eval run on its test split; run `fledgling eval --task {task} "
                           f"--model {model}` (and `--model recorded` for the reference) first")
    task_cfg = settings.tasks.get(task)
    ref_name = task_cfg.reference if task_cfg and task_cfg.reference else "recorded"
    reference = next((r for r in runs if r.model == ref_name), None) or \
        next((r for r in runs if r.model_kind == "recorded"), None)
    if reference is None:
        raise PublishError(f"--auto needs the reference's eval run for task '{task}' to compare with; "
                           f"run `fledgling eval --task {task} --model recorded` first")
    load_run_items(store, candidate)
    load_run_items(store, reference)
    contract = load_contract(store, task)
    decision = evaluate_gates(candidate, reference, task_cfg.gates if task_cfg else {},
                              contract.kind if contract else "toolcall")
    if decision.verdict != "SWAP":
        why = "; ".join(f"{g.metric}: {g.reason}" for g in decision.gates if g.outcome != "pass")
        raise PublishError(f"--auto: the verdict for '{model}' on task '{task}' is {decision.verdict}, "
                           f"not SWAP ({why}); nothing was published")


def stage(entry: catalog.CatalogModel, into: Path) -> Path:
    """The folder that gets uploaded: adapter files, manifest.json, README.md (model card)."""
    if entry.origin != "adapter" or not entry.adapter:
        raise PublishError(f"model '{entry.name}' is a {entry.origin} model; only adapters trained "
                           "with `fledgling train` can be published")
    adapter = Path(entry.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise PublishError(f"{adapter} has no adapter_config.json; was the run completed?")
    run_dir = adapter.parent
    info = manifest.read(run_dir)
    out = Path(into)
    shutil.copytree(adapter, out, dirs_exist_ok=True)
    shutil.copy2(run_dir / manifest.MANIFEST, out / manifest.MANIFEST)
    report = run_dir / "report.html"
    if report.is_file():
        shutil.copy2(report, out / "report.html")
    (out / "README.md").write_text(model_card(entry, info), encoding="utf-8")
    return out


def model_card(entry: catalog.CatalogModel, info: dict[str, Any]) -> str:
    metrics = info.get("metrics", {})
    hp = info.get("hyperparameters", {})
    lines = [
        "---", "library_name: peft", "tags: [fledgling, lora, tool-calling]", "---", "",
        f"# {entry.name}", "",
        (f"A LoRA adapter for the `{info.get('task')}` task, trained by Fledgling from the agent's own "
         "captured calls."), "",
        f"- base model: `{info['base_model']['name']}` (sha256 `{info['base_model'].get('sha256')}`)",
        (f"- dataset: {info['dataset'].get('version')} (sha256 `{info['dataset'].get('sha256')}`), "
         f"counts {json.dumps(info['dataset'].get('counts', {}))}"),
        f"- prompt format: `{info.get('prompt_format')}`",
        f"- rank {hp.get('rank')}, lr {hp.get('lr')}, epochs {hp.get('epochs')}, seed {info.get('seed')}",
        f"- best val loss: {metrics.get('best_eval_loss')}", "",
        "Full provenance (library versions, metrics) is in `manifest.json`.", "",
    ]
    return "\n".join(lines)


def publish(store: Store, model: str, repo_id: str, *, private: bool = True, auto: bool = False,
            task: str | None = None, endpoint: str | None = None) -> str:
    """Upload the staged adapter folder to `repo_id`; returns the commit URL."""
    entry = catalog.get_model(store, model)
    if auto:
        require_gates_pass(store, task or entry.task or "", model)
    token = hf_token()
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token, endpoint=endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(entry, Path(tmp))
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                                       commit_message=f"Fledgling: {entry.name}")
        except HfHubHTTPError as exc:
            raise PublishError(f"the Hub refused the upload to {repo_id}: {str(exc).splitlines()[0]}") from None
    return str(getattr(commit, "commit_url", commit))
