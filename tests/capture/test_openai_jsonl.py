"""OpenAI JSONL: both line shapes, and `dump_call` -> `read_calls` gives back equal calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fledgling.calls import Call, Feedback, Request, Response, ToolCall, Usage, default_task, stable_id
from fledgling.capture.openai_jsonl import dump_call, read_calls
from fledgling.errors import InputError


def test_full_shape_lines_map_every_field(fixtures: Path) -> None:
    calls = list(read_calls(fixtures / "openai_pairs.jsonl"))
    assert len(calls) == 3
    first, second, failed = calls
    assert first.id == "req-0001" and first.task == "support-agent" and first.session_id == "s-1"
    assert first.created_at == datetime(2024, 6, 2, 8, 0, 0, 250000, tzinfo=UTC)
    assert first.model == "gpt-4o-2024-05-13" and first.provider == "openai"
    assert first.request.seed == 11 and first.request.temperature == 0.2
    assert first.request.tools[0]["function"]["name"] == "lookup_order"
    assert first.response.tool_calls == [ToolCall(id="call_1", name="lookup_order",
                                                  arguments='{"order_id":"A-1043"}')]
    assert first.response.finish_reason == "tool_calls"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (190, 18)
    assert first.latency_ms == 812.4 and first.cost_usd == 0.00121

    assert second.task == "ticket-triage"  # from metadata fledgling.task
    assert second.request.response_format["json_schema"]["name"] == "triage"
    assert second.response.content == '{"category":"billing"}'
    assert second.created_at == datetime.fromtimestamp(1717315260, UTC)

    assert failed.status == "error" and failed.response is None
    assert failed.error.startswith("429")
    assert failed.task == default_task(failed.request.messages)


def test_finetuning_shape_takes_last_assistant_message_as_answer(fixtures: Path) -> None:
    calls = list(read_calls(fixtures / "openai_finetune.jsonl", task="support-agent"))
    assert [c.task for c in calls] == ["support-agent", "support-agent"]
    assert calls[0].response.tool_calls[0].name == "lookup_order"
    assert calls[0].request.messages[-1]["role"] == "user"
    assert calls[0].request.tools and calls[0].request.model_extra["parallel_tool_calls"] is False
    assert calls[1].response.content.startswith("You're welcome")
    # no id in the line: the id is derived from the content, so it is stable across reads
    assert [c.id for c in calls] == [c.id for c in read_calls(fixtures / "openai_finetune.jsonl")]


def _write(tmp_path: Path, calls: list[Call]) -> Path:
    path = tmp_path / "dump.jsonl"
    path.write_bytes(b"".join(orjson.dumps(dump_call(c)) + b"\n" for c in calls))
    return path


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    call = Call(
        id=stable_id("gateway", 1), task="support-agent", trace_id="t1", session_id="s1",
        source="gateway", created_at=datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        provider="openai", model="gpt-4o",
        request=Request(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
                        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                        tool_choice={"type": "function", "function": {"name": "f"}},
                        temperature=0.0, top_p=0.9, max_tokens=64, seed=5, frequency_penalty=0.5),
        response=Response(content="ok", tool_calls=[ToolCall(id="c1", name="f", arguments='{"a": [1, 2]}'),
                                                   ToolCall(id=None, name="g", arguments="not json")],
                          finish_reason="tool_calls", refusal=None),
        usage=Usage(input_tokens=10, output_tokens=3), latency_ms=123.4, cost_usd=1e-5,
        feedback=Feedback(score=-1, label="bad", comment="wrong tool",
                          corrected=Response(tool_calls=[ToolCall(id="c9", name="g", arguments="{}")])),
        metadata={"synthetic": True, "ground_truth": {"role": "assistant", "content": None}},
    )
    error = call.model_copy(update={"id": "err-1", "response": None, "status": "error",
                                    "error": "upstream timeout", "usage": Usage(input_tokens=7),
                                    "feedback": None, "metadata": {}})
    assert list(read_calls(_write(tmp_path, [call, error]))) == [call, error]


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=8)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    tool_calls = draw(st.lists(st.builds(ToolCall, id=st.none() | _text, name=_text.filter(bool),
                                         arguments=_text), max_size=3))
    response = draw(st.none() | st.builds(Response, content=st.none() | _text, tool_calls=st.just(tool_calls),
                                          finish_reason=st.none() | st.sampled_from(["stop", "tool_calls", "length"])))
    status = "error" if response is None else draw(st.sampled_from(["ok", "error"]))
    return Call(
        id=draw(st.text("abcdef0123456789_", min_size=1, max_size=40)),
        task=draw(_text.filter(bool)), trace_id=draw(st.none() | _text), session_id=draw(st.none() | _text),
        source=draw(st.sampled_from(["gateway", "langfuse", "otel", "openai-jsonl", "sdk"])),
        created_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=draw(st.integers(0, 10**15))),
        provider=draw(st.none() | _text), model=draw(st.none() | _text),
        request=Request(messages=draw(st.lists(st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "user", "assistant", "tool"]), "content": _text}), max_size=4)),
            temperature=draw(st.none() | st.floats(0, 2)), seed=draw(st.none() | st.integers(0, 2**31))),
        response=response,
        usage=Usage(input_tokens=draw(st.integers(0, 10**6)), output_tokens=draw(st.integers(0, 10**6))),
        latency_ms=draw(st.none() | st.floats(0, 1e6)), cost_usd=draw(st.none() | st.floats(0, 10)),
        status=status, error=draw(st.none() | _text) if status == "error" else None,
        feedback=draw(st.none() | st.builds(Feedback, score=st.none() | st.floats(-1, 1), label=st.none() | _text)),
        metadata=draw(st.dictionaries(_text, _json, max_size=3)),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(calls(), min_size=1, max_size=4))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, batch: list[Call]) -> None:
    path = _write(tmp_path_factory.mktemp("rt"), batch)
    assert list(read_calls(path)) == batch


@pytest.mark.parametrize("line, where, field", [
    (b'{"request": {"messages": []}, "response": {"choices": []}}', "line 2", "response.choices"),
    (b'{"request": {"messages": "hi"}}', "line 2", "request.messages"),
    (b'{"response": null}', "line 2", "request"),
    (b'{"request": {"messages": []}, "created_at": "yesterday"}', "line 2", "created_at"),
    (b'{"request": {"messages": []}, "response": {"choices": [{"message": {"content": 5}}]}}', "line 2", "content"),
    (b'{"request": {"messages": []}, "response": {"choices": [{"message": {}}], "usage": {"prompt_tokens": "many"}}}',
     "line 2", "response.usage.prompt_tokens"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "line 2", "messages[0].role"),
    (b'{"request": {"messages": []}, "status": "fine"}', "line 2", "status"),
    (b'[1, 2]', "line 2", None),
])
def test_malformed_lines_name_line_and_field(tmp_path: Path, line: bytes, where: str, field: str | None) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"request": {"messages": [{"role": "user", "content": "ok"}]}, "response": null, "error": "x"}\n'
                     + line + b"\n")
    with pytest.raises(InputError) as info:
        list(read_calls(path))
    assert info.value.source == str(path) and info.value.record == where
    assert info.value.field == field
    assert str(path) in str(info.value) and where in str(info.value)


def test_truncated_last_line_is_reported_as_truncated(tmp_path: Path, fixtures: Path) -> None:
    data = (fixtures / "openai_pairs.jsonl").read_bytes().rstrip(b"\n")
    path = tmp_path / "cut.jsonl"
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(InputError, match=r"line 3: invalid JSON .*truncated"):
        list(read_calls(path))
