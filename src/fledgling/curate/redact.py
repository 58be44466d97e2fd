"""Redaction: secrets and PII become typed placeholders, consistent within one example.

A training example must not teach a model anyone's email address or API key, but it must still
teach it to copy the user's email into the tool call. So every detected value is replaced by a
typed placeholder (`<EMAIL_1>`, `<PHONE_2>`, ...) numbered by first appearance *within one
example*, and the same value (after normalisation: lower-cased email, E.164 phone, digits of a
card, compact IBAN) gets the same placeholder in the user message, in tool results, in the tool
call arguments and in the answer. JSON (tool arguments, tool results, structured answers) is
redacted after parsing, value by value, so it stays valid JSON.

Detectors, all offline: secret patterns from `detect-secrets` plugins (AWS, GitHub, GitLab, JWT,
OpenAI, Slack, Stripe, SendGrid, Twilio, Discord, Telegram, Mailchimp, Square, PyPI, Azure,
basic-auth URLs) plus our own for `sk-...` keys, fine-grained GitHub, Google and Hugging Face
tokens, `Bearer` / `Basic` credentials and `Authorization` headers, PEM private keys and
`password=`-style assignments (any key name ending in a secret word: `aws_secret_access_key`);
`phonenumbers` for phone numbers; `python-stdnum` for the Luhn check of card numbers and the
mod-97 check of IBANs (in any case); regular expressions for emails and street addresses.
See docs/curation.md for what is and is not detected.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import phonenumbers
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from stdnum import iban as stdnum_iban
from stdnum import luhn

PHONE_REGION = "US"
"""Region assumed for phone numbers written without a country code (`+...` numbers work anywhere)."""

# Kinds, in the order they win when two detections overlap.
KINDS = ("PRIVATE_KEY", "PASSWORD", "TOKEN", "API_KEY", "EMAIL", "IBAN", "CARD", "PHONE", "ADDRESS")
_PRIORITY = {k: i for i, k in enumerate(KINDS)}


@dataclass(frozen=True)
class Finding:
    """One detected value: where it is, what it is, and the normal form that identifies it."""

    start: int
    end: int
    kind: str
    key: str


# -- secrets ---------------------------------------------------------------------------------

def _plugin_patterns() -> list[tuple[re.Pattern[str], str]]:
    kinds = {JwtTokenDetector: "TOKEN", BasicAuthDetector: "PASSWORD"}
    plugins = (AWSKeyDetector, AzureStorageKeyDetector, BasicAuthDetector, DiscordBotTokenDetector,
               GitHubTokenDetector, GitLabTokenDetector, JwtTokenDetector, MailchimpDetector,
               OpenAIDetector, PypiTokenDetector, SendGridDetector, SlackDetector,
               SquareOAuthDetector, StripeDetector, TelegramBotTokenDetector, TwilioKeyDetector)
    return [(pattern, kinds.get(plugin, "API_KEY")) for plugin in plugins for pattern in plugin.denylist]


_PLUGIN_PATTERNS = _plugin_patterns()
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.]*")
_SK_KEY = re.compile(r"(?<![\w-])sk-(?:proj-|ant-|live-|test-|svcacct-)?[A-Za-z0-9_-]{20,}")
_OWN_PATTERNS = (
    (_SK_KEY, "API_KEY"),
    (re.compile(r"(?<![\w-])github_pat_[A-Za-z0-9_]{22,}"), "API_KEY"),      # fine-grained GitHub
    (re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"), "API_KEY"),    # Google API key
    (re.compile(r"(?<![\w-])GOCSPX-[A-Za-z0-9_-]{28}(?![\w-])"), "API_KEY"),  # Google OAuth client secret
    (re.compile(r"(?<![\w-])ya29\.[A-Za-z0-9_-]{20,}"), "TOKEN"),            # Google OAuth access token
    (re.compile(r"(?<![\w-])hf_[A-Za-z0-9]{30,}(?![\w-])"), "API_KEY"),      # Hugging Face
)
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{16,})")
_BASIC = re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/]{4,}={0,2})(?![\w+/=-])")
# After an Authorization header: a scheme and any credential, or a bare credential with a digit.
_AUTH_HEADER = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(bearer|basic|token|apikey|api-key|key)\s+([A-Za-z0-9._~+/=-]{4,})"
    r"|(?=[^\s\"']*\d)([A-Za-z0-9._~+/=-]{16,}))")
_SCHEME_KIND = {"bearer": "TOKEN", "basic": "PASSWORD"}
_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token)\s+(?=\S)")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----.*?-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----",
                  re.DOTALL)
# A key name ends with one of these words, which starts a segment of it: `aws_secret_access_key`,
# `DB_PASSWORD`, `x-api-key`, `clientSecret`; not `passport`, `bypass`, `max_tokens`, `token_type`.
_SECRET_WORD = (r"pass(?:word|wd|phrase|code)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
                r"|secret[_-]?key|private[_-]?key")
_WORD_START = r"(?:(?<![A-Za-z0-9])|(?-i:(?<=[a-z0-9])(?=[A-Z])))"
# Words that follow "password:" in prose ("password: reset it") rather than a password (unquoted).
_NOT_A_SECRET = (r"(?!(?:reset|change[ds]?|forgot(?:ten)?|expired?|required|incorrect|invalid|wrong|not|none"
                 r"|null|true|false|empty|missing|hidden|redacted|masked|same|please|valid|ready|working"
                 r"|too|still|now|also|set|saved|updated|sent|bearer|basic)\b)")
# The value: quoted (spaces allowed), or up to a space, quote, comma, semicolon or the `&` that
# starts the next query parameter (`&next=`); an `&` inside a password (`Tr0ub4dor&3`) is kept.
_VALUE = (r"(?:\"([^\"\n]{3,200})\"|'([^'\n]{3,200})'"
          rf"|[\"']?{_NOT_A_SECRET}((?:[^\s\"',;&]|&(?![\w.-]+=))+))")
_ASSIGNMENT = re.compile(rf"(?i){_WORD_START}({_SECRET_WORD})[\"']?\s*(?:=>|:=|[:=])\s*{_VALUE}")
_PASSWORD_IS = re.compile(rf"(?i)\b(pass(?:word|wd|phrase|code)|pwd)\s+(?:is|was|=):?\s+{_VALUE}")
_SECRET_KEY_NAME = re.compile(rf"(?i){_WORD_START}({_SECRET_WORD}|bearer|authorization)\Z")


def _secret_kind(word: str) -> str:
    word = word.lower()
    if word.startswith("pass") or word == "pwd":
        return "PASSWORD"
    return "TOKEN" if "token" in word else "API_KEY"


# Something every secret pattern above needs; text without any of it skips them all (most text).
_SECRET_HINT = re.compile(
    r"A3T|ABIA|ACCA|AKIA|ASIA|AccountKey=|://|\.[\w-]{6}\.|gh[pousr]_|gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt"
    r"|agent)-|GR1348941|eyJ|-us\d|sk-|pypi-|SG\.|xox[a-z]-|hooks\.slack|sq0csp-|[rs]k_live_|\d{8,10}:"
    r"|AC[a-z0-9]{32}|SK[a-z0-9]{32}|github_pat_|AIza|GOCSPX-|ya29\.|hf_"
    r"|(?i:aws|bearer|basic|authorization|private key|pass|pwd|secret|key|token)")


# The same test, cheaper: the alternatives one by one, literal ones as substring checks, each
# pattern-shaped one only where its literal part occurs. The case-insensitive words are
# substring checks on lower-cased ASCII text; other text keeps Unicode case folding (where 'ſ'
# matches 's' and 'İ' matches 'i') with a regular expression of those words alone.
_HINT_WORDS = ("aws", "bearer", "basic", "authorization", "private key", "pass", "pwd", "secret", "key", "token")
_HINT_WORDS_ANY_CASE = re.compile(rf"(?i:{'|'.join(_HINT_WORDS)})")
_HINT_LITERALS = ("A3T", "ABIA", "ACCA", "AKIA", "ASIA", "AccountKey=", "://", "GR1348941", "eyJ",
                  "sk-", "pypi-", "SG.", "hooks.slack", "sq0csp-", "rk_live_", "sk_live_", "github_pat_",
                  "AIza", "GOCSPX-", "ya29.", "hf_")
_HINT_GUARDED = (
    (".", re.compile(r"\.[\w-]{6}\.")), (":", re.compile(r"\d{8,10}:")), ("-us", re.compile(r"-us\d")),
    ("gh", re.compile(r"gh[pousr]_")), ("gl", re.compile(r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent)-")),
    ("xox", re.compile(r"xox[a-z]-")), ("AC", re.compile(r"AC[a-z0-9]{32}")),
    ("SK", re.compile(r"SK[a-z0-9]{32}")))


def may_hold_secret(text: str) -> bool:
    """Whether `text` has something every secret pattern needs (`_SECRET_HINT`); most text has not."""
    if text.isascii():
        low = text.lower()
        for word in _HINT_WORDS:
            if word in low:
                return True
    elif _HINT_WORDS_ANY_CASE.search(text) is not None:
        return True
    for lit in _HINT_LITERALS:
        if lit in text:
            return True
    for lit, rx in _HINT_GUARDED:
        if lit in text and rx.search(text) is not None:
            return True
    return False


def _secrets(text: str) -> list[Finding]:
    out: list[Finding] = []
    if not may_hold_secret(text):
        return out
    for m in _PEM.finditer(text):
        out.append(Finding(m.start(), m.end(), "PRIVATE_KEY", m.group(0)))
    for pattern, kind in _PLUGIN_PATTERNS:
        for m in pattern.finditer(text):
            # Patterns with a value group after some context (basic auth, aws secret) redact the value only.
            g = 1 if m.re.groups and m.start(1) > m.start(0) else 0
            start, end = m.span(g)
            if g == 0:  # some patterns stop early (JWT's signature is lazy): take the whole token
                tail = _TOKEN_CHARS.match(text, end)  # `*`: always matches, possibly empty
                end = tail.end() if tail else end
            out.append(_secret(text, start, end, kind))
    for pattern, kind in _OWN_PATTERNS:
        for m in pattern.finditer(text):
            out.append(_secret(text, m.start(), m.end(), kind))
    for m in _BEARER.finditer(text):
        out.append(_secret(text, m.start(1), m.end(1), "TOKEN"))
    for m in _BASIC.finditer(text):
        if _is_basic_credential(m.group(1)):
            out.append(Finding(m.start(1), m.end(1), "PASSWORD", m.group(1)))
    for m in _AUTH_HEADER.finditer(text):
        scheme = m.group(1)  # the value is group 2 after a scheme, else group 3
        kind = _SCHEME_KIND.get(scheme.lower(), "API_KEY") if scheme else "API_KEY"
        out.append(_secret(text, *_last_group_span(m), kind))
    for rx in (_ASSIGNMENT, _PASSWORD_IS):
        for m in rx.finditer(text):
            kind = _secret_kind(m.group(1))
            start, end = _last_group_span(m)  # the one value group that matched
            value = text[start:end]
            # a bare number under `token` or `secret` is a count or an id; under `password`, a PIN
            if len(value) >= 3 and (kind == "PASSWORD" or not value.isdigit()):
                out.append(_secret(text, start, end, kind))
    return out


def _is_basic_credential(value: str) -> bool:
    """Basic credentials are base64 of `user:password`; a word that merely looks like base64 is not."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return ":" in decoded and decoded.isprintable()


def _last_group_span(m: re.Match[str]) -> tuple[int, int]:
    """The span of the last group that matched (patterns whose alternatives each hold one value group)."""
    return m.span(m.lastindex or 0)


def _secret(text: str, start: int, end: int, kind: str) -> Finding:
    """A secret span without the sentence's full stop after it."""
    end = start + len(text[start:end].rstrip("."))
    return Finding(start, end, kind, text[start:end])


# -- PII -------------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\w-])[3-6](?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?")
_PHONE_CUE = re.compile(r"(?i)(?:phone|tel|telephone|mobile|cell|call|text me|sms|whatsapp|fax)\W{0,3}"
                        r"(?:\w+\W+){0,3}$")
_STREET_SUFFIX = (r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
                  r"|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl")
_US_ADDRESS = re.compile(
    rf"\b\d{{1,6}}\s+(?:(?:[A-Z][a-z]+|\d+(?:st|nd|rd|th))\.?\s+){{1,4}}(?:{_STREET_SUFFIX})\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?")
_EU_ADDRESS = re.compile(r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm)"
                         r"\s+\d{1,4}[a-z]?\b")


def _emails(text: str) -> list[Finding]:
    return [Finding(m.start(), m.end(), "EMAIL", m.group(0).lower()) for m in _EMAIL.finditer(text)]


def _cards(text: str) -> list[Finding]:
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            out.append(Finding(m.start(), m.end(), "CARD", digits))
    return out


def _ibans(text: str) -> list[Finding]:
    out = []
    for m in _IBAN.finditer(text):
        candidate = m.group(0)
        # The pattern may swallow a following word; back off character by character. An IBAN
        # glued to more letters or digits (a hash, a product code) is not one.
        while len(candidate.replace(" ", "")) >= 15:
            end = m.start() + len(candidate)
            if (end == len(text) or not text[end].isalnum()) and stdnum_iban.is_valid(candidate):
                out.append(Finding(m.start(), end, "IBAN", stdnum_iban.compact(candidate)))
                break
            candidate = candidate[:-1].rstrip()
    return out


_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")


def _phones(text: str, cue: bool) -> list[Finding]:
    out = []
    # phonenumbers is slow on long texts: run it on each digit run (with its +/parenthesis) only.
    for cand in _PHONE_CANDIDATE.finditer(text):
        for m_start, m_end, raw, key in _phone_numbers(cand.group(0)):
            start, end = cand.start() + m_start, cand.start() + m_end
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            if before.isalnum() or before in "#-_/" or after.isalnum() or after in "-_/":
                continue  # part of an identifier such as ORD-4155550123 or #4155550123
            formatted = raw.startswith("+") or _PHONE_PUNCT.search(raw) is not None
            if not (formatted or cue or _PHONE_CUE.search(text[max(0, start - 40):start])):
                continue  # a bare digit run with no phone context is more likely an id
            out.append(Finding(start, end, "PHONE", key))
    return out


_PHONE_PUNCT = re.compile(r"[\s().-]")


@lru_cache(maxsize=4096)
def _phone_numbers(candidate: str) -> tuple[tuple[int, int, str, str], ...]:
    """phonenumbers' matches in one digit run: (start, end, raw text, E.164). Cached, since the
    same runs (dates, prices) recur across calls and most are no phone at all."""
    return tuple((m.start, m.end, m.raw_string,
                  phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164))
                 for m in phonenumbers.PhoneNumberMatcher(candidate, PHONE_REGION))


_EU_SUFFIXES = ("straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "ring", "damm")
"""One of these is in every `_EU_ADDRESS` match: text without any skips that pattern."""


def _addresses(text: str) -> list[Finding]:
    patterns = [_US_ADDRESS]
    for suffix in _EU_SUFFIXES:
        if suffix in text:
            patterns.append(_EU_ADDRESS)
            break
    return [Finding(m.start(), m.end(), "ADDRESS", " ".join(m.group(0).lower().rstrip(".").split()))
            for rx in patterns for m in rx.finditer(text)]


@lru_cache(maxsize=16384)
def find(text: str, phone_cue: bool = False) -> tuple[Finding, ...]:
    """Everything sensitive in `text`, non-overlapping, left to right.

    Cached: a task's system prompt and tool results repeat across thousands of calls.
    `phone_cue` says the text is a value under a phone-like JSON key, so a bare digit run counts.
    """
    # Each detector needs some digits (ASCII text: counted cheaply; other text may hold other
    # Unicode digits, so every detector runs) or an '@'; most texts skip most detectors.
    digits = sum(map(text.count, "0123456789")) if text.isascii() else len(text)
    found = _secrets(text)
    if "@" in text:
        found += _emails(text)
    if digits >= 2:
        found += _ibans(text)
    if digits >= 13:
        found += _cards(text)
    if digits >= 6:  # the shortest valid numbers in phonenumbers' metadata (+49 1640) have 6
        found += _phones(text, phone_cue)
    if digits:
        found += _addresses(text)
    found.sort(key=lambda f: (_PRIORITY[f.kind], f.start, -(f.end - f.start)))
    chosen: list[Finding] = []
    for f in found:
        if f.end > f.start and all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    return tuple(sorted(chosen, key=lambda f: f.start))


# -- applying placeholders to one example ----------------------------------------------------

_PHONE_KEY = re.compile(r"(?i)phone|mobile|tel$|telephone|cell|fax|msisdn")
_KEY_HINT = re.compile(rf"(?i)\"(?:[^\"]*(?:phone|mobile|tel|cell|fax|msisdn)[^\"]*|{_SECRET_WORD}|token|bearer"
                       r"|authorization)\"\s*:")
_KEY_WORDS = ("phone", "mobile", "tel", "cell", "fax", "msisdn", "pass", "pwd", "secret", "api",
              "access", "auth", "refresh", "private", "token", "bearer")
"""Every `_KEY_HINT` match holds one of these (lower-cased): a cheap test that rules most JSON out."""


def _key_hint(text: str) -> bool:
    if text.isascii():
        low = text.lower()
        for word in _KEY_WORDS:
            if word in low:
                break
        else:
            return False
    return _KEY_HINT.search(text) is not None


_SECRET_KINDS = frozenset(("PRIVATE_KEY", "PASSWORD", "TOKEN", "API_KEY"))


class Scrubber:
    """Redacts the strings of ONE example; the same value always gets the same placeholder.

    A secret keeps the kind it was first found as: the same token may be a `Bearer` token in the
    user's text and the value of an `api_key` argument, and must still read as one placeholder.
    """

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}
        self._secret_kinds: dict[str, str] = {}
        self._next: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def placeholder(self, kind: str, key: str) -> str:
        if kind in _SECRET_KINDS:
            kind = self._secret_kinds.setdefault(key, kind)
        ph = self._placeholders.get((kind, key))
        if ph is None:
            self._next[kind] += 1
            ph = self._placeholders[(kind, key)] = f"<{kind}_{self._next[kind]}>"
        self.counts[kind] += 1
        return ph

    def text(self, text: str, *, phone_cue: bool = False) -> str:
        findings = find(text, phone_cue)
        if not findings:
            return text
        parts, pos = [], 0
        for f in findings:
            parts.append(text[pos:f.start])
            parts.append(self.placeholder(f.kind, f.key))
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts)

    def value(self, value: Any, key: str | None = None) -> Any:
        """A parsed JSON value with every string redacted; secrets under secret-named keys go whole
        (after an auth scheme such as `Bearer `, kept so the value matches the same header in text)."""
        if isinstance(value, str):
            named = _SECRET_KEY_NAME.search(key) if key is not None and value else None
            if named is not None:
                scheme = _AUTH_SCHEME.match(value)
                if scheme is None:
                    return self.placeholder(_secret_kind(named.group(1)), value)
                kind = _SCHEME_KIND.get(scheme.group(1).lower()) or _secret_kind(named.group(1))
                return scheme.group(0) + self.placeholder(kind, value[scheme.end():])
            return self.text(value, phone_cue=key is not None and bool(_PHONE_KEY.search(key)))
        if isinstance(value, dict):
            return {k: self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        return value

    def json_text(self, text: str) -> str:
        """Redact text that may hold JSON; JSON is redacted value by value and stays valid.

        JSON is parsed only when the raw text shows something to redact or a key that names a
        secret or a phone: most tool results have neither and are left as they are.
        """
        stripped = text.lstrip()
        if stripped[:1] in ("{", "[") and (find(text) or _key_hint(text)):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                return self.text(text)
            redacted = self.value(parsed)
            return text if redacted == parsed else orjson.dumps(redacted).decode()
        return self.text(text)

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI chat message with its content and tool-call arguments redacted."""
        out = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            out["content"] = self.json_text(content)
        elif isinstance(content, list):
            out["content"] = [{**p, "text": self.json_text(p["text"])}
                              if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                              for p in content]
        if message.get("tool_calls"):
            out["tool_calls"] = [self._tool_call(tc) for tc in message["tool_calls"]]
        return out

    def _tool_call(self, tc: dict[str, Any]) -> dict[str, Any]:
        fn = tc.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            args = self.json_text(args)
        elif args is not None:
            args = self.value(args)
        return {**tc, "function": {**fn, "arguments": args}}


def redact_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Redact one example's messages in order (inputs first, then the answer). Returns counts per kind."""
    scrubber = Scrubber()
    return [scrubber.message(m) for m in messages], scrubber.counts
