"""Local models through llama.cpp (`llama-cpp-python`): the fast CPU engine for a GGUF model.

The same requests, prompts, grammars and answers as the transformers path (`local.py`): the
prompt is rendered and tokenized by the model's Hugging Face tokenizer (so both engines read the
same token ids), the grammar is the same xgrammar grammar (`constrained.py`), and the text is
read back by the same parser. What differs is the arithmetic (llama.cpp multiplies the quantised
weights as they are stored, where transformers dequantises them) and the decoding loop, which is
here, in plain sight (`_decode`):

- batch 1: requests are answered one after another, each at its own speed, so an item's latency
  is its own and no answer depends on the requests decoded beside it;
- greedy under the grammar's mask: the next token is the best one the grammar allows, and its
  log-probability (after the mask; a forced token has 0.0) is kept for the confidence check;
- jump-forward: when the grammar forces a string (the braces, the key names, the rest of a
  tool's name once it is unambiguous), its tokens are appended at once and go through the model
  in one multi-token step with the next chosen token, instead of one forward pass each; when the
  grammar allows nothing but the end, the answer ends without another pass;
- the shared prefix (the system message, the same for every request of a task, and the earlier
  turns of the same conversation) stays in the KV cache between requests. A prompt is always
  evaluated in the same steps, message by message, whether a step was cached or not, so an
  answer does not depend on what was decoded before it (replay gives the same answer). Beside the
  live cache, the KV state of recent prompts is kept (`prefix_cache_mb`, least recently used
  first out): a conversation's next call, arriving after calls of other conversations, restores
  its earlier turns instead of evaluating them again, which is what an agent's traffic looks like
  through the gateway (several conversations at once, each call repeating the last one's prompt).

The weights are served as a Q8_0 copy by default, a LoRA adapter (PEFT) merged in
(`gguf_export.serving_gguf`: llama.cpp evaluates prompts much faster at Q8_0 than at the bundled
Q4_1); with `gguf_type = "source"` the file's own types are served and an adapter is converted once
to a GGUF LoRA applied by llama.cpp at run time. A full fine-tuned checkpoint is converted to a GGUF
model.
"""

from __future__ import annotations

import asyncio
import copy
import ctypes
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fledgling.calls import Request
from fledgling.errors import ConfigError
from fledgling.models.constrained import cut_is_text
from fledgling.models.copying import TOP_K, CopyGuard, choose, guard_for, token_pieces
from fledgling.models.generation import Generation
from fledgling.models.local import decode_threads, drop_repeated_calls, read_answer
from fledgling.models.prompting import (
    PROMPT_FORMATS,
    render_in_format,
    template_renders_tools,
)

ENGINE = "llama.cpp"
N_CTX = 4096
PREFIX_CACHE_MB = 256.0  # SmolLM2-135M: ~23 kB of KV per token, so ~30 prompts of 400 tokens


def available() -> str | None:
    """None when llama-cpp-python can be imported, else why not (one line)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as exc:  # an ImportError, or a broken build's OSError loading libllama
        return f"llama-cpp-python is not usable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    return None


def load_tokenizer(directory: str | Path, gguf_file: str | None) -> Any:
    """The Hugging Face tokenizer of a checkpoint directory, or the one inside a GGUF file."""
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return AutoTokenizer.from_pretrained(str(directory), **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer from {directory}: {str(exc).splitlines()[0]}") from None


class LlamaCppBackend:
    """A GGUF model (+ a GGUF LoRA adapter) answering chat-completions requests through llama.cpp."""

    engine_name = ENGINE

    def __init__(self, name: str, model_path: str | Path, *, tokenizer: Any, lora_path: str | Path | None = None,
                 constrained: bool = False, batch_size: int = 16, max_new_tokens: int = 256,
                 prompt: str = "chat", task: str | None = None, allow_text: bool = False,
                 threads: int | None = None, jump_forward: bool = True, seed: int = 0, n_ctx: int = N_CTX,
                 prefix_cache_mb: float = PREFIX_CACHE_MB, copy_rules: dict[str, str] | None = None,
                 call_rules: Sequence[str] = ()):
        """The options are `LocalBackend`'s (`batch_size` is kept for the callers that read it:
        this engine decodes one request at a time). `jump_forward`: run grammar-forced tokens as
        one step (False: one forward pass per token, for comparison). `prefix_cache_mb`: memory for
        the KV state of recent prompts (0: only the live cache). `copy_rules`: the fields whose
        values a constrained answer copies from the conversation (`fledgling.models.copying`;
        from the trained model's manifest), held to it while they are decoded. `call_rules`: the
        repeated calls an answer leaves out (`fledgling.curate.repeats`, from the manifest too)."""
        import llama_cpp

        if prompt not in PROMPT_FORMATS:
            raise ConfigError(f"unknown prompt format {prompt!r}; use one of {', '.join(PROMPT_FORMATS)}")
        self.name = name
        self.constrained = constrained
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.task = task or "assistant"
        self.allow_text = allow_text
        self.threads = threads
        self.jump_forward = jump_forward
        self.copy_rules = dict(copy_rules or {})
        self.call_rules = tuple(call_rules)
        self.tokenizer = tokenizer
        self.model_path = str(model_path)
        self.lora_path = str(lora_path) if lora_path else None
        self.weights_type = _file_type(self.model_path) + (" + LoRA at run time" if lora_path else "")
        started = time.perf_counter()
        try:
            self.llm = llama_cpp.Llama(model_path=self.model_path, lora_path=self.lora_path, n_ctx=n_ctx,
                                       n_batch=512, n_threads=decode_threads(threads),
                                       n_threads_batch=decode_threads(threads), seed=seed, logits_all=False,
                                       verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"llama.cpp cannot load model '{name}' from {model_path}: "
                              f"{str(exc).splitlines()[0]}") from None
        self.load_seconds = time.perf_counter() - started
        self._llama_cpp = llama_cpp
        self.n_vocab = self.llm.n_vocab()
        self.n_ctx = n_ctx
        eos = {tokenizer.eos_token_id, self.llm.token_eos()}
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            eos.add(im_end)
        self.stop_ids = {t for t in eos if isinstance(t, int) and t >= 0}
        self._split_ids = {im_end} if isinstance(im_end, int) else set()
        newline = tokenizer("\n", add_special_tokens=False).input_ids
        self._newline = newline[0] if len(newline) == 1 else -1
        self.native_tools = template_renders_tools(tokenizer)
        self._shared = _Shared(int(prefix_cache_mb * 2**20))
        self.last_steps = 0  # forward passes of the last answer (the benchmark reads it)

    @property
    def _grammars(self) -> Any:
        if not self.constrained:
            return None
        if self._shared.grammars is None:
            from fledgling.models.constrained import GrammarBook

            self._shared.grammars = GrammarBook(self.tokenizer, self.n_vocab)
        return self._shared.grammars

    def variant(self, *, name: str | None = None, constrained: bool | None = None, prompt: str | None = None,
                task: str | None = None, allow_text: bool | None = None,
                batch_size: int | None = None, jump_forward: bool | None = None,
                copy_rules: dict[str, str] | None = None) -> LlamaCppBackend:
        """The same loaded model with other decoding options (no second load); `copy_rules={}`
        decodes without holding copied values to the conversation."""
        if prompt is not None and prompt not in PROMPT_FORMATS:
            raise ConfigError(f"unknown prompt format {prompt!r}; use one of {', '.join(PROMPT_FORMATS)}")
        other = copy.copy(self)
        for key, value in (("name", name), ("constrained", constrained), ("prompt", prompt), ("task", task),
                           ("allow_text", allow_text), ("batch_size", batch_size), ("jump_forward", jump_forward),
                           ("copy_rules", copy_rules)):
            if value is not None:
                setattr(other, key, value)
        return other

    def render(self, request: Request) -> str:
        return render_in_format(self.tokenizer, request, prompt=self.prompt, task=self.task,
                                native_tools=self.native_tools)

    async def generate(self, requests: list[Request]) -> list[Generation]:
        return await asyncio.to_thread(self.generate_sync, requests)

    async def aclose(self) -> None:
        return None

    def generate_sync(self, requests: list[Request]) -> list[Generation]:
        """Answer every request, one at a time; a failure becomes that item's `error`."""
        with self._shared.lock:
            threads = decode_threads(self.threads)
            self._llama_cpp.llama_set_n_threads(self.llm.ctx, threads, threads)
            out = []
            for req in requests:
                try:
                    out.append(self._answer(req))
                except Exception as exc:  # one bad request must not sink the others
                    self._shared.cached, self._shared.steps = [], set()
                    self.llm.n_tokens = 0
                    out.append(Generation(None, 0.0, error=f"{type(exc).__name__}: {exc}"))
            return out

    def _answer(self, req: Request) -> Generation:
        started = time.perf_counter()
        ids = self.tokenizer(self.render(req), add_special_tokens=False).input_ids
        budget = min(req.max_tokens or self.max_new_tokens, self.max_new_tokens)
        if len(ids) + budget > self.n_ctx:
            raise ConfigError(f"the prompt ({len(ids)} tokens) and the answer cap ({budget}) exceed the "
                              f"context of {self.n_ctx} tokens")
        book = self._grammars
        grammars = [] if book is None else book.attempts(req, prompt=self.prompt, allow_text=self.allow_text,
                                                         max_tokens=budget)
        steps = 0
        for attempt, compiled in enumerate(grammars or [None]):
            matcher = book.matcher(compiled) if book is not None and compiled is not None else None
            guard = guard_for(req, self.copy_rules) if matcher is not None else None
            tokens, logprobs, hit_limit, passes = self._decode(ids, matcher, budget, guard)
            if guard is not None:
                self._shared.copy_counts.update(held=guard.held, refused=guard.refused, yielded=guard.yielded)
            steps += passes
            if not hit_limit or attempt + 1 >= len(grammars) or cut_is_text(
                    self.tokenizer.decode(tokens, skip_special_tokens=True), req, allow_text=self.allow_text):
                break
            assert book is not None  # a second grammar comes from the book
            book.retries += 1  # cut at the cap: again under the bounded grammar, which ends before it
        ms = (time.perf_counter() - started) * 1000
        text = self.tokenizer.decode([t for t in tokens if t not in self.stop_ids], skip_special_tokens=True)
        response, failed = read_answer(text, req, self.prompt, hit_limit)
        self._shared.copy_counts["calls_dropped"] += drop_repeated_calls(response, req, self.call_rules)
        gen = Generation(response, ms, input_tokens=len(ids), output_tokens=len(tokens), parse_failed=failed,
                         text=text, token_logprobs=logprobs)
        self.last_steps = steps
        return gen

    def _boundaries(self, ids: list[int]) -> list[int]:
        """Where the prompt is cut into the steps it is evaluated in: after each message (its
        `<|im_end|>` and newline) and at the end; the answer's opening (`<|im_start|>assistant`)
        is a step of its own, so the messages before it are evaluated the same way when the
        next call of the conversation repeats them."""
        cuts = []
        for i, t in enumerate(ids):
            if t in self._split_ids:
                end = i + 1
                if end < len(ids) and ids[end] == self._newline:
                    end += 1
                if end < len(ids):
                    cuts.append(end)
        return [*cuts, len(ids)]

    def _prefill(self, ids: list[int]) -> None:
        """The prompt into the KV cache, message by message. What an earlier request evaluated in
        the same steps over the same tokens (the system message, the earlier turns of the same
        conversation) is kept: from the live cache, or restored from the saved state of a recent
        prompt when that keeps more; the rest is evaluated. The steps are a function of the prompt
        alone, so the arithmetic is the same whether a step was cached or not."""
        llm, shared = self.llm, self._shared
        cuts = self._boundaries(ids)
        keep = _kept(ids, cuts, shared.cached, shared.steps)
        source = None
        for key, saved in shared.saved.items():
            k = _kept(ids, cuts, saved.ids, saved.steps)
            if k > keep:
                keep, source = k, key
        if source is not None:
            self._restore(shared.saved[source])
            shared.saved.move_to_end(source)
        llm.n_tokens = keep
        start = keep
        for end in cuts:
            if end > start:
                llm.eval(ids[start:end])
                start = end
        shared.cached, shared.steps = list(ids), set(cuts[:-1])
        shared.reused_tokens += keep
        shared.prompt_tokens += len(ids)
        self._save(ids, cuts)

    def _save(self, ids: list[int], cuts: list[int]) -> None:
        """Keep the KV state of this prompt (its sequence only) for a later call that extends it;
        the saved prompts this one extends are dropped, and the least recently used go first when
        the memory is full."""
        shared = self._shared
        if shared.capacity <= 0 or len(cuts) < 2:
            return
        for key in [k for k, saved in shared.saved.items()
                    if saved.steps and _kept(ids, cuts, saved.ids, saved.steps) == max(saved.steps)]:
            shared.used -= shared.saved.pop(key).nbytes
        ctx = self.llm._ctx.ctx
        size = self._llama_cpp.llama_state_seq_get_size(ctx, 0)
        if size > shared.capacity:
            return
        buffer = (ctypes.c_uint8 * size)()
        nbytes = int(self._llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0))
        if nbytes <= 0:
            return
        while shared.saved and shared.used + nbytes > shared.capacity:
            shared.used -= shared.saved.popitem(last=False)[1].nbytes
        shared.serial += 1
        shared.saved[shared.serial] = _Saved(list(ids), set(cuts[:-1]), buffer, nbytes)
        shared.used += nbytes

    def _restore(self, saved: _Saved) -> None:
        """Put a saved prompt's KV state back as the live sequence."""
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(0, -1, -1)
        if not self._llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, saved.data, saved.nbytes, 0):
            raise RuntimeError("llama.cpp could not restore a saved prompt state")
        llm.input_ids[: len(saved.ids)] = saved.ids
        self._shared.cached, self._shared.steps = list(saved.ids), set(saved.steps)

    def clear_prefix_cache(self) -> None:
        """Forget every kept prompt state and the live cache (a benchmark's passes start cold)."""
        with self._shared.lock:
            shared = self._shared
            shared.saved.clear()
            shared.used = shared.prompt_tokens = shared.reused_tokens = 0
            shared.cached, shared.steps = [], set()
            self.llm.n_tokens = 0

    @property
    def prefix_cache(self) -> dict[str, int]:
        """What the prefix cache holds and saved: prompts kept, bytes, prompt tokens seen and reused."""
        shared = self._shared
        return {"prompts": len(shared.saved), "bytes": shared.used, "prompt_tokens": shared.prompt_tokens,
                "reused_tokens": shared.reused_tokens}

    def _logits(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.n_vocab,))

    def _decode(self, ids: list[int], matcher: Any, budget: int,
                guard: CopyGuard | None = None) -> tuple[list[int], list[float], bool, int]:
        """Greedy decoding of one prompt: (tokens, their log-probabilities, hit the cap, forward
        passes). With a `guard`, a copied value's tokens are the best the guard accepts."""
        self._prefill(ids)
        steps = 1
        grammars = self._grammars if matcher is not None else None
        bitmask = grammars.bitmask(1) if grammars is not None else None
        pieces = self._pieces() if guard is not None else None
        out: list[int] = []
        logprobs: list[float] = []
        while True:
            logits = self._logits().astype(np.float32, copy=True)
            if matcher is not None and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(bitmask, 0)
                allowed = _allowed(bitmask, self.n_vocab)
                logits[~allowed] = -np.inf
            token = int(np.argmax(logits))
            top = logits[token]
            rule = guard.rule() if guard is not None else None
            if rule is not None:
                assert guard is not None and pieces is not None
                token = choose(_best_first(logits, TOP_K), pieces, guard, rule,
                               rest=partial(_best_first, logits, len(logits)))
            logprobs.append(float(logits[token] - top - np.log(np.exp(logits - top).sum())))
            out.append(token)
            if guard is not None:
                assert pieces is not None
                guard.feed(pieces[token])
            if matcher is not None and not matcher.is_terminated():
                matcher.accept_token(token)
            if token in self.stop_ids or (matcher is not None and matcher.is_terminated()):
                return out, logprobs, False, steps
            if len(out) >= budget:
                return out, logprobs, True, steps
            feed = [token]
            if matcher is not None and self.jump_forward:
                forced = self._forced(matcher, budget - len(out))
                if guard is not None:
                    assert pieces is not None
                    guard.feed("".join(pieces[t] for t in forced))
                out.extend(forced)
                logprobs.extend([0.0] * len(forced))
                feed.extend(forced)
                if matcher.is_terminated():
                    return out, logprobs, False, steps
                if len(out) >= budget:
                    return out, logprobs, True, steps
                if self._only_stop(matcher, bitmask):
                    stop = min(self.stop_ids & set(np.flatnonzero(_allowed(bitmask, self.n_vocab)).tolist()))
                    matcher.accept_token(stop)
                    out.append(stop)
                    logprobs.append(0.0)
                    return out, logprobs, False, steps
            self.llm.eval(feed)
            steps += 1

    def _pieces(self) -> list[str]:
        """Each token's text (decoded alone), for the copy guard; made once per loaded model."""
        if self._shared.pieces is None:
            self._shared.pieces = token_pieces(self.tokenizer, self.n_vocab)
        return self._shared.pieces

    @property
    def copy_counts(self) -> dict[str, int]:
        """Tokens decoded inside copied values, and how often the guard refused the model's best
        (or found nothing it accepts among the best and yielded), since the model was loaded."""
        return dict(self._shared.copy_counts)

    def _forced(self, matcher: Any, room: int) -> list[int]:
        """The tokens of the string the grammar forces next (up to `room`), accepted by the matcher.

        xgrammar splits the forced string into the longest vocabulary tokens and leaves out a last
        token that a longer one could extend (`"na` when `"name` may follow), so the model still
        chooses where the forced text meets what it writes. Older xgrammar releases only give
        the string: it is tokenized by the model's tokenizer, and a token the matcher refuses
        ends the jump."""
        if hasattr(matcher, "find_jump_forward_tokens"):
            candidates = list(matcher.find_jump_forward_tokens())
        else:
            text = matcher.find_jump_forward_string()
            candidates = self.tokenizer(text, add_special_tokens=False).input_ids if text else []
        accepted: list[int] = []
        for t in candidates[:room]:
            if not matcher.accept_token(t):
                break
            accepted.append(t)
        return accepted

    def _only_stop(self, matcher: Any, bitmask: Any) -> bool:
        """Whether the grammar allows nothing but the end of the answer."""
        matcher.fill_next_token_bitmask(bitmask, 0)
        allowed = np.flatnonzero(_allowed(bitmask, self.n_vocab))
        return 0 < len(allowed) <= len(self.stop_ids) and set(allowed.tolist()) <= self.stop_ids


def _kept(ids: list[int], cuts: list[int], cached: list[int], steps: set[int]) -> int:
    """How much of the prompt `ids` (evaluated in steps ending at `cuts`) a cached prompt already
    holds: up to the last step both share, over the same tokens; never the final step."""
    keep = 0
    for end in cuts[:-1]:
        if end in steps and cached[:end] == ids[:end]:
            keep = end
        else:
            break
    return keep


@dataclass
class _Saved:
    """The KV state of one evaluated prompt (llama.cpp's sequence state), with its tokens and steps."""

    ids: list[int]
    steps: set[int]
    data: Any  # a ctypes byte array
    nbytes: int


class _Shared:
    """What a backend and its variants share: the model's KV cache state, the saved prompt states
    and the grammar book."""

    def __init__(self, capacity: int) -> None:
        import threading

        self.lock = threading.Lock()
        self.cached: list[int] = []  # the prompt whose steps are in the KV cache
        self.steps: set[int] = set()  # where its evaluation steps ended
        self.grammars: Any = None
        self.pieces: list[str] | None = None  # each token's text, for the copy guard
        self.copy_counts: Counter[str] = Counter()
        self.capacity = capacity  # bytes for saved prompt states
        self.saved: OrderedDict[int, _Saved] = OrderedDict()
        self.used = 0
        self.serial = 0
        self.prompt_tokens = 0
        self.reused_tokens = 0


def _file_type(path: str) -> str:
    """The weights' type as the GGUF names it (`general.file_type`: Q4_1, Q8_0, ...)."""
    try:
        import gguf

        field = gguf.GGUFReader(path).fields.get("general.file_type")
        if field is not None:
            return gguf.LlamaFileType(int(field.contents())).name.removeprefix("MOSTLY_")
    except Exception:  # an unreadable header: llama.cpp itself will say what is wrong
        pass
    return "unknown"


def _best_first(logits: np.ndarray, k: int) -> list[int]:
    """The (at most `k`) tokens with finite logits, most likely first."""
    k = min(k, int(np.isfinite(logits).sum())) or 1
    idx = np.argpartition(-logits, k - 1)[:k]
    return [int(i) for i in idx[np.argsort(-logits[idx], kind="stable")]]


def _allowed(bitmask: Any, n_vocab: int) -> np.ndarray:
    """xgrammar's packed bitmask (int32 words, bit i of word w = token 32*w + i) as booleans."""
    words = bitmask[0].numpy() if hasattr(bitmask, "numpy") else np.asarray(bitmask[0])
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")
    return bits[:n_vocab].astype(bool)
