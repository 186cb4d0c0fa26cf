"""Send a client's journal from its local outbox to the session space, and keep trying.

Recording never waits for the network: an event is durable once it is in the
local outbox journal (fsync'd). A background thread copies what is new to the
space; while the space cannot be reached it retries every few seconds, and
:attr:`Replicator.status` says so (``"offline: 3 events waiting"``). Only
complete, acknowledged events are ever sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from napari_fbias.session.space import Space, SpaceUnreachableError

#: Seconds between attempts while the space is unreachable.
RETRY_SECONDS = 2.0


class Replicator:
    """Copy one growing local journal to its place in a space.

    Parameters
    ----------
    space : Space
        Where the journal goes.
    remote : str
        Its path in the space.
    local : Path
        The outbox journal.
    acknowledged : callable
        Returns ``(bytes, events)`` of the local journal that are complete.
    """

    def __init__(
        self,
        space: Space,
        remote: str,
        local: Path,
        acknowledged: Callable[[], tuple[int, int]],
    ) -> None:
        self.space = space
        self.remote = remote
        self.local = local
        self._acknowledged = acknowledged
        self._sent_bytes = 0
        self._sent_events = 0
        self._error: str | None = None
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fbias-replicator", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Events recorded here and not yet in the space."""
        return max(0, self._acknowledged()[1] - self._sent_events)

    @property
    def online(self) -> bool:
        """False while the last attempt to reach the space failed."""
        return self._error is None

    @property
    def status(self) -> str:
        """``"online"``, ``"sending: N events"`` or ``"offline: N events waiting (why)"``."""
        n = self.waiting
        if self._error is not None:
            return f"offline: {n} event{'s' * (n != 1)} waiting ({self._error})"
        return "online" if n == 0 else f"sending: {n} event{'s' * (n != 1)}"

    def kick(self) -> None:
        """Send what is new now (called after every recorded event)."""
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Try to send everything now; return True when the space has it all."""
        deadline = time.monotonic() + timeout
        while True:
            self._push_once()
            if self.waiting == 0 and self._error is None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        """Try once more to send what is left (it stays in the outbox otherwise); stop."""
        self._push_once()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(RETRY_SECONDS if self._error else 30.0)
            self._wake.clear()
            if self._stop:
                break
            self._push_once()

    def _push_once(self) -> None:
        with self._lock:
            size, events = self._acknowledged()
            if size <= self._sent_bytes and self._error is None:
                return
            try:
                data = self.local.read_bytes()[:size]
                self.space.push(self.remote, data, self._sent_bytes)
            except (SpaceUnreachableError, OSError) as exc:
                self._error = str(exc).splitlines()[0][:200]
                return
            self._sent_bytes, self._sent_events = size, events
            self._error = None
