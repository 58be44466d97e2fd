"""The copy guard: copied argument values held to the conversation while they are decoded."""

from __future__ import annotations

import pytest

from fledgling.calls import Request
from fledgling.curate.grounding import Haystack
from fledgling.models.copying import CopyGuard, JsonCursor, choose, field_schemas

CONVERSATION = [
    {"role": "system", "content": "Example order: ORD-999999, example email ops@shop.test."},
    {"role": "system", "content": "Signed-in customer: Hiroshi Okafor <okafor.h@outlook.com>."},
    {"role": "user", "content": "Hi, I'm Jane Doe (jane.doe@example.com). Where is order #204518?"},
]
RULES = {"lookup_order.order_id": "digits", "create_ticket.email": "verbatim",
         "create_ticket.address.postal_code": "verbatim"}


def cursor_after(text: str) -> JsonCursor:
    cursor = JsonCursor()
    cursor.feed(text)
    return cursor


@pytest.mark.parametrize(("text", "tools", "field"), [
    ('{"name":"lookup_order","arguments":{"order_id":"OR', True, "lookup_order.order_id"),
    ('[{"name":"a","arguments":{}},{"name":"create_ticket","arguments":{"address":{"postal_code":"M5',
     True, "create_ticket.address.postal_code"),
    ('<tool_call>[{"name": "create_ticket", "arguments": {"email": "ja', True, "create_ticket.email"),
    ('{"category":"billing","tags":["urg', False, "$.tags"),
])
def test_the_cursor_names_the_field_being_written_as_curation_does(text: str, tools: bool, field: str) -> None:
    cursor = cursor_after(text)
    assert cursor.in_value_string()
    assert cursor.field_name(tools) == field


@pytest.mark.parametrize("text", [
    '{"name":"lookup_or',                             # the tool's name, not an argument
    '{"name":"lookup_order","arguments":{"order_',    # a key
    '{"name":"lookup_order","arguments":{"n":12',     # a number
    'Sure, {"order_id": "',                           # a text answer that mentions JSON
])
def test_outside_an_argument_string_there_is_nothing_to_hold(text: str) -> None:
    cursor = cursor_after(text)
    name = cursor.field_name(True) if cursor.in_value_string() else None
    assert name not in RULES


def test_escapes_and_quotes_inside_strings_do_not_lose_the_place() -> None:
    cursor = cursor_after('{"name":"create_ticket","arguments":{"note":"say \\"hi\\", {ok}","email":"j')
    assert cursor.field_name(True) == "create_ticket.email" and cursor.text == "j"


def guard_at(text: str) -> CopyGuard:
    guard = CopyGuard(CONVERSATION, RULES, tools=True)
    guard.feed(text)
    return guard


def test_a_verbatim_field_accepts_only_what_the_conversation_holds() -> None:
    guard = guard_at('{"name":"create_ticket","arguments":{"email":"jane.')
    assert guard.rule() == "verbatim"
    assert guard.accepts("doe", "verbatim") and guard.accepts("DOE@ex", "verbatim")
    assert not guard.accepts("smith", "verbatim")
    assert guard.accepts('",', "verbatim")          # "jane." is inside the conversation: it may end
    assert not guard_at('{"name":"create_ticket","arguments":{"email":"').accepts("ops", "verbatim")  # system only


def test_a_digits_field_takes_its_digit_runs_from_the_conversation_and_writes_the_rest() -> None:
    guard = guard_at('{"name":"lookup_order","arguments":{"order_id":"ORD-20')
    assert guard.rule() == "digits"
    assert guard.accepts("45", "digits") and guard.accepts("4518", "digits")
    assert not guard.accepts("99", "digits")        # "2099" starts no digit run of the conversation
    assert not guard.accepts('"}', "digits")        # "ORD-20": not found yet, it cannot end here
    assert not guard_at('{"name":"lookup_order","arguments":{"order_id":"').accepts("12-", "digits")  # short runs too
    done = guard_at('{"name":"lookup_order","arguments":{"order_id":"ORD-204518')
    assert done.accepts('"}', "digits")
    assert not guard_at('{"name":"lookup_order","arguments":{"order_id":"ORD-999999').accepts('"', "digits")


def test_choose_takes_the_best_token_the_guard_accepts_and_yields_when_none_is() -> None:
    pieces = ["smith", "doe", "@", "zzz"]
    guard = guard_at('{"name":"create_ticket","arguments":{"email":"jane.')
    assert choose([0, 1, 2], pieces, guard, "verbatim") == 1
    assert (guard.held, guard.refused, guard.yielded) == (1, 1, 0)
    assert choose([0, 3], pieces, guard, "verbatim") == 0   # nothing accepted: the grammar's best
    assert guard.yielded == 1
    # past the best tokens, the rest of the allowed ones, most likely first
    assert choose([0, 3], pieces, guard, "verbatim", rest=lambda: [0, 3, 1, 2]) == 1
    assert (guard.refused, guard.yielded) == (2, 1)


def test_exact_means_as_written_and_whole_words() -> None:
    hay = Haystack.of(CONVERSATION)
    assert hay.exact("okafor.h@outlook.com") and hay.exact("Hiroshi  Okafor") and hay.exact("#204518")
    assert not hay.exact("h@outlook.com")          # starts inside the email
    assert not hay.exact("okafor.h@outlook")       # ends inside it
    assert hay.exact("okafor.h@outlook", whole=False)
    assert not hay.exact("hiroshi okafor")         # not as written
    assert not hay.exact("ops@shop.test")          # the leading system message is no evidence


def test_an_exact_field_with_a_format_starts_only_where_such_a_value_is() -> None:
    tools = [{"type": "function", "function": {"name": "create_ticket", "parameters": {
        "type": "object", "properties": {"customer": {"type": "object", "properties": {
            "email": {"type": "string", "format": "email"}, "name": {"type": "string"}}}}}}}]
    schemas = field_schemas(Request(messages=CONVERSATION, tools=tools))
    assert schemas == {"create_ticket.customer.email": {"type": "string", "format": "email"},
                       "create_ticket.customer.name": {"type": "string"}}
    rules = {"create_ticket.customer.email": "exact", "create_ticket.customer.name": "exact"}

    def at(text: str) -> CopyGuard:
        guard = CopyGuard(CONVERSATION, rules, tools=True, schemas=schemas)
        guard.feed(text)
        assert guard.rule() == "exact"
        return guard

    email = at('{"name":"create_ticket","arguments":{"customer":{"email":"')
    assert email.accepts("ok", "exact") and email.accepts("jane", "exact")
    assert not email.accepts("Hiroshi", "exact")   # the conversation writes it, but not as an email
    assert not email.accepts("h@", "exact")         # inside an email, not its start
    assert at('{"name":"create_ticket","arguments":{"customer":{"email":"jane.doe@example.com').accepts('"', "exact")
    assert not at('{"name":"create_ticket","arguments":{"customer":{"email":"jane.doe@example').accepts('"', "exact")
    name = at('{"name":"create_ticket","arguments":{"customer":{"name":"')
    assert name.accepts("Hiroshi", "exact") and not name.accepts("hiroshi", "exact")
