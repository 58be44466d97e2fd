"""Folding curated calls back into conversations: each answer learnt once, rejected ones never."""

from __future__ import annotations

from fledgling.models.specialist import CHAT_TEMPLATE
from fledgling.train.conversations import fold
from fledgling.train.dataset import Example

SYSTEM = {"role": "system", "content": "You are a support agent."}


def turn(n: int, answer: str) -> list[dict]:
    return [{"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": answer}]


def test_a_session_folds_into_one_chat_with_every_answer_learnt() -> None:
    t1, t2, t3 = turn(1, "a1"), turn(2, "a2"), turn(3, "a3")
    session = [Example([SYSTEM, *t1]), Example([SYSTEM, *t1, *t2]), Example([SYSTEM, *t1, *t2, *t3])]
    other = Example([SYSTEM, *turn(9, "b9")])
    chats = fold([session[1], other, session[0], session[2]], task="support-agent", signatures=False)
    assert len(chats) == 2
    whole = chats[0]
    assert whole[0] == {"role": "system", "content": "Task: support-agent."}
    assert [m["content"] for m in whole if m["role"] == "assistant"] == ["a1", "a2", "a3"]
    assert all("train" not in m for m in whole)
    assert [m["content"] for m in chats[1] if m["role"] == "assistant"] == ["b9"]


def test_a_turn_curation_dropped_is_context_and_a_corrected_label_wins() -> None:
    t1, t2, t3 = turn(1, "wrong"), turn(2, "a2"), turn(3, "a3")
    corrected_2 = [*t1, t2[0], {"role": "assistant", "content": "a2 corrected"}]
    # no example for turn 1 (dropped by curation); turn 2's label was corrected by feedback
    chats = fold([Example([SYSTEM, *corrected_2]), Example([SYSTEM, *t1, *t2, *t3])], task="t", signatures=False)
    assert len(chats) == 1
    assistants = [m for m in chats[0] if m["role"] == "assistant"]
    assert [(m["content"], m.get("train", True)) for m in assistants] == \
        [("wrong", False), ("a2 corrected", True), ("a3", True)]


def test_context_turns_carry_no_loss_in_the_template(tiny_base) -> None:
    from fledgling.train.bases import load_base, resolve_base

    _, tok = load_base(resolve_base(str(tiny_base)))
    chat = fold([Example([SYSTEM, *turn(1, "never learn this"), *turn(2, "learn this")])], task="t",
                signatures=False)[0]
    out = tok.apply_chat_template(chat, chat_template=CHAT_TEMPLATE, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    learnt = tok.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m])
    assert learnt == "learn this<|im_end|>"
    assert "never learn this" in tok.decode(out["input_ids"])
