"""The local backend's prompt formats, grammars, shared prefix and threads, on the tiny random model."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from fledgling.calls import Request, Response, ToolCall
from fledgling.models import manifest, open_backend, resolve_model
from fledgling.models.constrained import GrammarBook
from fledgling.models.local import LocalBackend, _read_compact, common_prefix, decode_threads
from fledgling.models.specialist import CHAT_TEMPLATE, render_example, render_response

PROMPTS = ["hi", "tell me about order 12", "x", "refund please, the parcel never arrived", "ok", "why?"]
SYSTEM = "You are the support assistant of a shop. Answer briefly; use the tools when they help. " * 2
TOOLS = [{"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]{4}$"}},
                   "required": ["order_id"], "additionalProperties": False}}}]
CALL = '{"name":"lookup_order","arguments":{"order_id":"A1234"}}'


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> LocalBackend:
    return LocalBackend("tiny", tiny_model_dir, batch_size=3, max_new_tokens=24, dtype="float32")


@pytest.fixture(scope="module")
def tiny_constrained(tiny_model_dir) -> LocalBackend:
    return LocalBackend("tiny", tiny_model_dir, batch_size=6, max_new_tokens=200, constrained=True,
                        dtype="float32")


def _plain_generate(backend: LocalBackend, request: Request, max_new_tokens: int = 24) -> str:
    tok = backend.tokenizer
    ids = tok(backend.render(request), return_tensors="pt", add_special_tokens=False).input_ids
    out = backend.model.generate(ids, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=backend.pad_id)
    return tok.decode([t for t in out[0, ids.shape[1]:].tolist() if t not in backend.stop_ids],
                      skip_special_tokens=True)


# -- the shared prompt prefix ----------------------------------------------------------------------------

def test_shared_prefix_is_encoded_once_and_changes_no_token(tiny_model_dir):
    backend = LocalBackend("tiny", tiny_model_dir, batch_size=3, max_new_tokens=24, dtype="float32")
    reqs = [Request(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}])
            for t in PROMPTS]
    gens = backend.generate_sync(reqs)
    prefix = backend._prefix[0]
    assert len(prefix) > len(SYSTEM)  # the system turn and the start of the user turn, in characters
    for req, gen in zip(reqs, gens, strict=True):
        assert gen.response.content == _plain_generate(backend, req)
    # another system prompt: the part it shares is reused (cut), the rest encoded; still exact
    other = [Request(messages=[{"role": "system", "content": SYSTEM + "Be formal."},
                               {"role": "user", "content": t}]) for t in PROMPTS[:2]]
    for req, gen in zip(other, backend.generate_sync(other), strict=True):
        assert gen.response.content == _plain_generate(backend, req)
    assert backend._prefix[0] != prefix


def test_common_prefix():
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix([[5], [6]]) == 0 and common_prefix([[1, 2], [1, 2]]) == 2


def test_decode_threads_are_given_or_the_idle_cores():
    cores = os.cpu_count() or 1
    assert decode_threads(3) == 3
    assert 1 <= decode_threads() <= cores
    assert decode_threads(own_load=os.getloadavg()[0]) == cores  # only our own work: every core


# -- the compact (specialist) prompt ----------------------------------------------------------------------

def test_compact_prompt_is_exactly_what_the_trainer_trains_on(tiny):
    compact = tiny.variant(prompt="compact", task="support-agent")
    messages = [{"role": "system", "content": "You are Nova, the long prompt of the agent."},
                {"role": "user", "content": "where is A1234?"}]
    answer = Response(tool_calls=[ToolCall(name="lookup_order", arguments='{"order_id": "A1234"}')])
    trained = tiny.tokenizer.apply_chat_template(
        render_example(messages + [answer.message()], TOOLS, task="support-agent"),
        chat_template=CHAT_TEMPLATE, tokenize=False)
    asked = compact.render(Request(messages=messages, tools=TOOLS))
    assert trained == asked + render_response(answer) + "<|im_end|>\n"
    assert "Task: support-agent." in asked and "Nova" not in asked
    assert len(asked) < len(tiny.render(Request(messages=messages, tools=TOOLS)))


def test_compact_constrained_answers_in_the_trained_format(tiny_constrained):
    compact = tiny_constrained.variant(prompt="compact", task="t")
    two = TOOLS + [{"type": "function", "function": {"name": "escalate", "parameters": {
        "type": "object", "properties": {"urgent": {"type": "boolean"}}, "required": ["urgent"],
        "additionalProperties": False}}}]
    reqs = [Request(messages=[{"role": "user", "content": t}], tools=two, tool_choice="required") for t in PROMPTS]
    for gen in compact.generate_sync(reqs):
        assert gen.response.tool_calls and not gen.parse_failed, gen.text
        assert gen.text == render_response(gen.response)  # one compact object, or a list of two or more
    schema = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9},
                                               "b": {"enum": ["x", "y"]}},
              "required": ["a", "b"], "additionalProperties": False}
    req = Request(messages=[{"role": "user", "content": "classify"}],
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    gen = compact.generate_sync([req])[0]
    assert gen.text == json.dumps(json.loads(gen.text), separators=(",", ":")) == gen.response.content


def test_text_only_when_allowed_and_never_when_a_call_is_required(tiny_constrained):
    """With text allowed an answer is a valid call or text that cannot be mistaken for one."""
    for prompt in ("chat", "compact"):
        free = tiny_constrained.variant(prompt=prompt, task="t", allow_text=True)
        reqs = [Request(messages=[{"role": "user", "content": t}], tools=TOOLS) for t in PROMPTS]
        for gen in free.generate_sync(reqs):
            if gen.response.tool_calls:
                assert {tc.name for tc in gen.response.tool_calls} == {"lookup_order"}, gen.text
            else:
                assert gen.text and gen.text[0] not in "{[<\t\n\r " and not gen.parse_failed, gen.text
        # one call each (a random model would otherwise list calls until the token limit)
        single = [Request(messages=r.messages, tools=TOOLS, parallel_tool_calls=False) for r in reqs]
        required = [r.model_copy(update={"tool_choice": "required"}) for r in single]
        assert all(len(g.response.tool_calls) == 1 for g in free.generate_sync(required))
        calls_only = tiny_constrained.variant(prompt=prompt, task="t")
        assert all(len(g.response.tool_calls) == 1 for g in calls_only.generate_sync(single))


def _accepts(book: GrammarBook, compiled, text: str, eos: int) -> bool:
    matcher = book.matcher(compiled)
    return matcher.accept_string(text) and matcher.accept_token(eos) and matcher.is_terminated()


def test_grammars_accept_exactly_the_allowed_answers(tiny):
    book = GrammarBook(tiny.tokenizer, tiny.model.config.vocab_size)
    eos = tiny.tokenizer.eos_token_id
    req = Request(messages=[{"role": "user", "content": "x"}], tools=TOOLS)
    with_text = book.for_request(req, prompt="compact", allow_text=True)
    calls_only = book.for_request(req, prompt="compact", allow_text=False)
    assert _accepts(book, with_text, CALL, eos) and _accepts(book, calls_only, CALL, eos)
    assert _accepts(book, with_text, f"[{CALL},{CALL}]", eos)
    assert not _accepts(book, with_text, f"[{CALL}]", eos)  # one call is written as an object
    assert _accepts(book, with_text, "Sure, which order?", eos)
    assert not _accepts(book, calls_only, "Sure, which order?", eos)
    for bad in (' {"name"', '{"name": "lookup_order"', '{"name":"refund","arguments":{}}', "\nhello", ""):
        assert not _accepts(book, with_text, bad, eos), bad
    chat = book.for_request(req, prompt="chat", allow_text=True)
    assert _accepts(book, chat, '<tool_call>[{"name": "lookup_order", "arguments": {"order_id": "A1234"}}]'
                                '</tool_call>', eos)
    assert _accepts(book, chat, "Hello!", eos) and not _accepts(book, chat, "<b>Hello</b>", eos)
    forced = req.model_copy(update={"tool_choice": {"type": "function", "function": {"name": "lookup_order"}}})
    assert not _accepts(book, book.for_request(forced, prompt="compact", allow_text=True), "Hello!", eos)
    serial = req.model_copy(update={"parallel_tool_calls": False})
    assert not _accepts(book, book.for_request(serial, prompt="compact"), f"[{CALL},{CALL}]", eos)
    chat_call = '{"name": "lookup_order", "arguments": {"order_id": "A1234"}}'
    assert not _accepts(book, book.for_request(serial, prompt="chat"),
                        f"<tool_call>[{chat_call}, {chat_call}]</tool_call>", eos)


def test_the_specialist_writes_and_is_held_to_arguments_in_sorted_key_order(tiny):
    """Curation's datasets hold arguments with sorted keys, so a tuned specialist writes them so;
    the compact grammar asks for that order (not the schema's), and earlier calls in the prompt
    are rendered in it too."""
    tools = [{"type": "function", "function": {"name": "refund", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["order_id", "amount"],
        "properties": {"order_id": {"type": "string", "maxLength": 8}, "amount": {"type": "integer"},
                       "items": {"type": "array", "items": {
                           "type": "object", "required": ["sku", "qty"], "additionalProperties": False,
                           "properties": {"sku": {"type": "string", "maxLength": 8}, "qty": {"type": "integer"}}}}}}}}]
    book = GrammarBook(tiny.tokenizer, tiny.model.config.vocab_size)
    eos = tiny.tokenizer.eos_token_id
    req = Request(messages=[{"role": "user", "content": "x"}], tools=tools, max_tokens=200)
    grammars = book.attempts(req, prompt="compact")
    sorted_call = '{"name":"refund","arguments":{"amount":5,"items":[{"qty":1,"sku":"S1"}],"order_id":"A1"}}'
    schema_order = '{"name":"refund","arguments":{"order_id":"A1","amount":5,"items":[{"sku":"S1","qty":1}]}}'
    for compiled in grammars:
        assert _accepts(book, compiled, sorted_call, eos) and not _accepts(book, compiled, schema_order, eos)
    chat = book.for_request(req, prompt="chat")  # the model's own format keeps the schema's order
    assert _accepts(book, chat, f"<tool_call>[{schema_order.replace(':', ': ').replace(',', ', ')}]</tool_call>", eos)
    earlier = Response(tool_calls=[ToolCall(id="c1", name="refund",
                                            arguments='{"order_id":"A1","amount":5,"items":[{"sku":"S1","qty":1}]}')])
    assert render_response(earlier) == sorted_call


def test_a_date_field_admits_only_real_dates(tiny):
    """xgrammar's own `format: date` admits "2026-11-31"; the grammar admits only real days."""
    book = GrammarBook(tiny.tokenizer, tiny.model.config.vocab_size)
    eos = tiny.tokenizer.eos_token_id
    schema = {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}, "required": ["d"],
              "additionalProperties": False}
    req = Request(messages=[{"role": "user", "content": "x"}], max_tokens=64,
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    for compiled in book.attempts(req, prompt="compact"):
        for day in ("2026-11-30", "2026-12-31", "2024-02-28", "0001-01-01"):
            assert _accepts(book, compiled, f'{{"d":"{day}"}}', eos), day
        for day in ("2026-11-31", "2026-04-31", "2026-02-30", "2026-13-01", "0000-01-01"):
            assert not _accepts(book, compiled, f'{{"d":"{day}"}}', eos), day


def test_a_length_bounded_string_admits_no_raw_control_character(tiny):
    """xgrammar's own rule for a string with minLength/maxLength admits a raw tab or newline,
    which JSON forbids inside a string: the answer then did not parse and came back as text."""
    book = GrammarBook(tiny.tokenizer, tiny.model.config.vocab_size)
    eos = tiny.tokenizer.eos_token_id
    schema = {"type": "object", "required": ["s", "t"], "additionalProperties": False,
              "properties": {"s": {"type": "string", "maxLength": 12}, "t": {"type": "string", "minLength": 2}}}
    req = Request(messages=[{"role": "user", "content": "x"}], max_tokens=400,
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    for compiled in book.attempts(req, prompt="compact"):
        assert _accepts(book, compiled, '{"s":"a b","t":"cd"}', eos)
        assert _accepts(book, compiled, '{"s":"","t":"' + "x" * 40 + '"}', eos)
        for bad in ('{"s":"a\tb","t":"cd"}', '{"s":"a\nb","t":"cd"}', '{"s":"ab","t":"c\td"}',
                    '{"s":"' + "x" * 13 + '","t":"cd"}', '{"s":"a","t":"c"}'):
            assert not _accepts(book, compiled, bad, eos), bad


def test_compact_answers_are_read_by_the_trainers_parser():
    tools = Request(messages=[], tools=TOOLS)
    resp, failed = _read_compact(f" {CALL}", tools, "stop")
    assert not failed and resp.tool_calls[0].name == "lookup_order" and resp.tool_calls[0].id == "call_0"
    assert _read_compact('{"name":"lookup_order","argu', tools, "length")[1] is True
    text, failed = _read_compact("Which order?", tools, "stop")
    assert not failed and text.content == "Which order?" and not text.tool_calls
    structured = Request(messages=[], response_format={"type": "json_object"})
    assert _read_compact('{"a":1}', structured, "stop") == (Response(content='{"a":1}', finish_reason="stop"), False)
    assert _read_compact("a: 1", structured, "stop")[1] is True


def test_a_trained_model_is_asked_in_the_format_of_its_manifest(tiny_model_dir, tmp_path):
    trained = tmp_path / "run" / "merged"
    shutil.copytree(tiny_model_dir, trained)
    spec = resolve_model(f"hf:{trained}")
    assert open_backend(spec).prompt == "chat"  # no manifest: the model's own template
    fields = {k: {} for k in manifest.REQUIRED} | {"task": "support-agent",
                                                   "prompt_format": "fledgling-specialist-v1"}
    manifest.write(trained.parent, manifest.build(**fields))
    backend = open_backend(spec)
    assert (backend.prompt, backend.task) == ("compact", "support-agent")
    assert open_backend(spec, prompt="chat").prompt == "chat"
