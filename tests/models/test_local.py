"""The local transformers backend on a tiny random model (built here) and on the real SmolLM2 GGUF."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fledgling.calls import Request
from fledgling.curate.grounding import Haystack, looked_at
from fledgling.models import open_backend, resolve_model
from fledgling.models.local import LocalBackend
from fledgling.models.prompting import render_prompt
from fledgling.models.specialist import render_response

PROMPTS = ["hi", "tell me about order 12", "x", "refund please, the parcel never arrived", "ok", "why?"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> LocalBackend:
    return LocalBackend("tiny", tiny_model_dir, batch_size=4, max_new_tokens=24, dtype="float32")


@pytest.fixture(scope="module")
def tiny_constrained(tiny_model_dir) -> LocalBackend:
    return LocalBackend("tiny", tiny_model_dir, batch_size=4, max_new_tokens=400, constrained=True,
                        dtype="float32")


def _requests(texts):
    return [Request(messages=[{"role": "user", "content": t}]) for t in texts]


def test_batched_loop_gives_exactly_what_plain_generate_gives(tiny):
    """Left padding, the KV cache and rows leaving the batch early change nothing in the tokens."""
    reqs = _requests(PROMPTS)
    gens = tiny.generate_sync(reqs)
    tok = tiny.tokenizer
    for req, gen in zip(reqs, gens, strict=True):
        ids = tok(render_prompt(tok, req, native_tools=False), return_tensors="pt",
                  add_special_tokens=False).input_ids
        out = tiny.model.generate(ids, do_sample=False, max_new_tokens=24, pad_token_id=tiny.pad_id)
        new = [t for t in out[0, ids.shape[1]:].tolist() if t not in tiny.stop_ids]
        assert tok.decode(new, skip_special_tokens=True) == gen.response.content
        assert gen.output_tokens == len(out[0]) - ids.shape[1]
        assert gen.input_tokens == ids.shape[1] and gen.latency_ms > 0


def test_answers_do_not_depend_on_batch_composition(tiny):
    reqs = _requests(PROMPTS)
    together = [g.response.content for g in tiny.generate_sync(reqs)]
    alone = [tiny.generate_sync([r])[0].response.content for r in reqs[:3]]
    assert together[:3] == alone


def test_token_limit_is_reported_as_length(tiny):
    gens = tiny.generate_sync([Request(messages=[{"role": "user", "content": "go"}], max_tokens=3)])
    assert gens[0].output_tokens <= 3
    if gens[0].output_tokens == 3:
        assert gens[0].response.finish_reason == "length"


def test_async_interface(tiny):
    gens = asyncio.run(tiny.generate(_requests(["a", "b"])))
    assert len(gens) == 2 and all(g.error is None for g in gens)


# -- constrained decoding: a family of small random schemas ---------------------------------------------

leaf_schema = st.one_of(
    st.just({"type": "boolean"}),
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-50, 50), st.integers(0, 100)),
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(0, 6)),
    st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=4, unique=True)
      .map(lambda vs: {"enum": vs}),
    st.just({"type": "null"}),
)
small_schema = st.recursive(
    leaf_schema,
    lambda inner: st.one_of(
        st.builds(lambda item, n: {"type": "array", "items": item, "maxItems": n}, inner, st.integers(0, 3)),
        st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, min_size=1, max_size=3)
          .map(lambda props: {"type": "object", "properties": props, "required": sorted(props),
                              "additionalProperties": False})),
    max_leaves=5)
object_schema = st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), small_schema,
                                min_size=1, max_size=3).map(
    lambda props: {"type": "object", "properties": props, "required": sorted(props),
                   "additionalProperties": False})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(object_schema)
def test_constrained_structured_output_always_validates(tiny_constrained, schema):
    req = Request(messages=[{"role": "user", "content": "classify"}],
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    gen = tiny_constrained.generate_sync([req])[0]
    assert gen.response.finish_reason == "stop", gen.response.content
    Draft202012Validator(schema).validate(json.loads(gen.response.content))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.lists(object_schema, min_size=1, max_size=2))
def test_constrained_tool_calls_always_name_a_tool_and_validate(tiny_constrained, param_schemas):
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "parameters": s}}
             for i, s in enumerate(param_schemas)]
    # one call (bounded output): a random model would otherwise list calls until the token limit
    gen = tiny_constrained.generate_sync([Request(messages=[{"role": "user", "content": "do it"}],
                                                  tools=tools, parallel_tool_calls=False)])[0]
    assert gen.response.finish_reason == "tool_calls", gen.response.content
    assert not gen.parse_failed and gen.response.tool_calls, gen.response.content
    for tc in gen.response.tool_calls:
        index = int(tc.name.removeprefix("tool_"))
        Draft202012Validator(param_schemas[index]).validate(json.loads(tc.arguments))


def test_an_answer_cut_at_the_cap_is_decoded_again_under_the_bounded_grammar(tiny_model_dir):
    """A random model does not close an unbounded string by itself: under the contract's own
    grammar it reaches the cap (cut, invalid); the engine decodes those answers again under the
    bounded grammar, so every answer ends and validates."""
    schema = {"type": "object", "properties": {"note": {"type": "string"},
                                               "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["note", "tags"], "additionalProperties": False}
    reqs = [Request(messages=[{"role": "user", "content": t}], max_tokens=40,
                    response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
            for t in PROMPTS]
    backend = LocalBackend("tiny", tiny_model_dir, batch_size=4, max_new_tokens=40, constrained=True,
                           dtype="float32")
    book = backend._grammars
    book.bound = False  # the contract's grammar alone, cut at the cap
    cut = [g.response.finish_reason == "length" for g in backend.generate_sync(reqs)]
    assert any(cut) and book.retries == 0
    book.bound = True
    gens = backend.generate_sync(reqs)
    assert book.retries == sum(cut)
    for gen in gens:
        assert gen.response.finish_reason == "stop" and not gen.parse_failed, gen.text
        Draft202012Validator(schema).validate(json.loads(gen.response.content))
        assert gen.token_logprobs is not None and len(gen.token_logprobs) == gen.output_tokens


def test_copied_values_are_held_to_the_conversation_on_this_engine_too(tiny_constrained):
    """A random model invents every value; with a copy rule (what training writes in a
    manifest), each one it writes is found in the conversation, in a JSON answer and in a call."""
    schema = {"type": "object", "properties": {"order_id": {"type": "string", "maxLength": 16}},
              "required": ["order_id"], "additionalProperties": False}
    texts = ["where is ORD-204518?", "order 7731 never came", "please track QX-99120 for me"]
    json_reqs = [Request(messages=[{"role": "user", "content": t}], max_tokens=60,
                         response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
                 for t in texts]
    tool = [{"type": "function", "function": {"name": "lookup", "parameters": schema}}]
    call_reqs = [Request(messages=[{"role": "user", "content": t}], max_tokens=150, tools=tool,
                         parallel_tool_calls=False, tool_choice="required") for t in texts]

    def order_ids(backend, reqs):
        out = []
        for gen in backend.generate_sync(reqs):
            assert gen.response is not None and not gen.parse_failed, gen.text
            args = gen.response.tool_calls[0].arguments if gen.response.tool_calls else gen.response.content
            out.append(json.loads(args)["order_id"])
        return out

    def found(text, value):
        return not looked_at(value) or Haystack.of([{"role": "user", "content": text}]).found(value)

    for reqs, rules in ((json_reqs, {"$.order_id": "verbatim"}), (call_reqs, {"lookup.order_id": "verbatim"})):
        free = order_ids(tiny_constrained.variant(copy_rules={}), reqs)
        assert not all(found(t, v) for t, v in zip(texts, free, strict=True)), free  # invented
        held = order_ids(tiny_constrained.variant(copy_rules=rules), reqs)
        assert all(found(t, v) for t, v in zip(texts, held, strict=True)), held


def test_unconstrained_tiny_model_rarely_produces_valid_json(tiny):
    """The property above is the grammar's doing: without it the same model does not manage."""
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}
    req = Request(messages=[{"role": "user", "content": "classify"}],
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    assert tiny.generate_sync([req])[0].parse_failed


# -- the real default SLM ---------------------------------------------------------------------------------

@pytest.mark.slow  # loads the real 135M weights: `make test` runs it, `make check` leaves it out
def test_smollm2_gguf_short_run():
    """SmolLM2-135M from its GGUF: a constrained tool call in its own format and in the compact
    one (shorter prompt, the trained answer format), and a text answer where text is allowed."""
    backend = open_backend(resolve_model("gguf:smollm2"), constrained=True, max_new_tokens=40)
    tools = [{"type": "function", "function": {
        "name": "get_order", "description": "Look up an order by its id",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "maxLength": 12}},
                       "required": ["order_id"], "additionalProperties": False}}}]
    reqs = [Request(messages=[{"role": "user", "content": "Where is my order A-1234?"}], tools=tools),
            Request(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8)]
    call, text = backend.generate_sync(reqs)
    assert [tc.name for tc in call.response.tool_calls] == ["get_order"]
    assert "order_id" in json.loads(call.response.tool_calls[0].arguments)
    assert text.response.content and text.output_tokens <= 8 and text.input_tokens > 5
    compact = backend.variant(prompt="compact", task="support-agent", allow_text=True)
    order, greeting = compact.generate_sync([
        reqs[0].model_copy(update={"tool_choice": "required"}),
        Request(messages=[{"role": "user", "content": "Hi there!"}], tools=tools, max_tokens=12)])
    assert order.response.tool_calls[0].name == "get_order" and order.text == render_response(order.response)
    assert order.input_tokens < call.input_tokens
    assert greeting.response.content and not greeting.response.tool_calls and not greeting.parse_failed
