"""The lora backend on a tiny random Llama: it learns, resumes, records, saves and reloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from fledgling.models import manifest
from fledgling.store import Store
from fledgling.train import runs
from fledgling.train.backend import TrainSpec
from fledgling.train.bases import resolve_base
from fledgling.train.dataset import load
from fledgling.train.lora import LoraBackend, build_trainer, load_trained
from fledgling.train.orchestrator import train

from .examples import write_dataset


def spec_for(base: Path, **kw) -> TrainSpec:
    return TrainSpec(task="support-agent", base=str(base), **{
        "epochs": 2, "lr": 5e-2, "rank": 8, "batch_size": 8, "grad_accum": 1, "seed": 0, **kw})


class Keep(TrainerCallback):
    """Holds on to the trained model so the test can compare it with what reloads from disk."""

    model = None

    def on_train_end(self, args, state, control, model=None, **kw):
        Keep.model = model


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("trained")
    store = Store(f"sqlite:///{root}/fledgling.db")
    data = write_dataset(root / "data")
    # what curation writes beside the data: the fields copied from the conversation, and how
    (data / "report.json").write_text(json.dumps({"label_checks": {"copy_rules": {
        "lookup_order.order_id": "digits", "create_support_ticket.customer.email": "verbatim"},
        "call_rules": {"answers_with_calls": 400, "rules": ["distinct", "new"]}}}))
    outcome = train(spec_for(tiny_base, merge=True), store, dataset_dir=data, out_dir=root / "run",
                    callbacks=[Keep()])
    yield outcome, store, Keep.model
    store.close()


def greedy(model, tokenizer, messages, n: int = 12) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_loss_falls(trained) -> None:
    m = trained[0].result.metrics
    assert m["global_step"] == 6  # 24 examples / batch 8 x 2 epochs
    assert m["train_loss_last"] < m["train_loss_first"] - 0.3
    evals = m["eval_loss_per_epoch"]
    assert len(evals) == 2 and evals[-1] < evals[0]


def test_loss_is_on_assistant_tokens_only(tiny_base: Path, tmp_path: Path) -> None:
    data = load(write_dataset(tmp_path / "d", n_train=2, n_val=0, n_test=0), task="support-agent")
    plan = LoraBackend().prepare(spec_for(tiny_base), data, tmp_path / "run")
    from fledgling.models.specialist import CHAT_TEMPLATE
    from fledgling.train.bases import load_base

    model, tok = load_base(resolve_base(str(tiny_base)))
    tok.chat_template = CHAT_TEMPLATE
    trainer = build_trainer(plan, model, tok, [])
    row = trainer.train_dataset[0]
    supervised = [t for t in row["labels"] if t != -100]
    assert tok.decode(supervised) == '{"name":"lookup_order","arguments":{"order_id":"A100"}}<|im_end|>'
    assert len(supervised) < len(row["input_ids"]) / 3


def test_manifest_is_complete(trained, tiny_base: Path) -> None:
    outcome = trained[0]
    info = manifest.read(outcome.plan.run_dir)
    assert all(k in info for k in manifest.REQUIRED)
    assert info["base_model"]["sha256"] == resolve_base(str(tiny_base)).sha256()
    assert info["dataset"]["sha256"] == outcome.plan.data.sha256
    assert info["dataset"]["counts"] == {"train": 24, "val": 6, "test": 6}
    assert info["hyperparameters"]["rank"] == 8 and info["hyperparameters"]["lr"] == 5e-2
    assert info["seed"] == 0
    assert {"torch", "transformers", "peft", "trl"} <= set(info["libraries"])
    assert info["metrics"]["eval_loss_per_epoch"] == outcome.result.metrics["eval_loss_per_epoch"]
    assert info["prompt_format"] == "fledgling-specialist-v2-lean"  # the default prompt, recorded
    assert info["copy_rules"] == {"lookup_order.order_id": "digits",  # decoding holds the model to them
                                  "create_support_ticket.customer.email": "verbatim"}
    assert info["call_rules"] == ["distinct", "new"]  # and leaves repeated calls out
    m = info["metrics"]
    assert (m["train_examples"], m["train_chats"], m["val_examples"]) == (24, 24, 6)
    assert m["precision"] in ("bf16", "fp32")
    assert (outcome.plan.run_dir / info["artifacts"]["adapter"] / "adapter_config.json").is_file()


def test_adapter_and_merged_reload_give_identical_greedy_outputs(trained, tiny_base: Path) -> None:
    outcome, _, in_memory = trained
    ex = json.loads((outcome.plan.files["val"]).read_text().splitlines()[0])
    prompt = ex["messages"][:-1]
    reloaded, tok = load_trained(outcome.plan.run_dir)
    merged, _ = load_trained(outcome.plan.run_dir, merged=True)
    in_memory.eval()
    expected = greedy(in_memory, tok, prompt)
    assert greedy(reloaded, tok, prompt) == expected
    assert greedy(merged, tok, prompt) == expected
    from fledgling.train.bases import load_base

    base, _ = load_base(resolve_base(str(tiny_base)))
    assert greedy(base, tok, prompt) != expected  # the adapter changed what the model says


def test_status_record_and_catalog_entry(trained) -> None:
    outcome, store, _ = trained
    run = runs.get(store, outcome.run_id)
    assert run.state == "completed" and run.step == run.total_steps == 6
    assert run.metrics["eval_loss_per_epoch"] == outcome.result.metrics["eval_loss_per_epoch"]
    assert outcome.model is not None and run.model == outcome.model.name
    assert outcome.model.settings().adapter.endswith("adapter")


class InterruptAfterFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kw):
        raise KeyboardInterrupt


def test_interrupted_run_resumes_to_the_same_result(trained, tiny_base: Path, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/fledgling.db")
    data = write_dataset(tmp_path / "data")
    with pytest.raises(KeyboardInterrupt):
        train(spec_for(tiny_base), store, dataset_dir=data, out_dir=tmp_path / "run",
              callbacks=[InterruptAfterFirstCheckpoint()])
    [run] = runs.list_runs(store)
    assert run.state == "interrupted" and run.step == 3
    resumed = train(spec_for(tiny_base), store, dataset_dir=data, resume=True)
    assert resumed.run_id == run.id
    m = resumed.result.metrics
    assert m["steps_this_run"] == 3 and m["global_step"] == 6
    # same seed, same data: resuming lands exactly where the uninterrupted run did
    assert m["eval_loss_per_epoch"] == pytest.approx(trained[0].result.metrics["eval_loss_per_epoch"],
                                                     abs=1e-6)
    assert runs.get(store, run.id).state == "completed"
    store.close()


def test_long_chats_lose_their_oldest_turns_not_their_answers(tiny_base: Path) -> None:
    from fledgling.models.specialist import CHAT_TEMPLATE
    from fledgling.train.bases import load_base
    from fledgling.train.lora import fit_to_length

    _, tok = load_base(resolve_base(str(tiny_base)))
    tok.chat_template = CHAT_TEMPLATE
    system = [{"role": "system", "content": "Task: support-agent."}, {"role": "system", "content": "ctx"}]
    old = [{"role": "user", "content": "where is A1"}, {"role": "assistant", "content": "it left"}]
    last = [{"role": "user", "content": "refund A2 " * 3},
            {"role": "assistant", "content": '{"name":"refund","arguments":{"order_id":"A2"}}'}]
    short = {"messages": system + last}
    long = {"messages": system + old + last}
    context_only = {"messages": system + [old[0], {**old[1], "train": False}] + last}
    budget = len(tok.apply_chat_template(system + last, tokenize=True, return_dict=True)["input_ids"])
    too_long = {"messages": [last[0], {"role": "assistant", "content": "x " * 500}]}
    rows, counts = fit_to_length([short, long, too_long, context_only], tok, budget)
    # the long chat keeps its system context and last answer; its older answer becomes a chat of
    # its own, but a turn that is only context is not split off
    assert rows == [short, short, short, {"messages": system + old}]
    assert counts == {"chats": 4, "history_trimmed": 2, "split_off": 1, "dropped_too_long": 1}


def test_answer_loss_equals_trl_loss(tiny_base: Path, tmp_path: Path) -> None:
    """The LM head on the answer positions only gives TRL's loss, and the same gradients."""
    from trl import SFTTrainer

    from fledgling.models.specialist import CHAT_TEMPLATE
    from fledgling.train.bases import load_base

    data = load(write_dataset(tmp_path / "d", n_train=4, n_val=0, n_test=0), task="support-agent")
    plan = LoraBackend().prepare(spec_for(tiny_base, batch_size=4), data, tmp_path / "run")
    model, tok = load_base(resolve_base(str(tiny_base)))
    tok.chat_template = CHAT_TEMPLATE
    trainer = build_trainer(plan, model, tok, [])
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    ours = trainer.compute_loss(trainer.model, dict(batch))
    ours.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.model.zero_grad()
    theirs = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    theirs.backward()
    assert type(trainer).__name__ == "AnswerLossTrainer"
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-4)
    assert grads and all(torch.allclose(grads[n], p.grad, rtol=1e-3, atol=1e-6)
                         for n, p in trainer.model.named_parameters() if n in grads)


def test_full_fine_tune_trains_every_weight_and_reloads(tiny_base: Path, tmp_path: Path) -> None:
    """`method="full"`: no adapter; every weight moves; the saved model is the trained one and
    enters the catalog as a merged checkpoint."""
    from safetensors.torch import load_file

    from fledgling.train.bases import load_base

    store = Store(f"sqlite:///{tmp_path}/fledgling.db")
    data = write_dataset(tmp_path / "data")
    keep = Keep()
    outcome = train(spec_for(tiny_base, method="full", lr=1e-2), store, dataset_dir=data,
                    out_dir=tmp_path / "run", callbacks=[keep])
    run_dir = outcome.plan.run_dir
    m = outcome.result.metrics
    assert m["global_step"] == 6 and m["train_loss_last"] < m["train_loss_first"] - 0.3
    assert not (run_dir / "adapter").exists()
    info = manifest.read(run_dir)
    assert info["hyperparameters"]["method"] == "full" and info["artifacts"] == {"merged": "merged"}
    base, _ = load_base(resolve_base(str(tiny_base)))
    before = {n: p.detach() for n, p in base.named_parameters()}
    after = load_file(run_dir / "merged" / "model.safetensors")
    moved = [n for n, t in before.items() if n in after and not torch.equal(t, after[n])]
    assert len(moved) == len([n for n in before if n in after]) > 10  # every saved weight was trained
    ex = json.loads(outcome.plan.files["val"].read_text().splitlines()[0])
    reloaded, tok = load_trained(run_dir, merged=True)
    Keep.model.eval()
    assert greedy(reloaded, tok, ex["messages"][:-1]) == greedy(Keep.model, tok, ex["messages"][:-1])
    settings = outcome.model.settings()
    assert outcome.model.origin == "merged" and settings.adapter is None
    assert Path(settings.path) == (run_dir / "merged").resolve()
    store.close()


def test_full_fine_tune_only_on_the_lora_backend() -> None:
    with pytest.raises(ValueError, match="full fine-tuning runs on the lora backend"):
        TrainSpec(task="t", backend="unsloth", method="full")
    assert TrainSpec(task="t", method="full").method == "full"
