"""The llama.cpp engine on the real SmolLM2 GGUF: valid constrained answers, adapters converted to
GGUF that answer like the transformers path, deterministic answers, and the fallback."""

from __future__ import annotations

import json
import logging
import sys

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fledgling.calls import Request
from fledgling.config import ModelSettings
from fledgling.curate.grounding import Haystack, looked_at
from fledgling.models import gguf_export
from fledgling.models import spec as spec_module
from fledgling.models.llamacpp import LlamaCppBackend, available
from fledgling.models.local import LocalBackend
from fledgling.models.smollm2 import smollm2_gguf
from fledgling.models.spec import ModelSpec, choose_engine, open_local, resolve_model
from tests.models.test_gguf_export import save_checkpoint

needs_llama_cpp = pytest.mark.skipif(available() is not None, reason="llama-cpp-python is not installed "
                                     "(scripts/llama_cpp.sh builds it)")

TOOLS = [{"type": "function", "function": {
    "name": "get_order", "description": "Look up an order by its id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "maxLength": 12}},
                   "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "refund", "description": "Refund an order",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string", "maxLength": 12},
            "amount": {"type": "integer", "minimum": 0, "maximum": 5000},
            "reason": {"type": "string", "enum": ["late", "damaged", "wrong item"]}},
            "required": ["order_id", "amount"], "additionalProperties": False}}}]
QUESTIONS = ["Where is my order A-1234?", "Please refund order B-77, it arrived damaged. It cost 19.99.",
             "My parcel Z-9 never came, I want my 40 dollars back", "Has order 5521 shipped yet?",
             "Refund C-3 please, wrong item, 12 euros", "Track order QQ-100 for me"]


@pytest.fixture(scope="module")
def engine() -> LlamaCppBackend:
    backend = open_local(resolve_model("gguf:smollm2"), constrained=True, max_new_tokens=128, engine="llama.cpp")
    assert isinstance(backend, LlamaCppBackend)
    return backend


def _tool_request(question: str, **kw) -> Request:
    return Request(messages=[{"role": "user", "content": question}], tools=TOOLS, **kw)


# -- valid under the grammar -------------------------------------------------------------------------

_leaf = st.one_of(
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(1, 10)),
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-50, 50), st.integers(0, 500)),
    st.just({"type": "boolean"}),
    st.builds(lambda vals: {"type": "string", "enum": vals},
              st.lists(st.text("abcdefgh xyz", min_size=1, max_size=6), min_size=1, max_size=4, unique=True)),
    st.builds(lambda n: {"type": "array", "items": {"type": "boolean"}, "maxItems": n}, st.integers(0, 3)),
)
_names = st.text("abcdefghijklmnop_", min_size=1, max_size=8)


@st.composite
def object_schemas(draw, depth: int = 0) -> dict:
    fields = draw(st.dictionaries(_names, _leaf if depth else st.one_of(_leaf, object_schemas(depth=1)),
                                  min_size=1, max_size=4))
    required = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    return {"type": "object", "properties": fields, "required": required, "additionalProperties": False}


@needs_llama_cpp
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(schema=object_schemas(), jump=st.booleans(), prompt=st.sampled_from(["chat", "compact"]))
def test_structured_answers_validate_against_many_schemas(engine, schema, jump, prompt):
    """Every constrained answer to a response_format schema parses and validates, with and
    without jump-forward, in both prompt formats (bounded schemas, so a cap of 128 is enough)."""
    backend = engine.variant(jump_forward=jump, prompt=prompt, task="forms")
    req = Request(messages=[{"role": "user", "content": "Fill in the form for a late parcel."}],
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    gen = backend.generate_sync([req])[0]
    assert gen.error is None and gen.response is not None and gen.response.finish_reason != "length", gen.text
    jsonschema.validate(json.loads(gen.response.content or ""), schema)
    assert not gen.parse_failed
    assert gen.token_logprobs is not None and len(gen.token_logprobs) == gen.output_tokens
    assert all(lp <= 0.0 for lp in gen.token_logprobs)


@needs_llama_cpp
@pytest.mark.parametrize("prompt", ["chat", "compact"])
def test_tool_calls_validate_and_jump_forward_saves_forward_passes(engine, prompt):
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    passes = {}
    for jump in (False, True):
        backend = engine.variant(jump_forward=jump, prompt=prompt, task="support-agent")
        steps = 0
        for q in QUESTIONS:
            gen = backend.generate_sync([_tool_request(q, tool_choice="required")])[0]
            steps += backend.last_steps
            assert gen.response is not None and gen.response.tool_calls, gen.text
            for tc in gen.response.tool_calls:
                jsonschema.validate(json.loads(tc.arguments), schemas[tc.name])
            forced = sum(1 for lp in gen.token_logprobs or [] if lp == 0.0)
            assert forced > 0  # braces and key names are forced by the grammar
        passes[jump] = steps
    assert passes[True] < passes[False] * 0.7, passes


@needs_llama_cpp
def test_strings_are_not_cut_to_the_worst_case_bound(engine):
    """The bound counts a token as one byte and a character as four, so at a cap of 96 it leaves a
    string about 20 characters; an answer that fits the cap keeps its whole string (the same
    answer the contract's grammar alone gives), and a cut one is decoded again under the bound."""
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"],
              "additionalProperties": False}
    req = Request(messages=[{"role": "user", "content": "Summarise in one sentence: my parcel ORD-123456 arrived "
                                                        "broken and I would like a refund of 40 dollars."}],
                  max_tokens=96,
                  response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    backend = engine.variant(prompt="chat")
    book = backend._grammars
    retries = book.retries
    gen = backend.generate_sync([req])[0]
    summary = json.loads(gen.response.content)["summary"]
    assert gen.response.finish_reason == "stop" and book.retries == retries
    assert len(summary) > 24, summary
    book.bound = False
    try:
        alone = backend.generate_sync([req])[0]
    finally:
        book.bound = True
    assert alone.text == gen.text


@needs_llama_cpp
def test_a_text_answer_cut_at_the_cap_is_kept_not_shortened(engine):
    """Where text is allowed, a text answer that reaches the cap is readable as it is: it is kept
    (finish_reason length, as a hosted model's), not decoded again as 22 characters (what the
    bound leaves a text at a cap of 96)."""
    backend = engine.variant(prompt="compact", allow_text=True, task="support-agent")
    book = backend._grammars
    retries = book.retries
    gen = backend.generate_sync([_tool_request("Thanks a lot, that is all for today. Goodbye!", max_tokens=96)])[0]
    assert gen.response.tool_calls == [] and gen.response.content == gen.text, gen.text
    assert gen.text[:1] not in "{[" and len(gen.text) > 60, gen.text
    assert book.retries == retries


@needs_llama_cpp
@pytest.mark.parametrize("rule", ["verbatim", "digits"])
def test_copied_values_are_held_to_the_conversation(engine, rule):
    """With copy rules (what training writes in a manifest), every order id the model writes is
    one the customer gave: the base model, untuned, is held to the question's ids."""
    rules = {"get_order.order_id": rule, "refund.order_id": rule}
    backend = engine.variant(prompt="compact", task="support-agent", copy_rules=rules)
    before = backend.copy_counts
    for q in QUESTIONS:
        gen = backend.generate_sync([_tool_request(q, tool_choice="required")])[0]
        assert gen.response is not None and gen.response.tool_calls, gen.text
        hay = Haystack.of([{"role": "user", "content": q}])
        for tc in gen.response.tool_calls:
            order_id = json.loads(tc.arguments)["order_id"]
            assert not looked_at(order_id) or hay.found(order_id), (q, order_id)
    after = backend.copy_counts
    assert after["held"] > before.get("held", 0)


# -- deterministic -----------------------------------------------------------------------------------

@needs_llama_cpp
def test_answers_do_not_depend_on_what_was_decoded_before(engine):
    """Replay gives the same answer: the same request after others, alone, in another order,
    and on a freshly loaded model, with the shared prefix cached or not."""
    backend = engine.variant(prompt="compact", task="support-agent")
    reqs = [_tool_request(q) for q in QUESTIONS[:4]]
    first = [g.text for g in backend.generate_sync(reqs)]
    again = [g.text for g in backend.generate_sync(list(reversed(reqs)))][::-1]
    alone = [backend.generate_sync([r])[0].text for r in reqs]
    fresh = open_local(resolve_model("gguf:smollm2"), constrained=True, max_new_tokens=128, engine="llama.cpp",
                       prompt="compact")
    reloaded = [g.text for g in fresh.variant(task="support-agent").generate_sync(reqs)]
    assert first == again == alone == reloaded


def _conversation(customer: str, question: str, turns: int) -> list[Request]:
    """The calls of one agent conversation: each repeats the last one's messages plus the tool's
    answer and the user's next line, as an agent's traffic does; the system message names the
    customer, so two conversations share no prefix."""
    messages: list[dict] = [{"role": "system", "content": f"You help {customer} with their orders."},
                            {"role": "user", "content": question}]
    calls = []
    for turn in range(turns):
        calls.append(Request(messages=list(messages), tools=TOOLS, max_tokens=96))
        messages += [{"role": "assistant", "content": None, "tool_calls": [{
                          "id": f"call_{turn}", "type": "function",
                          "function": {"name": "get_order", "arguments": json.dumps({"order_id": f"A-{turn}"})}}]},
                     {"role": "tool", "tool_call_id": f"call_{turn}", "content": json.dumps({"status": "shipped"})},
                     {"role": "user", "content": "and what about my other order?"}]
    return calls


@needs_llama_cpp
def test_interleaved_conversations_reuse_their_prefix_and_answer_the_same(engine):
    """Three conversations served turn by turn, interleaved: each call after the first of its
    conversation restores that conversation's earlier turns from the prefix cache (the live cache
    holds another conversation by then), and every answer equals the answer of a model that
    keeps nothing between requests."""
    conversations = [_conversation(name, q, 3) for name, q in zip(("Ines", "Tom", "Aiko"), QUESTIONS, strict=False)]
    order = [conv[turn] for turn in range(3) for conv in conversations]  # A1 B1 C1 A2 B2 C2 ...
    backend = engine.variant(prompt="chat", task="support-agent")
    before = backend.prefix_cache
    served = [g.text for g in backend.generate_sync(order)]
    after = backend.prefix_cache
    forgetful = LlamaCppBackend("forgetful", engine.model_path, tokenizer=engine.tokenizer, constrained=True,
                                max_new_tokens=128, prompt="chat", task="support-agent", prefix_cache_mb=0)
    alone = []
    for req in order:
        forgetful._shared.cached, forgetful._shared.steps = [], set()  # nothing kept: evaluated whole
        alone.append(forgetful.generate_sync([req])[0].text)
    assert served == alone
    # each later turn restored most of its conversation's previous prompt (all of it but the
    # answer's opening), though another conversation was served in between
    previous = [len(backend.tokenizer(backend.render(conv[turn - 1]), add_special_tokens=False).input_ids)
                for turn in (1, 2) for conv in conversations]
    reused = after["reused_tokens"] - before["reused_tokens"]
    assert reused >= 0.9 * sum(previous), (reused, previous)
    assert after["prompts"] >= 3 and after["bytes"] > 0


# -- adapters --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory):
    """A PEFT LoRA on the dequantised SmolLM2 with random A and B (so it changes the answers),
    and the same weights merged and saved as a full checkpoint."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf()
    root = tmp_path_factory.mktemp("adapters")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, init_lora_weights=False, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * (0.02 if "lora_A" in name else 0.05))
    peft_model.save_pretrained(root / "adapter")
    save_checkpoint(peft_model.merge_and_unload(), root / "full")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(root / "full")
    return root


def _answers(backend, n: int = 6) -> list[str]:
    free = backend.variant(constrained=False, prompt="compact", task="support-agent")
    return [g.text or "" for g in free.generate_sync([_tool_request(q, max_tokens=24) for q in QUESTIONS[:n]])]


def _agreement(a: list[str], b: list[str]) -> float:
    """Share of answers whose first 12 characters are equal (greedy answers diverge after a first
    differing token; quantised arithmetic may flip a near tie)."""
    return sum(x[:12] == y[:12] for x, y in zip(a, b, strict=True)) / len(a)


@needs_llama_cpp
@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", ["q8_0", "source"])
def test_converted_lora_answers_like_the_transformers_path(random_adapter, gguf_type):
    """Merged into a Q8_0 copy (the default) or applied at run time on the Q4_1 base ('source')."""
    spec = ModelSpec("tuned", ModelSettings(kind="hf", base="smollm2-135m-instruct",
                                            adapter=str(random_adapter / "adapter"), gguf_type=gguf_type))
    fast = open_local(spec, max_new_tokens=24, engine="llama.cpp")
    slow = open_local(spec, max_new_tokens=24, engine="transformers", dtype="float32")
    base = open_local(ModelSpec("base", ModelSettings(kind="gguf", path="smollm2", gguf_type=gguf_type)),
                      max_new_tokens=24, engine="llama.cpp")
    assert isinstance(fast, LlamaCppBackend) and isinstance(slow, LocalBackend)
    tuned_fast, tuned_slow, untuned = _answers(fast), _answers(slow), _answers(base)
    assert _agreement(tuned_fast, tuned_slow) >= 5 / 6, (tuned_fast, tuned_slow)
    changed = sum(a != b for a, b in zip(tuned_fast, untuned, strict=True))
    assert changed >= 3, f"the adapter changed {changed} of 6 answers: was it applied?"
    if gguf_type == "source":
        assert fast.lora_path and fast.weights_type == "Q4_1 + LoRA at run time"
        again = gguf_export.lora_gguf(random_adapter / "adapter", smollm2_gguf())
    else:
        assert fast.lora_path is None and fast.weights_type == "Q8_0"
        again = gguf_export.serving_gguf(smollm2_gguf(), "q8_0", random_adapter / "adapter")
    assert str(again) in (fast.lora_path, fast.model_path)  # converted once, then reused


@needs_llama_cpp
@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", ["q8_0", "source"])
def test_converted_checkpoint_answers_like_the_transformers_path(random_adapter, gguf_type):
    spec = ModelSpec("full", ModelSettings(kind="hf", path=str(random_adapter / "full"),
                                           base="smollm2-135m-instruct", gguf_type=gguf_type))
    fast = open_local(spec, max_new_tokens=24, engine="llama.cpp")
    slow = open_local(spec, max_new_tokens=24, engine="transformers", dtype="float32")
    assert isinstance(fast, LlamaCppBackend) and isinstance(slow, LocalBackend)
    # re-quantised (to the base's Q4_1, or to Q8_0): the agreement is measured, not exact
    assert fast.weights_type == ("Q4_1" if gguf_type == "source" else "Q8_0")
    assert _agreement(_answers(fast), _answers(slow)) >= 4 / 6


# -- engine choice and fallback ------------------------------------------------------------------------

@needs_llama_cpp
def test_auto_uses_llama_cpp_for_gguf_weights_only(tiny_model_dir):
    assert choose_engine(ModelSettings(kind="gguf", path="smollm2")) == "llama.cpp"
    assert choose_engine(ModelSettings(kind="hf", base="smollm2-135m-instruct", adapter="x")) == "llama.cpp"
    assert choose_engine(ModelSettings(kind="hf", path=str(tiny_model_dir))) == "transformers"
    assert choose_engine(ModelSettings(kind="gguf", path="smollm2", engine="transformers")) == "transformers"


def test_a_missing_engine_falls_back_to_transformers_with_one_warning(tiny_model_dir, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if it never built
    monkeypatch.setattr(spec_module, "_WARNED", set())
    spec = ModelSpec("tiny", ModelSettings(kind="hf", path=str(tiny_model_dir), engine="llama.cpp"))
    with caplog.at_level(logging.WARNING, logger="fledgling.models"):
        backend = open_local(spec, max_new_tokens=4)
        open_local(spec, max_new_tokens=4)
    assert isinstance(backend, LocalBackend)
    warnings = [r.getMessage() for r in caplog.records if "transformers engine" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "llama-cpp-python" in warnings[0]
    assert backend.generate_sync([Request(messages=[{"role": "user", "content": "hi"}])])[0].error is None


@needs_llama_cpp
def test_a_failed_engine_load_falls_back_to_transformers(tiny_model_dir, caplog):
    """The tiny checkpoint is not a fine-tune of a GGUF llama.cpp can serve: warned, then transformers."""
    spec = ModelSpec("tiny2", ModelSettings(kind="hf", path=str(tiny_model_dir), engine="llama.cpp"))
    with caplog.at_level(logging.WARNING, logger="fledgling.models"):
        backend = open_local(spec, max_new_tokens=4)
    assert isinstance(backend, LocalBackend)
    assert any("llama.cpp engine failed" in r.getMessage() for r in caplog.records)


@needs_llama_cpp
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["llama.cpp", "transformers"])
def test_the_manifest_rules_reach_either_engine(random_adapter, tmp_path, engine):
    """A trained model's manifest says which copied fields to hold and which repeated calls to
    leave out; opening it gives the engine both."""
    import shutil

    shutil.copytree(random_adapter / "adapter", tmp_path / "adapter")
    (tmp_path / "manifest.json").write_text(json.dumps({
        "task": "support-agent", "prompt_format": "fledgling-specialist-v2-lean",
        "copy_rules": {"lookup_order.order_id": "digits"}, "call_rules": ["distinct", "new"]}))
    spec = ModelSpec("tuned", ModelSettings(kind="hf", base="smollm2-135m-instruct",
                                            adapter=str(tmp_path / "adapter"), gguf_type="source"))
    backend = open_local(spec, max_new_tokens=8, engine=engine)
    assert backend.call_rules == ("distinct", "new")
    assert backend.copy_rules == {"lookup_order.order_id": "digits"}
    assert backend.variant(constrained=True).call_rules == ("distinct", "new")  # variants keep them
    assert isinstance(backend, LlamaCppBackend if engine == "llama.cpp" else LocalBackend)
