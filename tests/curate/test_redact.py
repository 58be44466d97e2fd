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
    "\u00e9 plain", "\u00e9 SK" + "0" * 32, "github_pat_", "github_pa", "AIza", "aiza", "GOCSPX-", "ya29.",
    "ya29x", "hf_", "HF_", "basic", "BASIC", "Authorization", "author", "\u00e9 AIza", "\u00e9 hf_",
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


# -- issue 12: gaps that survived curation, and their siblings -------------------------------

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789abc_" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
GOOGLE_KEY = "AIzaSyA1234567890abcdefghijklmnopqrstuv"
BASIC = "YWxhZGRpbjpvcGVuc2VzYW1l"  # base64 of aladdin:opensesame


def redacted(text: str) -> str:
    out, _ = redact_messages([{"role": "user", "content": text}])
    return out[0]["content"]


@pytest.mark.parametrize("text,expected", [
    # `\b` did not match after `_`: any key name ending in a secret word now counts
    (f"set aws_secret_access_key = {AWS_SECRET} then retry", "set aws_secret_access_key = <API_KEY_1> then retry"),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\nAWS_REGION=eu-west-1",
     "AWS_SECRET_ACCESS_KEY=<API_KEY_1>\nAWS_REGION=eu-west-1"),
    (f"awsSecretAccessKey: {AWS_SECRET}, region eu", "awsSecretAccessKey: <API_KEY_1>, region eu"),
    ("DB_PASSWORD=s3cr3t! and MYSQL_ROOT_PASSWORD=r00t-pw",
     "DB_PASSWORD=<PASSWORD_1> and MYSQL_ROOT_PASSWORD=<PASSWORD_2>"),
    ("SLACK_SIGNING_SECRET=8f742231b10e8888abcd99yyyzzz85a5 ok", "SLACK_SIGNING_SECRET=<API_KEY_1> ok"),
    ("export GITHUB_TOKEN=abc123def456 first", "export GITHUB_TOKEN=<TOKEN_1> first"),
    ("curl -H 'x-api-key: k3y-v4lue-123' https://api.test", "curl -H 'x-api-key: <API_KEY_1>' https://api.test"),
    ("SECRET_KEY = 'django-insecure-abc123'", "SECRET_KEY = '<API_KEY_1>'"),
    # token shapes
    (f"use {GITHUB_PAT} for the repo", "use <API_KEY_1> for the repo"),
    (f"maps?key={GOOGLE_KEY}&libraries=places", "maps?key=<API_KEY_1>&libraries=places"),
    ("client GOCSPX-abcdefghijklmnopqrstuvwxyz12 ok", "client <API_KEY_1> ok"),
    ("token ya29.a0AfH6SMBx3abcdefghijklmnop_qrs and more", "token <TOKEN_1> and more"),
    ("HF hf_abcdefghijklmnopqrstuvwxyzABCDEFGH works", "HF <API_KEY_1> works"),
    # authorization headers: Basic as well as Bearer, any case, and bare credentials
    (f"Authorization: Basic {BASIC}\r\nAccept: */*", "Authorization: Basic <PASSWORD_1>\r\nAccept: */*"),
    (f"proxy-authorization: basic {BASIC}.", "proxy-authorization: basic <PASSWORD_1>."),
    (f"curl -u via header Basic {BASIC} fails", "curl -u via header Basic <PASSWORD_1> fails"),
    ("Authorization: Basic dGVzdA== is refused", "Authorization: Basic <PASSWORD_1> is refused"),
    ("authorization: bearer abcdefghijklmnop1234 (expired)", "authorization: bearer <TOKEN_1> (expired)"),
    ("AUTHORIZATION: BEARER short123", "AUTHORIZATION: BEARER <TOKEN_1>"),
    ("Authorization: token abcdef12 for gh", "Authorization: token <API_KEY_1> for gh"),
    ("Authorization: 0a1b2c3d4e5f6a7b8c9d then", "Authorization: <API_KEY_1> then"),
    # IBANs in any case
    ("my iban is de89 3704 0044 0532 0130 00, thanks", "my iban is <IBAN_1>, thanks"),
    ("iban gb82west12345698765432.", "iban <IBAN_1>."),
    ("IBAN De89370400440532013000 please", "IBAN <IBAN_1> please"),
    # passwords are not cut at `&`, except where `&` starts the next query parameter
    ("password: Tr0ub4dor&3xyz is what I typed", "password: <PASSWORD_1> is what I typed"),
    ("my password is Tr0ub4dor&3xyz.", "my password is <PASSWORD_1>."),
    ("GET /login?user=bob&password=hunter22&next=/home", "GET /login?user=bob&password=<PASSWORD_1>&next=/home"),
    ("https://x.test/cb?code=1&access_token=Zx9-abc_123&state=q",
     "https://x.test/cb?code=1&access_token=<TOKEN_1>&state=q"),
    ("password=Tr0ub4dor&3&next=1", "password=<PASSWORD_1>&next=1"),
    ('password: "correct horse battery staple" (quoted)', 'password: "<PASSWORD_1>" (quoted)'),
    ("my passcode is 482913, ok?", "my passcode is <PASSWORD_1>, ok?"),
    ("PASSWORD: hunter22", "PASSWORD: <PASSWORD_1>"),
])
def test_issue_12_gaps_are_redacted_and_the_text_around_them_kept(text: str, expected: str) -> None:
    assert redacted(text) == expected


@pytest.mark.parametrize("text", [
    "I need a password reset, the password reset email never arrives",
    "Password reset: done. Password: reset it please",
    "my password is incorrect and the password is not working",
    "your boarding pass is ready; bypass: yes, compass=north",
    "max_tokens=4096, token_limit: 8192, tokens: 12, token: 4096",
    "the token: expired yesterday, api_key: none, secret: missing",
    "Basic plan: 5 seats. Basic dGVzdA== is base64 for test",   # a short base64 word is not a credential
    "Basic usage of the API: see basic_auth.md",
    "Authorization: required for this endpoint",
    "Bearer bonds are rare",
    "product code de00 3704 0044 0532 0130 00 and SKU GB00WEST12345698765432",   # mod-97 fails
    "commit de89370400440532013000ab12 is on main",      # a valid IBAN glued into a longer id
    "Hugging Face hf_hub and github_pat_ are names, AIza alone too",
])
def test_ordinary_text_is_not_over_redacted(text: str) -> None:
    assert kinds(text) == []
    assert redacted(text) == text


def test_json_keys_ending_in_a_secret_word_go_whole_and_metadata_keys_stay() -> None:
    args = {"aws_secret_access_key": AWS_SECRET, "dbPassword": "pw", "x-api-key": "k",
            "token_type": "bearer", "max_tokens": 5, "passport_country": "DE", "expires_in": 3600}
    out, counts = redact_messages([{"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "configure", "arguments": args}}]}])
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {
        "aws_secret_access_key": "<API_KEY_1>", "dbPassword": "<PASSWORD_1>", "x-api-key": "<API_KEY_2>",
        "token_type": "bearer", "max_tokens": 5, "passport_country": "DE", "expires_in": 3600}
    assert counts == {"API_KEY": 2, "PASSWORD": 1}


def test_placeholders_stay_consistent_across_text_json_and_case() -> None:
    user = (f"password: Tr0ub4dor&3xyz, pwd=Tr0ub4dor&3xyz, db_password=other-pw; "
            f"iban de89 3704 0044 0532 0130 00 = DE89370400440532013000; "
            f"aws_secret_access_key = {AWS_SECRET}; Authorization: Basic {BASIC}; GITHUB_TOKEN={GITHUB_PAT}")
    arguments = orjson.dumps({"password": "Tr0ub4dor&3xyz", "iban": "DE89 3704 0044 0532 0130 00",
                              "aws_secret_access_key": AWS_SECRET, "api_key": GITHUB_PAT,
                              "headers": {"Authorization": f"Basic {BASIC}"}}).decode()
    messages = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "connect", "arguments": arguments}}]},
        {"role": "assistant", "content": f"Connected with Authorization: Basic {BASIC}."},
    ]
    out, counts = redact_messages(messages)
    assert out[0]["content"] == (
        "password: <PASSWORD_1>, pwd=<PASSWORD_1>, db_password=<PASSWORD_2>; iban <IBAN_1> = <IBAN_1>; "
        "aws_secret_access_key = <API_KEY_1>; Authorization: Basic <PASSWORD_3>; GITHUB_TOKEN=<TOKEN_1>")
    # the token found as GITHUB_TOKEN's value keeps its placeholder as the api_key argument
    assert orjson.loads(out[1]["tool_calls"][0]["function"]["arguments"]) == {
        "password": "<PASSWORD_1>", "iban": "<IBAN_1>", "aws_secret_access_key": "<API_KEY_1>",
        "api_key": "<TOKEN_1>", "headers": {"Authorization": "Basic <PASSWORD_3>"}}
    assert out[2]["content"] == "Connected with Authorization: Basic <PASSWORD_3>."
    assert counts == {"PASSWORD": 7, "IBAN": 3, "API_KEY": 2, "TOKEN": 2}


def test_planted_secrets_do_not_reach_the_curated_dataset(sqlite_store, tmp_path) -> None:
    from fledgling.curate import curate
    from tests.curate.conftest import make_call

    planted = {
        f"my aws_secret_access_key = {AWS_SECRET}, why is order ORD-1 late": AWS_SECRET,
        f"I pasted {GITHUB_PAT} by mistake, where is ORD-2": GITHUB_PAT,
        f"the maps key {GOOGLE_KEY} broke, and order ORD-3?": GOOGLE_KEY,
        f"we send Authorization: Basic {BASIC} and ORD-4 still fails": BASIC,
        "refund to iban de89 3704 0044 0532 0130 00 for ORD-5": "de89 3704 0044 0532 0130 00",
        "login with password: Tr0ub4dor&3xyz fails for ORD-6": "Tr0ub4dor&3xyz",
    }
    calls = [make_call(i) for i in range(30)]
    calls += [make_call(100 + i, user=text) for i, text in enumerate(planted)]
    sqlite_store.insert_calls(calls)
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path)
    written = b"".join((ds.path / f"{s}.jsonl").read_bytes() for s in ("train", "val", "test"))
    users = [m["content"] for line in written.splitlines() for m in orjson.loads(line)["messages"]
             if m["role"] == "user"]
    for secret in planted.values():
        assert secret.encode() not in written and secret.upper().encode() not in written
    assert "login with password: <PASSWORD_1>&3xyz fails for ORD-6" not in users
    assert "login with password: <PASSWORD_1> fails for ORD-6" in users
    assert "we send Authorization: Basic <PASSWORD_1> and ORD-4 still fails" in users
    assert "refund to iban <IBAN_1> for ORD-5" in users
    assert ds.report["redactions"] == {"examples": 6, "by_type": {"API_KEY": 3, "IBAN": 1, "PASSWORD": 2}}
