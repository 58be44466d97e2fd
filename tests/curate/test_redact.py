"""Redaction: every detector, consistent placeholders across input and tool arguments, no false ids."""

from __future__ import annotations

import orjson
import pytest

from fledgling.curate import redact
from fledgling.curate.redact import find, redact_messages


def kinds(text: str) -> list[tuple[str, str]]:
    return [(text[f.start:f.end], f.kind) for f in find(text)]


@pytest.mark.parametrize("text,expected", [
    ("mail Alice.Smith+x@Example.co.uk today", [("Alice.Smith+x@Example.co.uk", "EMAIL")]),
    ("call me on +44 20 7946 0958 please", [("+44 20 7946 0958", "PHONE")]),
    ("my cell: (415) 555-0199", [("(415) 555-0199", "PHONE")]),
    ("call me at 4155550123", [("4155550123", "PHONE")]),
    ("card 4111 1111 1111 1111 exp 12/29", [("4111 1111 1111 1111", "CARD")]),
    ("IBAN DE89 3704 0044 0532 0130 00 PLEASE", [("DE89 3704 0044 0532 0130 00", "IBAN")]),
    ("IBAN GB82WEST12345698765432.", [("GB82WEST12345698765432", "IBAN")]),
    ("ship to 742 Evergreen Terrace, Apt 4B", [("742 Evergreen Terrace, Apt 4B", "ADDRESS")]),
    ("Lieferung an Hauptstraße 5 bitte", [("Hauptstraße 5", "ADDRESS")]),
    ("key AKIAIOSFODNN7EXAMPLE.", [("AKIAIOSFODNN7EXAMPLE", "API_KEY")]),
    ("use ghp_abcdefghijklmnopqrstuvwxyz0123456789 now", [("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "API_KEY")]),
    ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx12", [("sk-proj-abcdefghijklmnopqrstuvwx12", "API_KEY")]),
    ("Authorization: Bearer abc.def-ghi_jkl012345678", [("abc.def-ghi_jkl012345678", "TOKEN")]),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX19fX19fXw.",
     [("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX19fX19fXw", "TOKEN")]),
    ("db password=hunter22; ok", [("hunter22", "PASSWORD")]),
    ("my password is Tr0ub4dor&3", [("Tr0ub4dor&3", "PASSWORD")]),
    ("postgres://app:s3cretpw@db.internal:5432/x", [("s3cretpw", "PASSWORD")]),
])
def test_each_detector_finds_its_kind(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize("text", [
    "order ORD-4155550123 is late",
    "order #4155550123 is late",
    "order 4155550123 is late",
    "SKU-8812-XL and SKU 4111-1111-1111-1112",     # Luhn fails
    "ORD-2024-00123 and invoice 20240115001",
    "tracking 1Z999AA10123456784, ticket 7712",
    "IBAN DE00 3704 0044 0532 0130 00",             # mod-97 fails
    "4111111111111111ab",                           # glued to letters: an id, not a card
    "the token is valid and the password field is empty",
])
def test_demo_ids_and_skus_are_not_mistaken_for_pii(text: str) -> None:
    assert kinds(text) == []


def test_same_value_gets_same_placeholder_in_input_and_tool_arguments() -> None:
    messages = [
        {"role": "system", "content": "You help. Escalations go to ops@acme.test."},
        {"role": "user", "content": "I'm Alice@Example.com, phone +1 415-555-0123; my old one "
                                    "was bob@example.com"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function", "function": {
            "name": "update_contact",
            "arguments": '{"email": "alice@example.com", "phone": "+14155550123", "old": ["bob@example.com"]}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": '{"ok": true, "email": "alice@example.com"}'},
        {"role": "assistant", "content": "Done: alice@example.com is now your email."},
    ]
    out, counts = redact_messages(messages)
    assert out[0]["content"] == "You help. Escalations go to <EMAIL_1>."
    assert out[1]["content"] == "I'm <EMAIL_2>, phone <PHONE_1>; my old one was <EMAIL_3>"
    args = orjson.loads(out[2]["tool_calls"][0]["function"]["arguments"])  # still valid JSON
    assert args == {"email": "<EMAIL_2>", "phone": "<PHONE_1>", "old": ["<EMAIL_3>"]}
    assert orjson.loads(out[3]["content"]) == {"ok": True, "email": "<EMAIL_2>"}
    assert out[4]["content"] == "Done: <EMAIL_2> is now your email."
    assert counts == {"EMAIL": 7, "PHONE": 2}
    assert messages[1]["content"].startswith("I'm Alice@")  # input not modified in place


def test_placeholders_restart_per_example_and_json_keys_name_secrets() -> None:
    first, _ = redact_messages([{"role": "user", "content": "x@y.org"}])
    second, _ = redact_messages([{"role": "user", "content": "z@y.org"}])
    assert first[0]["content"] == second[0]["content"] == "<EMAIL_1>"
    out, counts = redact_messages([{"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "login", "arguments": {
            "user": "bob", "password": "pw", "mobile": "4155550123", "count": 4155550123}}}]}])
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {
        "user": "bob", "password": "<PASSWORD_1>", "mobile": "<PHONE_1>", "count": 4155550123}
    assert counts == {"PASSWORD": 1, "PHONE": 1}


def test_structured_answer_stays_valid_json() -> None:
    answer = '{"category": "billing", "summary": "card 4242 4242 4242 4242 charged twice"}'
    out, _ = redact_messages([{"role": "assistant", "content": answer}])
    assert orjson.loads(out[0]["content"]) == {"category": "billing", "summary": "card <CARD_1> charged twice"}


HINT_SAMPLES = [
    "plain words only, nothing to see", "", "A3TXYZ", "xABIAx", "ACCA", "AKIA", "ASIA", "AccountKey=abc",
    "https://x.org", "a.bcdef-.z", "a.bcde.z", "ghp_x", "ghx_x", "glpat-x", "glagent-x", "gl-x",
    "GR1348941", "eyJ", "us-east -us1", "-usa", "sk-", "pypi-", "SG.x", "xoxb-1", "xoxB-1",
    "hooks.slack.com", "sq0csp-", "rk_live_", "sk_live_", "pk_live_", "12345678:", "1234567:",
    "12345678901:", "AC" + "a" * 32, "AC" + "A" * 32, "SK" + "0" * 32, "SK" + "0" * 31, "AWS",
    "Bearer", "PRIVATE KEY", "private  key", "PassPort", "pwd", "SECRET", "monkey", "Token",
    "\u212a", "\u017fecret", "pa\u017f\u017f", "t\u00f6ken", "caf\u00e9 token", "caf\u00e9",
    "prıvate key", "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668:", "pr\u0130vate \u212aey",
    "\u00e9 xoxb-1", "\u00e9 ghp_x", "\u00e9 12345678:", "\u00e9 a.bcdef-.z", "a.bcd\u00e9f.z", "\u00e9 AKIA",
    "\u00e9 plain", "\u00e9 SK" + "0" * 32,
]


@pytest.mark.parametrize("text", HINT_SAMPLES)
def test_fast_prefilters_agree_with_their_patterns(text: str) -> None:
    assert redact.may_hold_secret(text) == (redact._SECRET_HINT.search(text) is not None)
    as_key = orjson.dumps({text: 1}).decode()
    assert redact._key_hint(as_key) == (redact._KEY_HINT.search(as_key) is not None)


@pytest.mark.parametrize("text,expected", [
    ("call +49 1640 today", [("+49 1640", "PHONE")]),          # 6 digits: the shortest numbers
    ("tel \u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",    # Arabic-Indic digits
     [("\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663", "PHONE")]),
    ("order ORD-204518 placed 2026-10-06, call +1 415-555-0199",
     [("+1 415-555-0199", "PHONE")]),
])
def test_digit_count_prefilter_keeps_short_and_non_ascii_numbers_in_play(text, expected) -> None:
    assert kinds(text) == expected
