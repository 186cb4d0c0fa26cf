"""Work off the GUI thread: one way to start a worker, report from it and show its progress.

:func:`start_worker` runs a plain function in a napari worker thread, with a
progress bar in napari's activity dock. A function that takes a ``report``
keyword gets a thread-safe callable: each value it passes arrives, in
order and before the worker's ``returned`` signal, at the ``report``
callback on the GUI thread (a queued Qt signal), so a long job can show its
pieces as they come. Errors never escape as exceptions: they go to
``errored``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Signal, Slot

__all__ = ["Relay", "set_progress", "start_worker"]


class Relay(QObject):
    """Carries values sent from any thread to ``callback`` on the thread that made the relay.

    Parameters
    ----------
    callback : callable
        Called with each value sent, on the relay's (the GUI) thread.
    """

    sent = Signal(object)

    def __init__(self, callback: Callable[[Any], Any]) -> None:
        super().__init__()
        self._callback = callback
        self.sent.connect(self._deliver)

    def send(self, value: Any) -> None:
        """Send ``value`` (from any thread); it is delivered on the relay's thread."""
        self.sent.emit(value)

    @Slot(object)
    def _deliver(self, value: Any) -> None:
        self._callback(value)


def start_worker(
    func: Callable[..., Any],
    *args: Any,
    desc: str,
    returned: Callable[[Any], Any] | None = None,
    errored: Callable[[BaseException], Any] | None = None,
    finished: Callable[[], Any] | None = None,
    report: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``func(*args, **kwargs)`` in a napari worker thread; return the started worker.

    Parameters
    ----------
    func : callable
        The work; it must not touch widgets or layers.
    *args, **kwargs
        Its arguments.
    desc : str
        Text of the progress bar in napari's activity dock.
    returned, errored, finished : callable, optional
        Connected to the worker's signals before it starts (on the GUI thread).
    report : callable, optional
        When given, ``func`` is called with ``report=`` a thread-safe callable
        whose values reach this callback on the GUI thread, in order, before
        ``returned``.

    Returns
    -------
    napari.qt.threading.FunctionWorker
        Already started; ``worker.pbar`` is its progress bar.
    """
    from napari.qt.threading import create_worker

    relay = None
    if report is not None:
        relay = Relay(report)
        kwargs["report"] = relay.send
    worker = create_worker(
        func,
        *args,
        _start_thread=False,
        _progress={"total": 0, "desc": desc},
        _ignore_errors=True,  # errors go to ``errored``
        **kwargs,
    )
    worker.fbias_relay = relay  # alive as long as the worker
    for signal, callback in (("returned", returned), ("errored", errored), ("finished", finished)):
        if callback is not None:
            getattr(worker, signal).connect(callback)
    worker.start()
    return worker


def set_progress(worker: Any, done: int, total: int, text: str = "") -> None:
    """Show ``done`` of ``total`` (and ``text``) in a worker's progress bar (GUI thread).

    napari's progress bar processes pending Qt events when it changes, so
    values reported after this one may be handled before this call returns:
    call it last in a report handler.
    """
    pbar = getattr(worker, "pbar", None)
    if pbar is None:
        return
    if pbar.total != total:
        pbar.total = total
    if done != pbar.n:
        pbar.update(done - pbar.n)
    if text:
        pbar.set_description(text)
