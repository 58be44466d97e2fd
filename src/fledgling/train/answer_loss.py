"""The training loss on the answer tokens, with the LM head run on those positions only.

A specialist example is mostly prompt: the conversation so far, tool results and all. Only the
assistant's answers are learnt (a third of the tokens in the demo's data). TRL's SFTTrainer
projects every position onto the vocabulary (49k entries for SmolLM2, a fifth of the model's
compute) and then masks most of them away; here the decoder runs on the whole sequence, but the
LM head and the cross-entropy only on the positions that predict an answer token. Same loss,
same gradients, less compute: `benchmarks/train_throughput.py` measures the gain (docs/training.md).

Models whose head does more than a plain projection (logit soft-capping, logit scaling) fall
back to TRL's own loss.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer

IGNORE = -100


class AnswerLossTrainer(SFTTrainer):
    """SFTTrainer whose loss projects only the supervised positions onto the vocabulary.

    With an `answer_probe` (a callable scoring the model's own val answers,
    `fledgling.train.answer_probe`), every evaluation also reports `eval_answer_exact`, before
    the callbacks (early stopping) and the best-checkpoint choice see the metrics."""

    answer_probe: Any = None

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        output = super().evaluation_loop(*args, **kwargs)
        if self.answer_probe is not None and output.metrics is not None:
            prefix = kwargs.get("metric_key_prefix", "eval")
            output.metrics[f"{prefix}_answer_exact"] = self.answer_probe(self.model)
        return output

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        if return_outputs or not plain_head(core) or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        hidden = core.get_decoder()(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                    position_ids=inputs.get("position_ids"), use_cache=False).last_hidden_state
        labels = inputs["labels"][:, 1:]
        keep = labels != IGNORE
        logits = core.get_output_embeddings()(hidden[:, :-1][keep]).float()
        targets = labels[keep]
        count = keep.sum()
        total = num_items_in_batch if num_items_in_batch is not None else count
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(total).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        self._record(model.training, logits, targets, count, inputs)
        return loss

    def _record(self, training: bool, logits: torch.Tensor, targets: torch.Tensor, count: torch.Tensor,
                inputs: dict[str, Any]) -> None:
        """The metrics TRL logs: token accuracy on the answers, and tokens seen."""
        mode = "train" if training else "eval"
        with torch.no_grad():
            correct = self.accelerator.gather_for_metrics((logits.argmax(-1) == targets).sum()).sum()
            seen = self.accelerator.gather_for_metrics(count).sum()
        self._metrics[mode]["mean_token_accuracy"].append((correct / seen).item() if seen > 0 else 0.0)
        if training and "attention_mask" in inputs:
            self._total_train_tokens += self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


def plain_head(model: Any) -> bool:
    """Whether the logits are just the output projection of the decoder's last hidden state."""
    config = getattr(model, "config", None)
    if config is None or model.get_output_embeddings() is None:
        return False
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return not getattr(text, "final_logit_softcapping", None) and getattr(text, "logit_scale", None) in (None, 1, 1.0)
