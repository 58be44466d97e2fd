"""How real customers type: casing, missing punctuation, typos, filler.

Applied to template text only, never to entities (an order id with a typo would change the right
answer), so the ground truth stays exact while the surface keeps changing.
"""

from __future__ import annotations

import random
import re

_PLACEHOLDER = re.compile(r"(\{[a-z_0-9]+\})")
_OPENERS = ("", "", "", "", "hi, ", "hello, ", "hey ", "Hi there! ", "ok so ", "um, ", "Good morning. ",
            "sorry to bother you but ", "quick question: ")
_CLOSERS = ("", "", "", "", " thanks", " thx", " thank you!", " pls", " please", " asap", "!!", " :)",
            "?")
_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "e": "wr", "i": "uo", "o": "ip", "u": "yi", "n": "bm", "s": "ad", "t": "ry",
    "r": "et", "l": "k", "c": "xv", "d": "sf", "h": "gj", "m": "n", "p": "o",
}


def noisy(rng: random.Random, template: str, *, typo_rate: float = 0.03, chatty: bool = True,
          **values: str) -> str:
    """Fill a template after roughening its fixed words; placeholders stay exact.

    `chatty` adds the openers and closers people put around a chat message.
    """
    parts = _PLACEHOLDER.split(template)
    out = []
    for part in parts:
        if _PLACEHOLDER.fullmatch(part):
            out.append(values[part[1:-1]])
        else:
            out.append(_typos(rng, part, typo_rate))
    text = "".join(out)
    style = rng.random()
    if style < 0.22:
        text = _lower_outside(text, values)
    elif style < 0.26:
        text = text.rstrip(".!?")
    elif style < 0.28:
        text = _upper_outside(text, values)
    if not chatty:
        return text.strip()
    opener = rng.choice(_OPENERS)
    closer = rng.choice(_CLOSERS) if not text.endswith(("?", "!")) else ""
    if closer and text.endswith("."):
        text = text[:-1]
    if opener:
        text = opener + (text[0].lower() + text[1:] if text and not _starts_with_value(text, values)
                         else text)
    return (text + closer).strip()


def _typos(rng: random.Random, text: str, rate: float) -> str:
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) > 3 and rng.random() < rate:
            words[i] = _one_typo(rng, word)
    return " ".join(words)


def _one_typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.35:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]  # swap
    if kind < 0.6:
        return word[:i] + word[i + 1:]  # drop
    if kind < 0.8:
        return word[:i] + word[i] + word[i:]  # double
    ch = word[i].lower()
    return word[:i] + rng.choice(_KEYBOARD_NEIGHBOURS.get(ch, ch)) + word[i + 1:]


def _lower_outside(text: str, values: dict[str, str]) -> str:
    return _map_outside(text, values, str.lower)


def _upper_outside(text: str, values: dict[str, str]) -> str:
    return _map_outside(text, values, str.upper)


def _map_outside(text: str, values: dict[str, str], fn) -> str:
    protected = [v for v in values.values() if v]
    out, i = [], 0
    while True:
        hits = [(pos, -len(v), v) for v in protected if (pos := text.find(v, i)) >= 0]
        if not hits:
            out.append(fn(text[i:]))
            return "".join(out)
        pos, _, value = min(hits)
        out.append(fn(text[i:pos]))
        out.append(value)
        i = pos + len(value)


def _starts_with_value(text: str, values: dict[str, str]) -> bool:
    return any(v and text.startswith(v) for v in values.values())

