"""Val accuracy of the answers themselves, for choosing the epoch (`TrainSpec.select_on="answers"`).

Val loss says how likely the reference answers are; what counts is whether the model's own
answer is right. After every val-loss pass the probe answers the first `probe_answers` learnt
val answers greedily, each from the conversation before it (in the chat format the model is
trained in), and counts the exact ones: the same JSON value as the reference (so the same tool
calls with the same arguments, or the same structured answer), else the same text. The share
is logged as `eval_answer_exact`; the best epoch and early stopping then follow it instead of
the loss. Cost: one greedy generation per probed answer and epoch (about a second each for the
135M model on a small CPU).
"""

from __future__ import annotations

from typing import Any

import orjson

SLACK_TOKENS = 8  # tokens allowed beyond the reference's length
END = "<|im_end|>"  # where an answer ends in the specialist chat template


def probe_items(chats: list[dict[str, Any]], limit: int) -> list[tuple[list[dict[str, Any]], str]]:
    """(conversation before the answer, reference answer) for the first `limit` learnt answers."""
    out: list[tuple[list[dict[str, Any]], str]] = []
    for chat in chats:
        messages = chat["messages"]
        for i, m in enumerate(messages):
            if m["role"] == "assistant" and m.get("train") is not False and isinstance(m.get("content"), str):
                out.append((messages[:i], m["content"]))
                if len(out) >= limit:
                    return out
    return out


def same_answer(predicted: str, reference: str) -> bool:
    """The same JSON value (key order and spacing aside), or, for text, the same text."""
    try:
        return bool(orjson.loads(predicted.strip()) == orjson.loads(reference))
    except orjson.JSONDecodeError:
        return predicted.strip() == reference.strip()


class AnswerProbe:
    """Greedy answers to val prompts, scored exactly; `__call__(model)` gives the share right."""

    def __init__(self, chats: list[dict[str, Any]], tokenizer: Any, limit: int, *,
                 max_new_tokens: int | None = None):
        """`max_new_tokens`: a fixed budget per answer (default: the reference's tokens + `SLACK_TOKENS`)."""
        self.tokenizer = tokenizer
        self.items = probe_items(chats, limit)
        self.max_new_tokens = max_new_tokens

    def __call__(self, model: Any) -> float:
        import torch

        if not self.items:
            return 0.0
        was_training = model.training
        model.eval()
        hits = 0
        device = next(model.parameters()).device
        with torch.no_grad():
            for prompt, reference in self.items:
                ids = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                                         return_dict=True)["input_ids"].to(device)
                budget = self.max_new_tokens or \
                    len(self.tokenizer(reference, add_special_tokens=False)["input_ids"]) + SLACK_TOKENS
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=budget,
                                     do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
                text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=False)
                hits += same_answer(text.split(END)[0], reference)
        if was_training:
            model.train()
        return hits / len(self.items)
