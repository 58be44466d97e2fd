"""Label checks: well-formed wrong labels, planted, found by name and counted exactly."""

from __future__ import annotations

import orjson
import pytest

from fledgling.calls import Response
from fledgling.curate import curate
from fledgling.curate.disagreement import DisagreementCheck, decisions, features
from fledgling.curate.grounding import GroundingCheck, Haystack, observe
from fledgling.errors import InputError
from fledgling.store import Store
from tests.curate.conftest import make_call, tool_call


def lookup(oid: str, i: int = 0) -> Response:
    return Response(tool_calls=[tool_call("lookup_order", {"order_id": oid}, i)], finish_reason="tool_calls")


def test_haystack_finds_ids_however_typed_and_numbers_however_written() -> None:
    hay = Haystack.of([{"role": "system", "content": "ORD-999999 is an example id."},
                       {"role": "user", "content": "where is #204518? I paid 1,250.50 for it"},
                       {"role": "tool", "content": '{"email":"Jane.Doe@example.com","qty":12}'}])
    assert hay.found("ORD-204518") and hay.found("jane.doe@example.com")
    assert hay.found(1250.5) and hay.found(12)
    assert not hay.found("ORD-205418")      # two digits swapped
    assert not hay.found("ORD-999999")      # only in the instructions: no evidence
    assert not hay.found(2501.0)


def test_observe_names_fields_and_skips_booleans_and_small_integers() -> None:
    answer = {"role": "assistant", "tool_calls": [tool_call("refund", {
        "order_id": "ORD-1234", "amount": 12.5, "notify": True, "qty": 2, "items": [{"sku": "SKU-1"}],
        "ref": "ord 1234", "case": "TKT-5551"})]}
    pairs = observe([{"role": "user", "content": "refund 12.50 on ORD-1234 please (case #5551)"}], answer)
    assert pairs == (("refund.order_id", True, "exact"), ("refund.amount", True, None),
                     ("refund.items.sku", False, ""), ("refund.ref", True, "verbatim"),
                     ("refund.case", True, "digits"))


def test_grounding_flags_exactly_the_values_not_in_the_conversation(sqlite_store: Store, tmp_path) -> None:
    calls = [make_call(i, metadata={"llm_error": None}) for i in range(80)]
    # well-formed, schema-valid, and wrong: an order id the customer never gave
    calls += [make_call(100 + i, response=lookup(f"ORD-{77770 + i}"), metadata={"llm_error": "wrong_argument"})
              for i in range(3)]
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0,
                label_checks=("grounding",))
    checks = ds.report["label_checks"]
    assert checks["flagged"] == {"grounding": 3}
    assert checks["grounded_fields"] == {"lookup_order.order_id": round(80 / 83, 4)}
    assert checks["copy_rules"] == {"lookup_order.order_id": "exact"}  # the ids are typed as they are
    assert [e["call_id"] for e in checks["examples"]["grounding"]] == [f"call-{100 + i:06d}" for i in range(3)]
    assert all("lookup_order.order_id" in e["why"] for e in checks["examples"]["grounding"])
    gt = ds.report["ground_truth"]
    assert gt["by_kind"]["wrong_argument"]["flagged"] == 3
    assert (gt["true_positives"], gt["false_positives"], gt["false_negatives"]) == (3, 0, 0)
    assert ds.report["examples_out"] == 83   # flagged, not dropped

    dropped = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0,
                     label_checks=("grounding",), drop_flagged=True)
    gone = sum(dropped.report["label_checks"]["dropped_from"].get(s, {}).get("grounding", 0)
               for s in ("train", "val"))
    assert gone > 0 and dropped.report["examples_out"] == 83 - gone
    assert dropped.report["splits"]["test"] == ds.report["splits"]["test"]   # test never changes
    in_train = (dropped.path / "train.jsonl").read_text() + (dropped.path / "val.jsonl").read_text()
    assert not any(f"ORD-{77770 + i}" in in_train for i in range(3))


def test_a_field_the_model_writes_itself_is_never_grounded() -> None:
    check = GroundingCheck(min_seen=5)
    for i in range(30):
        check.add(i, (("ticket.subject", i % 3 == 0, "exact" if i % 3 == 0 else ""),
                      ("ticket.order_id", True, "exact")))
    check.add(30, (("ticket.order_id", False, ""),))
    assert set(check.grounded_fields()) == {"ticket.order_id"}
    assert check.flagged() == {30: ["ticket.order_id"]}


def test_copy_rules_say_how_each_grounded_string_field_is_copied() -> None:
    check = GroundingCheck(min_seen=5)
    for i in range(40):
        check.add(i, (("ticket.email", True, "exact"),                                # as written
                      ("ticket.name", True, "exact" if i % 2 else "verbatim"),         # "jane doe" for Jane Doe
                      ("ticket.order_id", True, "verbatim" if i % 4 == 0 else "digits"),  # "#204518"
                      ("refund.amount", True, None),                                   # a number: no rule
                      ("ticket.subject", i % 3 == 0, "exact" if i % 3 == 0 else "")))  # the model's own
    check.add(40, (("ticket.email", True, "digits"),))  # 40 of 41 exact: still at or above 95%
    assert check.copy_rules() == {"ticket.email": "exact", "ticket.name": "verbatim", "ticket.order_id": "digits"}
    assert set(check.grounded_fields()) == {"ticket.email", "ticket.name", "ticket.order_id", "refund.amount"}


def test_consistency_majority_wins_and_a_tie_flags_both(sqlite_store: Store, tmp_path) -> None:
    calls = [make_call(i) for i in range(30)]
    text = Response(content="Let me check that for you.", finish_reason="stop")
    same_a = "where is my order ORD-55555? (ticket A)"
    same_b = "has ORD-66666 shipped? (ticket B)"
    calls += [make_call(100 + i, user=same_a, response=lookup("ORD-55555"), session=f"a{i}") for i in range(3)]
    calls += [make_call(110, user=same_a, response=text, session="a9", metadata={"llm_error": "no_tool_call"})]
    calls += [make_call(120, user=same_b, response=lookup("ORD-66666"), session="b1"),
              make_call(121, user=same_b, response=text, session="b2")]
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, label_checks=("consistency",))
    checks = ds.report["label_checks"]
    assert checks["flagged"] == {"consistency": 3}
    assert sorted(e["call_id"] for e in checks["examples"]["consistency"]) == \
        ["call-000110", "call-000120", "call-000121"]


def _ticket(i: int, category: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    words = {"billing": "I was charged twice on my card, please refund the charge",
             "shipping": "my parcel has not arrived, the tracking did not move"}[category]
    messages = [{"role": "system", "content": "Triage the ticket."},
                {"role": "user", "content": f"Ticket {i}: {words}. Regards, customer {i}"}]
    return messages, {"role": "assistant", "content": orjson.dumps({"category": category}).decode()}


def test_fold_models_flag_exactly_the_flipped_labels() -> None:
    check = DisagreementCheck(orders={"$.category": ('"billing"', '"shipping"')})
    flipped = {7, 33, 58, 91}
    for i in range(120):
        true = "billing" if i % 2 else "shipping"
        given = ("shipping" if true == "billing" else "billing") if i in flipped else true
        messages, answer = _ticket(i, true)
        answer = {"role": "assistant", "content": orjson.dumps({"category": given}).decode()}
        check.add(i, features(messages), decisions(answer, f"category={given}", {"$.category"}))
    flagged = check.flagged()
    assert set(flagged) == flipped
    assert all(names == ["$.category"] for names in flagged.values())   # the class is the same decision
    assert check.agreement["$.category"] == round(116 / 120, 4)
    assert {e[0][1:3] for e in check.evidence.values()} <= {('"billing"', '"shipping"'), ('"shipping"', '"billing"')}


def test_fold_models_judge_the_same_whatever_order_the_calls_arrive_in() -> None:
    """Folds hold whole conversations and come from a hash of the session, not the position: the
    same examples added in another order are judged the same."""
    flipped = {7, 33, 58, 91}
    examples = []
    for i in range(120):
        true = "billing" if i % 2 else "shipping"
        given = ("shipping" if true == "billing" else "billing") if i in flipped else true
        messages, _ = _ticket(i, true)
        answer = {"role": "assistant", "content": orjson.dumps({"category": given}).decode()}
        examples.append((i, features(messages), decisions(answer, f"category={given}", {"$.category"}),
                         f"session-{i // 3}"))
    judged = []
    for order in (examples, examples[::-1], examples[1::2] + examples[::2]):
        check = DisagreementCheck()
        for i, feats, pairs, session in order:
            check.add(i, feats, pairs, session)
        judged.append((check.flagged(), check.agreement))
    assert set(judged[0][0]) == flipped
    assert judged[1] == judged[0] and judged[2] == judged[0]


def test_a_text_that_only_promises_to_look_is_flagged_as_the_class_it_should_be() -> None:
    """The class decision is judged at 70% / 15% (a field at 90% / 5%): a text answer with no
    call where such requests get the call is caught, though the models give the text 5%: other
    requests like it, without the parcel number, are rightly answered in text (asking for it)."""
    check = DisagreementCheck()
    for i in range(150):
        if i % 6 < 3:
            user, cls = f"hi there, can you check my parcel {i}", "lookup_order"
        elif i % 6 == 3:
            user, cls = "hi there, can you check my parcel", "(no tool call)"  # which parcel? asked back
        else:
            user, cls = f"hi there, thanks {i}", "(no tool call)"
        if i in (20, 74):
            cls = "(no tool call)"  # planted: "Let me check that for you." and no call
        check.add(i, features([{"role": "user", "content": user}]), (("class", cls),), f"s{i}")
    assert set(check.flagged()) == {20, 74}
    assert all(e[0][2] == "lookup_order" and e[0][3] >= 0.05 for e in check.evidence.values())  # past 5%


def test_fold_models_judge_nothing_below_the_minimum_or_when_they_cannot_learn() -> None:
    small = DisagreementCheck()
    for i in range(20):
        messages, answer = _ticket(i, "billing")
        small.add(i, features(messages), (("class", "a" if i % 2 else "b"),))
    assert small.flagged() == {}
    noise = DisagreementCheck()
    for i in range(100):
        messages, _ = _ticket(i, "billing")   # the same words whatever the label: nothing to learn
        noise.add(i, features(messages), (("class", "a" if (i * 7919) % 3 else "b"),))
    assert noise.flagged() == {}
    assert noise.agreement["class"] < 0.95


def test_model_disagreement_in_curation_is_counted_against_ground_truth(sqlite_store: Store, tmp_path) -> None:
    calls = []
    for i in range(80):
        cancel = i % 2 == 0
        oid = f"ORD-{30000 + i}"
        user = (f"please cancel order {oid}, I do not need it anymore (ref {i})" if cancel
                else f"where is my parcel {oid}? tracking has not moved (ref {i})")
        name = "cancel_order" if cancel else "lookup_order"
        if i in (10, 31):   # the wrong tool, with valid arguments
            name = "lookup_order" if cancel else "cancel_order"
        calls.append(make_call(i, user=user, response=Response(
            tool_calls=[tool_call(name, {"order_id": oid}, i)], finish_reason="tool_calls"),
            metadata={"llm_error": "wrong_tool" if i in (10, 31) else None}))
    tools = [{"type": "function", "function": {"name": n, "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}
        for n in ("lookup_order", "cancel_order")]
    for c in calls:
        c.request.tools = tools
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0)
    checks = ds.report["label_checks"]
    assert checks["flagged"] == {"grounding": 0, "consistency": 0, "model_disagreement": 2}
    assert sorted(e["call_id"] for e in checks["examples"]["model_disagreement"]) == ["call-000010", "call-000031"]
    gt = ds.report["ground_truth"]
    assert gt["by_kind"]["wrong_tool"] == {"planted": 2, "dropped": 0, "flagged": 2, "corrected": 0,
                                           "tool_failed": 0, "recall": 1.0}
    assert (gt["precision"], gt["recall"]) == (1.0, 1.0)


def test_an_unknown_label_check_is_refused(sqlite_store: Store, tmp_path) -> None:
    sqlite_store.insert_calls([make_call(i) for i in range(3)])
    with pytest.raises(InputError, match="label check 'vibes' is not known"):
        curate(sqlite_store, "support-agent", out_dir=tmp_path, label_checks=("vibes",))


def test_near_duplicates_vote_on_the_class_and_identical_inputs_on_the_answer() -> None:
    from fledgling.curate.label_noise import Member, suspects

    hello = [Member(i, bytes([i]), bytes([100 + i]), "(no tool call)", 0, b"hey") for i in range(4)]
    assert suspects(hello) == []                      # greetings with different names: all agree
    odd = Member(9, b"\x09", b"\xff", "lookup_order", 0, b"hey")
    assert suspects([*hello, odd]) == [odd]           # 4 against 1 on the class
    twins = [Member(20, b"same", b"a", "x", 0, b"t"), Member(21, b"same", b"b", "x", 0, b"t")]
    assert suspects(twins) == twins                   # one input, two answers, no majority
    fixed = [Member(30, b"same", b"a", "x", 2, b"t"), Member(31, b"same", b"b", "x", 0, b"t")]
    assert suspects(fixed) == [fixed[1]]              # the correction wins
    apart = [Member(40, b"p", b"a", "x", 0, b"t1"), Member(41, b"q", b"b", "y", 0, b"t2")]
    assert suspects(apart) == []                      # different last messages are not compared
