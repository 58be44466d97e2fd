"""The one normaliser on shapes the real traces show only in part."""

from __future__ import annotations

import pytest

from fledgling.capture import messages
from fledgling.capture.coerce import BadField


def test_langgraph_js_tool_result_named_by_the_tool() -> None:
    conv = messages.conversation([
        {"role": "user", "content": "find x"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
                                                             "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "search", "content": "found x", "tool_call_id": "c1"},
    ], "input")
    assert conv.messages[2] == {"role": "tool", "content": "found x", "tool_call_id": "c1", "name": "search"}
    with pytest.raises(BadField, match="unknown message role 'wizard'"):
        messages.conversation([{"role": "wizard", "content": "?"}], "input")


def test_anthropic_blocks_and_system() -> None:
    conv = messages.conversation({"system": [{"type": "text", "text": "Be kind."}], "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "..."},
                                          {"type": "tool_use", "id": "t1", "name": "greet", "input": {"n": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "hello"}]},
                                     {"type": "text", "text": "and now?"}]},
    ], "tools": [{"name": "greet", "input_schema": {"type": "object"}}]}, "input")
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool", "user"]
    assert conv.messages[2]["tool_calls"][0]["function"] == {"name": "greet", "arguments": '{"n":1}'}
    assert conv.messages[3] == {"role": "tool", "tool_call_id": "t1", "content": "hello"}
    assert conv.messages[4] == {"role": "user", "content": "and now?"}
    assert conv.tools == [{"type": "function", "function": {"name": "greet", "parameters": {"type": "object"}}}]
    answer = messages.response({"role": "assistant", "stop_reason": "tool_use",
                                "content": [{"type": "tool_use", "id": "t2", "name": "greet", "input": {}}]}, "out")
    assert answer.finish_reason == "tool_calls" and answer.tool_calls[0].name == "greet"


def test_gemini_camel_case_and_candidates() -> None:
    conv = messages.conversation({"systemInstruction": {"parts": [{"text": "Sys"}]}, "contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]},
    ], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}]}, "input")
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool"]
    assert conv.messages[3] == {"role": "tool", "name": "f", "content": '{"ok":true}'}
    assert [t["function"]["name"] for t in conv.tools] == ["f"]
    answer = messages.response({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {}}}]}, "finishReason": "STOP"}]}, "out")
    assert answer.finish_reason == "tool_calls" and answer.tool_calls[0].name == "f"


def test_responses_items_merge_parallel_calls_and_read_the_response() -> None:
    conv = messages.conversation({"instructions": "Sys", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "two lookups"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "a", "name": "look", "arguments": '{"k":1}'},
        {"type": "function_call", "call_id": "b", "name": "look", "arguments": '{"k":2}'},
        {"type": "function_call_output", "call_id": "a", "output": "one"},
        {"type": "function_call_output", "call_id": "b", "output": "two"},
    ]}, "input")
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool", "tool"]
    assert [tc["id"] for tc in conv.messages[2]["tool_calls"]] == ["a", "b"]
    assert conv.messages[1]["content"] == "two lookups"
    answer = messages.response({"object": "response", "status": "completed", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]}]}, "out")
    assert (answer.content, answer.finish_reason) == ("done", "stop")


def test_python_repr_messages_are_read_without_eval() -> None:
    conv = messages.conversation({"messages": [
        "role='user' content='hi' metrics=Metrics(x=1) created_at=5",
        "role='assistant' content=None tool_calls=[{'id': 'c', 'function': {'name': 'f', 'arguments': '{}'}}]",
    ]}, "input")
    assert conv.messages[0] == {"role": "user", "content": "hi"}
    assert conv.messages[1]["tool_calls"][0]["function"]["name"] == "f"
    with pytest.raises(BadField, match="is text, not a message"):
        messages.conversation({"messages": ["role=__import__('os').system('echo pwned')"]}, "input")
