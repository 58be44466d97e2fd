"""Local models through transformers: a checkpoint directory (+ PEFT adapter) or a GGUF file.

The decoding loop is in plain sight (`_decode_batch`): greedy, batched with left padding, one
prefill then one token per step on the KV cache. Requests are sorted by prompt length before
batching (less padding), and a row that has finished leaves the batch and its cache at once,
so the batch does not keep paying for answers that are already done. With `constrained=True`
each row's next token is masked by its grammar (see `constrained.py`).

Prompt formats (`prompt=`): `chat`, the model's own chat template with the tools in it, and
the specialist prompts a Fledgling-trained model learnt (`fledgling.models.specialist`): `compact`
(with tool signatures) and `lean` (the task alone), answered and parsed in that format. A trained
model must be asked the way it was taught.

Threads: PyTorch's intra-op workers meet at a barrier after every operation, so on a CPU that
other processes keep busy one descheduled worker stalls them all, and fewer threads decode
faster. By default the backend uses as many threads as the load average says cores are idle (at
least one; its own recent use does not count), re-read before each batch.

Precision: bfloat16 on a GPU, and on a CPU with bfloat16 instructions (AVX512-BF16 or AMX), where
prefill and decoding run faster than in float32; float32 elsewhere. `dtype=` fixes it. The
figures are in docs/paritybench.md ("Speed on CPU"); `benchmarks/eval_throughput.py` measures them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fledgling.calls import Request, Response
from fledgling.curate.repeats import keep
from fledgling.errors import ConfigError
from fledgling.models.constrained import cut_is_text, request_tools
from fledgling.models.copying import TOP_K, CopyGuard, choose, guard_for, token_pieces
from fledgling.models.generation import Generation
from fledgling.models.prompting import (
    PROMPT_FORMATS,
    SPECIALIST_PROMPTS,
    output_schema,
    render_in_format,
    template_renders_tools,
)
from fledgling.models.tool_text import parse_json_content, parse_tool_calls

if TYPE_CHECKING:
    from fledgling.models.constrained import GrammarBook


@dataclass
class _Row:
    index: int
    prompt_ids: list[int]
    matcher: Any = None
    logprobs: list[float] = field(default_factory=list)  # of each chosen token, after the grammar
    fallback: Any = None  # the bounded grammar, for an answer that reaches the cap under `matcher`'s
    guard: CopyGuard | None = None  # holds copied values to the conversation (`fledgling.models.copying`)


def _ranked(logits: Any) -> list[int]:
    """Every token a row's (masked) logits allow, most likely first."""
    return [t for t in logits.argsort(descending=True).tolist() if logits[t] > -math.inf]


MIN_PREFIX = 16  # tokens a batch must share before their encoding is shared too


def common_prefix(sequences: list[list[int]]) -> int:
    """How many leading tokens all sequences share."""
    first, n = sequences[0], min(len(s) for s in sequences)
    for i in range(n):
        if any(s[i] != first[i] for s in sequences):
            return i
    return n


def decode_threads(requested: int | None = None, own_load: float = 0.0) -> int:
    """Intra-op threads to decode with: `requested`, else the cores the load average says are idle
    (`own_load`, the cores this process itself kept busy lately, does not count against it)."""
    if requested:
        return requested
    cores = os.cpu_count() or 1
    idle = cores - max(0.0, os.getloadavg()[0] - own_load)
    return max(1, min(cores, int(idle + 0.5)))


DTYPES = ("float32", "bfloat16")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@contextlib.contextmanager
def _gguf_dtype_advice_silenced() -> Iterator[None]:
    """transformers advises loading a GGUF in float32 ("weights stay packed, every matmul casts").
    SmolLM2's GGUF is dequantised into plain bf16 `Linear` layers all the same, where a prefill
    runs faster than in fp32 (docs/paritybench.md), so the advice does not apply here and only
    clutters the terminal."""
    import logging

    log = logging.getLogger("transformers.quantizers.quantizer_gguf")

    def quiet(record: logging.LogRecord) -> bool:
        return "GGUF checkpoint with its weights packed" not in record.getMessage()

    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def default_dtype(device: str) -> str:
    return "bfloat16" if device != "cpu" or cpu_has_bf16() else "float32"


class LocalBackend:
    """A transformers causal LM answering chat-completions requests on CPU or CUDA."""

    engine_name = "transformers"

    def __init__(self, name: str, path: str | Path, *, gguf_file: str | None = None,
                 adapter: str | Path | None = None, constrained: bool = False,
                 batch_size: int = 16, max_new_tokens: int = 256, device: str | None = None,
                 prompt: str = "chat", task: str | None = None, allow_text: bool = False,
                 threads: int | None = None, dtype: str | None = None, copy_rules: dict[str, str] | None = None,
                 call_rules: Sequence[str] = ()):
        """`prompt`: "chat", "compact" or "lean" (the latter two name `task` in the specialist prompt).
        `allow_text`: with `constrained`, a request with tools may also be answered in plain
        text (when its `tool_choice` does not require a call); set it when the contract has seen
        answers without a tool call. `threads`: intra-op threads (default: the idle cores).
        `dtype`: "float32" or "bfloat16" (default: `default_dtype`). `copy_rules`: the fields a
        constrained answer copies from the conversation, held to it (`fledgling.models.copying`).
        `call_rules`: the repeated calls an answer leaves out (`fledgling.curate.repeats`)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if prompt not in PROMPT_FORMATS:
            raise ConfigError(f"unknown prompt format {prompt!r}; use one of {', '.join(PROMPT_FORMATS)}")
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        self.name = name
        self.constrained = constrained
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.task = task or "assistant"
        self.allow_text = allow_text
        self.copy_rules = dict(copy_rules or {})
        self.call_rules = tuple(call_rules)
        self._pieces: list[str] | None = None
        self.threads = threads
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or default_dtype(self.device)
        self._torch = torch
        started = time.perf_counter()
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.model: Any  # the checkpoint's own model class, or the merged PEFT model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
            with _gguf_dtype_advice_silenced():
                self.model = AutoModelForCausalLM.from_pretrained(
                    str(path), dtype=getattr(torch, self.dtype), **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load model '{name}' from {path}: {str(exc).splitlines()[0]}; "
                              "check the path (a transformers checkpoint directory or .gguf file)") from None
        if adapter:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter)).merge_and_unload()
        self.model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - started
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        eos = self.model.generation_config.eos_token_id
        model_eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.stop_ids = {self.tokenizer.eos_token_id} | set(model_eos)
        self.stop_ids.discard(None)
        self.native_tools = template_renders_tools(self.tokenizer)
        self._grammar_book: GrammarBook | None = None
        self._prefix: tuple[tuple[int, ...], list[tuple[Any, Any]]] | None = None
        self._cpu_mark = (time.monotonic(), time.process_time())

    def _own_load(self) -> float:
        """Cores this process kept busy since the last batch (its share of the load average)."""
        wall, cpu = time.monotonic(), time.process_time()
        then_wall, then_cpu = self._cpu_mark
        self._cpu_mark = (wall, cpu)
        elapsed = wall - then_wall
        return (cpu - then_cpu) / elapsed if 0 < elapsed < 120 else 0.0

    @property
    def _grammars(self) -> Any:
        """The grammar book when decoding is constrained (built once, shared by variants)."""
        if not self.constrained:
            return None
        if self._grammar_book is None:
            from fledgling.models.constrained import GrammarBook

            self._grammar_book = GrammarBook(self.tokenizer, self.model.config.vocab_size)
        return self._grammar_book

    def variant(self, *, name: str | None = None, constrained: bool | None = None, prompt: str | None = None,
                task: str | None = None, allow_text: bool | None = None,
                batch_size: int | None = None, copy_rules: dict[str, str] | None = None) -> LocalBackend:
        """The same loaded weights with other decoding options (no second load); the variant
        keeps its own prompt-prefix cache, starting empty."""
        if prompt is not None and prompt not in PROMPT_FORMATS:
            raise ConfigError(f"unknown prompt format {prompt!r}; use one of {', '.join(PROMPT_FORMATS)}")
        other = copy.copy(self)
        other._prefix = None
        for key, value in (("name", name), ("constrained", constrained), ("prompt", prompt),
                           ("task", task), ("allow_text", allow_text), ("batch_size", batch_size),
                           ("copy_rules", copy_rules)):
            if value is not None:
                setattr(other, key, value)
        if self._grammar_book is None and other.constrained:
            self._grammar_book = other._grammars  # build once, shared both ways
        return other

    def render(self, request: Request) -> str:
        """The prompt text the model reads for `request`, in this backend's format."""
        return render_in_format(self.tokenizer, request, prompt=self.prompt, task=self.task,
                                native_tools=self.native_tools)

    async def generate(self, requests: list[Request]) -> list[Generation]:
        return await asyncio.to_thread(self.generate_sync, requests)

    async def aclose(self) -> None:
        return None

    def generate_sync(self, requests: list[Request]) -> list[Generation]:
        """Answer every request; a failure becomes that item's `error`, never an exception."""
        self._torch.set_num_threads(decode_threads(self.threads, self._own_load()))
        results: list[Generation | None] = [None] * len(requests)
        rows: list[_Row] = []
        grammars = self._grammars
        for i, req in enumerate(requests):
            try:
                row = _Row(i, self.tokenizer(self.render(req), add_special_tokens=False).input_ids)
                if grammars is not None:
                    cap = min(req.max_tokens or self.max_new_tokens, self.max_new_tokens)
                    compiled = grammars.attempts(req, prompt=self.prompt, allow_text=self.allow_text, max_tokens=cap)
                    row.matcher = grammars.matcher(compiled[0]) if compiled else None
                    row.fallback = compiled[1] if len(compiled) > 1 else None
                    row.guard = self._guard(req) if compiled else None
                rows.append(row)
            except Exception as exc:  # one bad request must not sink the batch
                results[i] = Generation(None, 0.0, error=f"prompt: {exc}")
        spent: dict[int, float] = {}  # ms of a first decode that reached the cap and is decoded again
        while rows:
            rows.sort(key=lambda r: len(r.prompt_ids))
            again: list[_Row] = []
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start:start + self.batch_size]
                budgets = [min(requests[r.index].max_tokens or self.max_new_tokens, self.max_new_tokens)
                           for r in batch]
                for row, (tokens, ms, hit_limit) in zip(batch, self._decode_batch(batch, budgets), strict=True):
                    if hit_limit and row.fallback is not None and not cut_is_text(
                            cast(str, self.tokenizer.decode(tokens, skip_special_tokens=True)),
                            requests[row.index], allow_text=self.allow_text):  # again under the bound
                        assert grammars is not None
                        grammars.retries += 1
                        spent[row.index] = ms
                        row.matcher, row.fallback, row.logprobs = grammars.matcher(row.fallback), None, []
                        row.guard = self._guard(requests[row.index])
                        again.append(row)
                        continue
                    ms += spent.get(row.index, 0.0)
                    results[row.index] = self._to_generation(requests[row.index], row, tokens, ms, hit_limit)
            rows = again
        return [g for g in results if g is not None]

    def _guard(self, req: Request) -> CopyGuard | None:
        guard = guard_for(req, self.copy_rules)
        if guard is not None and self._pieces is None:
            self._pieces = token_pieces(self.tokenizer, self.model_vocab)
        return guard

    @property
    def model_vocab(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def _to_generation(self, req: Request, row: _Row, tokens: list[int], ms: float,
                       hit_limit: bool) -> Generation:
        text = cast(str, self.tokenizer.decode([t for t in tokens if t not in self.stop_ids],  # one sequence
                                               skip_special_tokens=True))
        response, failed = read_answer(text, req, self.prompt, hit_limit)
        drop_repeated_calls(response, req, self.call_rules)
        return Generation(response, ms, input_tokens=len(row.prompt_ids), output_tokens=len(tokens),
                          parse_failed=failed, text=text, token_logprobs=row.logprobs)

    def _prefix_kv(self, tokens: list[int]) -> tuple[int, list[tuple[Any, Any]]]:
        """(length, per-layer keys and values) of the prompt prefix `tokens`, batch 1.

        The prefix a batch shares (the system prompt, the tool list) is encoded once and kept:
        the next batch reuses whatever part of it that batch shares too, and only encodes the
        rest. Keys and values of the first n tokens depend on those tokens alone, so a cached
        prefix cut to n tokens is exact.
        """
        from transformers import DynamicCache

        torch = self._torch
        kept = self._prefix
        reuse = common_prefix([list(kept[0]), tokens]) if kept else 0
        if kept and reuse == len(tokens):
            return reuse, [(keys[:, :, :reuse], values[:, :, :reuse]) for keys, values in kept[1]]
        cache = DynamicCache()
        if kept and reuse >= MIN_PREFIX:
            for layer, (keys, values) in enumerate(kept[1]):
                cache.update(keys[:, :, :reuse], values[:, :, :reuse], layer)
        else:
            reuse = 0
        if reuse < len(tokens):
            ids = torch.tensor([tokens[reuse:]], device=self.device)
            positions = torch.arange(reuse, len(tokens), device=self.device)[None]
            with torch.inference_mode():
                self.model(input_ids=ids, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
        layers: list[Any] = list(cache.layers)  # attention layers (the stub's union has other cache kinds)
        kv = [(layer.keys, layer.values) for layer in layers]
        self._prefix = (tuple(tokens), kv)
        return len(tokens), kv

    def _decode_batch(self, batch: list[_Row], budgets: list[int]) -> list[tuple[list[int], float, bool]]:
        """Greedy decoding of one batch: (tokens, ms until that row finished, hit the limit)."""
        torch = self._torch
        from transformers import DynamicCache

        started = time.perf_counter()
        shared = min(common_prefix([r.prompt_ids for r in batch]), min(len(r.prompt_ids) for r in batch) - 1)
        prefix_len, prefix_kv = self._prefix_kv(batch[0].prompt_ids[:shared]) if shared >= MIN_PREFIX else (0, [])
        width = max(len(r.prompt_ids) for r in batch) - prefix_len
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for i, r in enumerate(batch):
            rest = r.prompt_ids[prefix_len:]
            ids[i, width - len(rest):] = torch.tensor(rest)
            mask[i, prefix_len + width - len(rest):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
        cache = DynamicCache()
        for layer, (keys, values) in enumerate(prefix_kv):
            cache.update(keys.expand(len(batch), -1, -1, -1).contiguous(),
                         values.expand(len(batch), -1, -1, -1).contiguous(), layer)
        out_tokens: list[list[int]] = [[] for _ in batch]
        done: list[tuple[float, bool]] = [(0.0, False)] * len(batch)  # set as each row finishes
        active = list(range(len(batch)))
        bitmask = self._grammars.bitmask(len(batch)) if self._grammars is not None else None
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
            next_pos = positions[:, -1] + 1
            while active:
                logits = logits.float()
                masked = [k for k, row in enumerate(active) if batch[row].matcher is not None
                          and not batch[row].matcher.is_terminated()]
                if masked:
                    assert bitmask is not None  # a row has a matcher only when decoding is constrained
                    for k in masked:
                        batch[active[k]].matcher.fill_next_token_bitmask(bitmask, k)
                    logits = logits.cpu()
                    self._grammars.apply(logits, bitmask[: len(active)], masked)
                best = logits.argmax(-1)
                for k, row in enumerate(active):  # a copied value: the best token the guard accepts
                    guard = batch[row].guard
                    rule = guard.rule() if guard is not None else None
                    if rule is not None:
                        assert guard is not None and self._pieces is not None
                        row_logits = logits[k]
                        order = row_logits.topk(min(TOP_K, logits.shape[-1])).indices.tolist()
                        best[k] = choose([t for t in order if row_logits[t] > -math.inf] or order[:1],
                                         self._pieces, guard, rule, rest=partial(_ranked, row_logits))
                chosen = best.tolist()
                picked = self._torch.log_softmax(logits, -1).gather(-1, best[:, None])[:, 0].tolist()
                keep = []
                now = (time.perf_counter() - started) * 1000
                for k, row in enumerate(active):
                    token = chosen[k]
                    out_tokens[row].append(token)
                    batch[row].logprobs.append(picked[k])
                    if batch[row].guard is not None and self._pieces is not None:
                        cast(CopyGuard, batch[row].guard).feed(self._pieces[token])
                    matcher = batch[row].matcher
                    if matcher is not None and not matcher.is_terminated():
                        matcher.accept_token(token)
                    if token in self.stop_ids or (matcher is not None and matcher.is_terminated()):
                        done[row] = (now, False)
                    elif len(out_tokens[row]) >= budgets[row]:
                        done[row] = (now, True)
                    else:
                        keep.append(k)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(index)
                    mask, next_pos = mask[index], next_pos[index]
                    active = [active[k] for k in keep]
                step_ids = torch.tensor([[out_tokens[row][-1]] for row in active], device=self.device)
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=self.device)], 1)
                logits = self.model(input_ids=step_ids, attention_mask=mask,
                                    position_ids=next_pos[:, None], cache=cache,
                                    use_cache=True).logits[:, -1, :]
                next_pos = next_pos + 1
        return [(out_tokens[i], done[i][0], done[i][1]) for i in range(len(batch))]


def read_answer(text: str, request: Request, prompt: str, hit_limit: bool) -> tuple[Response, bool]:
    """A local model's text read as the answer to `request` in prompt format `prompt`:
    (response, parse failed). Every local engine reads its answers this way."""
    finish = "length" if hit_limit else "stop"
    if prompt in SPECIALIST_PROMPTS:
        response, failed = _read_compact(text, request, finish)
    elif request.tools and request.tool_choice != "none":
        parsed = parse_tool_calls(text, finish)
        response, failed = parsed.response, parsed.failed
    elif output_schema(request) is not None:
        parsed = parse_json_content(text, finish)
        response, failed = parsed.response, parsed.failed
    else:
        response, failed = Response(content=text, finish_reason=finish), False
    if hit_limit:
        response.finish_reason = "length"
    return response, failed


def drop_repeated_calls(response: Response, request: Request, rules: Sequence[str]) -> int:
    """Leave out the calls of a decoded answer that `rules` forbid (a call made twice in it, or
    one its conversation already made: `fledgling.curate.repeats`); how many were left out."""
    calls = response.tool_calls
    if not rules or not calls or len(calls) < 2:  # `keep` never leaves an answer without a call
        return 0
    kept = keep(request.messages, [(c.name, c.arguments) for c in calls], rules)
    response.tool_calls = [calls[i] for i in kept]
    return len(calls) - len(kept)


def _read_compact(text: str, request: Request, finish: str) -> tuple[Response, bool]:
    """An answer in the specialist format, read by the trainer's own parser; (response, failed).

    With tools, a text that starts like JSON but is not a call object (or list of them) failed;
    with a response_format schema, a text that is not JSON failed. Both stay as text.
    """
    from fledgling.models.specialist import parse_completion

    tools = bool(request_tools(request))
    response = parse_completion(text, structured=not tools)
    stripped = text.strip()
    if response.tool_calls:
        for i, call in enumerate(response.tool_calls):
            call.id = f"call_{i}"
        return response, False
    response.finish_reason = finish
    if tools:
        return response, stripped[:1] in ("{", "[")
    if output_schema(request) is not None:
        try:
            json.loads(stripped)
        except ValueError:
            return response, True
    return response, False
