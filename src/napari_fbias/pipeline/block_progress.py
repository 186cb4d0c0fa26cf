"""Progress inside a step: dask's finished tasks, for chunk-wise runs of large images.

A chunk-wise step runs for minutes on a whole slide: its passes (ranges,
histograms, label merges, the blocks themselves, the region-by-region
write) are dask computes on the local scheduler of the process running the
image (threads; a batch on a cluster runs each image that way inside a
worker). :class:`BlockProgress` is a dask callback that reports, for each
compute started *in the thread that entered it*, ``report(done, total)``
tasks, at most every ``every`` seconds and once at the end of each compute;
computes of other threads (napari drawing a lazy layer) are left alone.
With a ``cancel`` event it also stops the compute in flight: the next
finished task raises :class:`ComputeCancelled`.

    with BlockProgress(lambda done, total: print(done, total)):
        run_pipeline(...)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dask.callbacks import Callback

__all__ = ["BlockProgress", "ComputeCancelled"]


class ComputeCancelled(BaseException):
    """The user cancelled a run while a dask compute was in flight.

    A ``BaseException``, as :class:`asyncio.CancelledError` is, so that the
    ``except Exception`` of an operation's error handling lets it through.
    """


class BlockProgress(Callback):
    """Report the finished tasks of each dask compute of this thread.

    Parameters
    ----------
    report : callable
        ``report(done, total)``; called from the computing thread.
    every : float
        Seconds between reports within one compute.
    cancel : threading.Event, optional
        When set, the compute in flight stops (:class:`ComputeCancelled`).
    """

    def __init__(
        self,
        report: Callable[[int, int], Any],
        *,
        every: float = 0.25,
        cancel: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.report = report
        self.every = float(every)
        self.cancel = cancel
        self._thread = threading.get_ident()
        self._last = 0.0

    def __enter__(self) -> BlockProgress:
        self._thread = threading.get_ident()
        super().__enter__()
        return self

    def _mine(self) -> bool:
        return threading.get_ident() == self._thread

    @staticmethod
    def _counts(state: dict[str, Any]) -> tuple[int, int]:
        done = len(state["finished"])
        return done, done + sum(len(state[k]) for k in ("ready", "waiting", "running"))

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        if self._mine():
            self._last = time.monotonic()
            self.report(*self._counts(state))

    def _posttask(self, key: Any, result: Any, dsk: Any, state: dict[str, Any], wid: Any) -> None:
        if not self._mine():
            return
        if self.cancel is not None and self.cancel.is_set():
            raise ComputeCancelled("cancelled")
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.report(*self._counts(state))

    def _finish(self, dsk: Any, state: dict[str, Any], errored: bool) -> None:
        if self._mine() and not errored:
            done, _ = self._counts(state)
            self.report(done, done)
