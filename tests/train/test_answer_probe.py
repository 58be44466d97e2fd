"""Choosing the epoch on val answers: the probe's scoring, and the trainer following it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fledgling.models.specialist import CHAT_TEMPLATE
from fledgling.store import Store
from fledgling.train.answer_probe import AnswerProbe, probe_items, same_answer
from fledgling.train.backend import TrainSpec
from fledgling.train.bases import load_base, resolve_base
from fledgling.train.orchestrator import train

from .examples import write_dataset

CALL = '{"name":"refund","arguments":{"order_id":"A1","reason":"late"}}'


def test_same_answer_is_the_same_json_value_or_the_same_text() -> None:
    assert same_answer('{"arguments": {"reason": "late", "order_id": "A1"}, "name": "refund"}', CALL)
    assert same_answer(f" {CALL}\n", CALL)
    assert not same_answer(CALL.replace("A1", "A 1"), CALL)
    assert not same_answer(CALL[:-1], CALL)                  # cut off: not JSON, not the same text
    assert same_answer("Your order left today. ", "Your order left today.")
    assert not same_answer("Your order left.", "Your order left today.")


def test_probe_items_are_the_learnt_answers_with_what_came_before() -> None:
    system = {"role": "system", "content": "Task: support-agent."}
    u1, a1 = {"role": "user", "content": "where is A1"}, {"role": "assistant", "content": "ctx", "train": False}
    u2, a2 = {"role": "user", "content": "refund A1"}, {"role": "assistant", "content": CALL}
    u3, a3 = {"role": "user", "content": "thanks"}, {"role": "assistant", "content": "You are welcome."}
    chats = [{"messages": [system, u1, a1, u2, a2, u3, a3]}, {"messages": [system, u2, a2]}]
    items = probe_items(chats, limit=10)
    assert items == [([system, u1, a1, u2], CALL), ([system, u1, a1, u2, a2, u3], "You are welcome."),
                     ([system, u2], CALL)]
    assert probe_items(chats, limit=2) == items[:2]


def test_probe_counts_the_answers_the_model_gives(tiny_base: Path) -> None:
    model, tok = load_base(resolve_base(str(tiny_base)))
    tok.chat_template = CHAT_TEMPLATE
    model.eval()
    system = {"role": "system", "content": "Task: support-agent."}
    prompts = [[system, {"role": "user", "content": "where is my order A101?"}],
               [system, {"role": "user", "content": "refund A103, it is late"}]]
    ids = tok.apply_chat_template(prompts[0], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    said = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
    chats = [{"messages": [*prompts[0], {"role": "assistant", "content": said}]},
             {"messages": [*prompts[1], {"role": "assistant", "content": CALL}]}]
    assert AnswerProbe(chats, tok, limit=10, max_new_tokens=6)(model) == 0.5  # its own answer right, not the other
    assert AnswerProbe(chats, tok, limit=1, max_new_tokens=6)(model) == 1.0
    assert AnswerProbe(chats[1:], tok, limit=10)(model) == 0.0


def test_select_on_answers_picks_the_epoch_and_stops_on_them(tiny_base: Path, tmp_path: Path) -> None:
    """The tiny model never gets an answer exactly right while its val loss falls every epoch:
    on loss the last epoch is best and all four run; on answers no epoch beats the first, so
    training stops after one more (patience 1) and the first is kept."""
    data = write_dataset(tmp_path / "data")
    runs = {}
    for select_on in ("loss", "answers"):
        store = Store(f"sqlite:///{tmp_path}/{select_on}.db")
        spec = TrainSpec(task="support-agent", base=str(tiny_base), epochs=4, lr=5e-2, rank=8, batch_size=8,
                         grad_accum=1, select_on=select_on, probe_answers=4)
        runs[select_on] = train(spec, store, dataset_dir=data, out_dir=tmp_path / select_on).result.metrics
        store.close()
    loss, answers = runs["loss"], runs["answers"]
    assert loss["selected_on"] == "eval_loss" and loss["eval_answer_exact_per_epoch"] == []
    losses = loss["eval_loss_per_epoch"]
    assert len(losses) == 4 and losses == sorted(losses, reverse=True)
    assert loss["best_checkpoint"] == "checkpoint-12" and not loss["stopped_early"]
    assert answers["selected_on"] == "eval_answer_exact"
    assert answers["eval_answer_exact_per_epoch"] == [0.0, 0.0]
    assert answers["best_checkpoint"] == "checkpoint-3" and answers["stopped_early"]
    assert json.loads(json.dumps(answers["best_metric"])) == 0.0
