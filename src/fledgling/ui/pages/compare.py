"""Compare: two eval runs of a task side by side, item by item, with the differences marked
and a filter to the items where they disagree."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from fledgling.calls import Response as Answer
from fledgling.evals import runs as eval_runs
from fledgling.store import Store
from fledgling.ui.pages.deps import store
from fledgling.ui.render import page

router = APIRouter()

SHOWN_METRICS = ("success", "tool_name_match", "args_exact_match", "arg_precision", "arg_recall",
                 "schema_valid", "exact_match", "field_accuracy")


@dataclass
class Pair:
    position: int
    call_id: str
    label_source: str
    a: eval_runs.ItemResult
    b: eval_runs.ItemResult
    a_text: str
    b_text: str

    @property
    def same_answer(self) -> bool:
        return answer_key(self.a.prediction, self.a.error) == answer_key(self.b.prediction, self.b.error)

    @property
    def same_outcome(self) -> bool:
        return self.a.scores.get("success") == self.b.scores.get("success")

    @property
    def disagree(self) -> bool:
        return not (self.same_answer and self.same_outcome)


@router.get("/compare")
def compare(request: Request, s: Store = Depends(store), task: str = "", a: str = "", b: str = "",
            only: str = "") -> Response:
    by_task = {t: eval_runs.list_runs(s, t) for t, _ in s.tasks()}
    by_task = {t: r for t, r in by_task.items() if r}
    task = task if task in by_task else next(iter(by_task), "")
    runs = by_task.get(task, [])
    run_a, run_b = _pick(runs, a, b)
    pairs: list[Pair] = []
    if run_a and run_b:
        items_a = {i.call_id: i for i in eval_runs.load_run_items(s, run_a).items}
        items_b = eval_runs.load_run_items(s, run_b).items
        for pos, item_b in enumerate(items_b):
            item_a = items_a.get(item_b.call_id)
            if item_a is not None:
                pairs.append(Pair(pos, item_b.call_id, item_b.label_source, item_a, item_b,
                                  answer_text(item_a.prediction, item_a.error),
                                  answer_text(item_b.prediction, item_b.error)))
    disagreements = sum(p.disagree for p in pairs)
    shown = [p for p in pairs if p.disagree] if only == "disagree" else pairs
    return page(request, "compare.html", title="Compare", tasks=list(by_task), task=task, runs=runs,
                run_a=run_a, run_b=run_b, pairs=shown, total=len(pairs), disagreements=disagreements,
                only=only, metrics=SHOWN_METRICS)


def _pick(runs: list[eval_runs.EvalRun], a: str, b: str) -> tuple[Any, Any]:
    """The runs asked for; by default the newest reference (recorded) run against the newest other."""
    by_id = {r.id: r for r in runs}
    run_a, run_b = by_id.get(a), by_id.get(b)
    if run_a is None:
        run_a = next((r for r in runs if r.model_kind == "recorded" and r is not run_b), None) \
            or next((r for r in runs[1:] if r is not run_b), None)
    if run_b is None:
        same_split = [r for r in runs if r is not run_a and (run_a is None or r.split == run_a.split)]
        run_b = same_split[0] if same_split else None
    return run_a, run_b


def answer_key(prediction: Answer | None, error: str | None) -> Any:
    """What makes two answers the same: tool calls as parsed (name, arguments), order-free, or the text."""
    if prediction is None:
        return ("error", error)
    calls = []
    for tc in prediction.tool_calls:
        try:
            args = json.dumps(tc.parsed_arguments(), sort_keys=True)
        except ValueError:
            args = tc.arguments
        calls.append((tc.name, args))
    if calls:
        return ("tools", tuple(sorted(calls)))
    content = (prediction.content or "").strip()
    try:
        return ("json", json.dumps(json.loads(content), sort_keys=True))
    except ValueError:
        return ("text", content)


def answer_text(prediction: Answer | None, error: str | None) -> str:
    if prediction is None:
        return f"error: {error or 'no answer'}"
    if prediction.tool_calls:
        return "\n".join(f"{tc.name}({tc.arguments})" for tc in prediction.tool_calls)
    return prediction.content or "(empty)"
