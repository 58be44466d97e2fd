"""The batching queue in front of an in-process model: concurrent requests share one forward pass.

Requests arriving within `max_wait_ms` of the first waiting one (up to `max_batch`) are decoded
together by the backend's batched loop, on a worker thread, so the event loop keeps serving. One
batch runs at a time (the CPU is the bottleneck; two batches in parallel would only fight for
it). A request whose caller gave up (its time budget ran out) is dropped before it is batched.
A request a client is waiting for goes before any shadow run (`background=True`): shadow runs
only fill the places left in a batch, so they never hold up a served answer beyond one batch.

Batched greedy decoding is deterministic but not batch-invariant: a row's arithmetic depends on
its padding and on the rows beside it (and, in principle, on the number of threads), and on a
near tie the argmax can flip. So each answer comes back with its batch's record: an id, the
peers' tags (call ids) in the order they were decoded, and the thread count, which replay uses
to decode the very same batch again (`replay.py`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from fledgling.calls import Request
from fledgling.models.generation import Generation, ModelBackend
from fledgling.models.local import decode_threads

Result = tuple[Generation, dict[str, Any]]


@dataclass
class _Waiting:
    request: Request
    tag: str | None
    future: asyncio.Future[Result]


class BatchQueue:
    def __init__(self, backend: ModelBackend, *, max_batch: int = 8, max_wait_ms: float = 5.0):
        self.backend = backend
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._pending: deque[_Waiting] = deque()
        self._background: deque[_Waiting] = deque()
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0
        self._threads: int | None = getattr(backend, "threads", None)  # configured, else per batch

    async def generate_one(self, request: Request, tag: str | None = None, *, background: bool = False) -> Result:
        """The answer and the record of the batch it was decoded in. `background`: nobody waits
        for it (a shadow run); it yields to served requests."""
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._arrived = asyncio.Event()
            self._worker = loop.create_task(self._run())
        future: asyncio.Future[Result] = loop.create_future()
        (self._background if background else self._pending).append(_Waiting(request, tag, future))
        assert self._arrived is not None
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            while not (self._pending or self._background):
                self._arrived.clear()
                await self._arrived.wait()
            deadline = time.monotonic() + self.max_wait_s
            while len(self._pending) + len(self._background) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            room = min(self.max_batch - len(batch), len(self._background))
            batch += [self._background.popleft() for _ in range(room)]
            live = [w for w in batch if not w.future.done()]
            if not live:
                continue
            self.batches += 1
            self.items += len(live)
            record = self._record(live)
            try:
                results = await self.backend.generate([w.request for w in live])
            except Exception as exc:  # a crashed batch fails its items, not the queue
                results = [Generation(None, 0.0, error=f"batch failed: {exc}") for _ in live]
            for i, (w, g) in enumerate(zip(live, results, strict=True)):
                if not w.future.done():
                    w.future.set_result((g, {**record, "position": i}))

    def _record(self, live: list[_Waiting]) -> dict[str, Any]:
        """Pin the batch's thread count (a local backend reads `threads` before each batch) and
        describe the batch."""
        threads = None
        if hasattr(self.backend, "threads"):
            threads = decode_threads(self._threads)
            setattr(self.backend, "threads", threads)  # noqa: B010 (not on the ModelBackend protocol)
        return {"id": os.urandom(6).hex(), "size": len(live), "peers": [w.tag for w in live],
                "threads": threads}

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        await self.backend.aclose()
