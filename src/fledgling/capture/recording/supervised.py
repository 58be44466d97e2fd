"""A recorder part that runs in one daemon thread of its own, which the recorder's supervisor
restarts when it dies (the spool's flusher, the store writer)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("fledgling.gateway")


class Supervised:
    thread_name = "fledgling-part"
    what = "a recorder thread"  # as the log names it

    def __init__(self) -> None:
        self.died: str | None = None  # why the last thread ended, if it died
        self.restarts = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread = self._new_thread()

    def _run(self) -> None:
        raise NotImplementedError

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def restart(self) -> bool:
        """Start a new thread if the old one died; True when it did."""
        if self._stop or self._thread.is_alive() or self._thread.ident is None:
            return False
        self.restarts += 1
        log.error("%s died (%s); restarting it", self.what, self.died)
        self._thread = self._new_thread()
        self._thread.start()
        self._wake.set()
        return True
