"""Work off the GUI thread: one way to start a worker, report from it and show its progress.

:func:`start_worker` runs a plain function in a napari worker thread, with a
progress bar in napari's activity dock (unless ``desc`` is None: quick
background work). A function that takes a ``report`` keyword gets a
thread-safe callable: each value it passes arrives, in order and before the
worker's ``returned`` signal, at the ``report`` callback on the GUI thread (a
queued Qt signal), so a long job can show its pieces as they come. Errors
never escape as exceptions: they go to ``errored``. Every callback is
connected before the worker starts (a signal connected later may be missed);
``guard`` drops the results meant for a widget Qt already deleted. Every
widget of the plugin starts its workers here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeAlias

from qtpy.QtCore import QObject, Signal, Slot

__all__ = ["Relay", "set_progress", "start_worker"]

Callbacks: TypeAlias = Callable[..., Any] | Sequence[Callable[..., Any]]


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
    desc: str | None,
    returned: Callable[[Any], Any] | None = None,
    errored: Callable[[BaseException], Any] | None = None,
    finished: Callable[[], Any] | None = None,
    yielded: Callable[[Any], Any] | None = None,
    report: Callable[[Any], Any] | None = None,
    guard: Callable[[], bool] | None = None,
    connect: Mapping[str, Callbacks] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``func(*args, **kwargs)`` in a napari worker thread; return the started worker.

    Parameters
    ----------
    func : callable
        The work; it must not touch widgets or layers. A generator function
        gives a worker that yields.
    *args, **kwargs
        Its arguments.
    desc : str or None
        Text of the progress bar in napari's activity dock; None: no bar.
    returned, errored, finished, yielded : callable, optional
        Connected to the worker's signals before it starts (on the GUI thread).
    report : callable, optional
        When given, ``func`` is called with ``report=`` a thread-safe callable
        whose values reach this callback on the GUI thread, in order, before
        ``returned``.
    guard : callable, optional
        Asked before ``returned``, ``errored``, ``yielded`` and ``report``:
        when it returns False (the widget is gone) they are not called;
        ``finished`` (bookkeeping) always is.
    connect : mapping, optional
        More callbacks (one or a sequence) by worker signal name, connected
        after the ones above, before the worker starts.

    Returns
    -------
    napari.qt.threading.FunctionWorker or GeneratorWorker
        Already started; ``worker.pbar`` is its progress bar (when ``desc``).
    """
    from napari.qt.threading import create_worker

    relay = None
    if report is not None:
        relay = Relay(_guarded(report, guard))
        kwargs["report"] = relay.send
    options: dict[str, Any] = {"_start_thread": False, "_ignore_errors": True}  # see ``errored``
    if desc is not None:
        options["_progress"] = {"total": 0, "desc": desc}
    worker = create_worker(func, *args, **options, **kwargs)
    worker.fbias_relay = relay  # alive as long as the worker
    named = {"returned": returned, "errored": errored, "finished": finished, "yielded": yielded}
    for signal, callback in named.items():
        if callback is not None:
            if signal != "finished":
                callback = _guarded(callback, guard)
            getattr(worker, signal).connect(callback)
    for signal, more in (connect or {}).items():
        for callback in [more] if callable(more) else more:
            getattr(worker, signal).connect(callback)
    worker.start()
    return worker


def _guarded(callback: Callable[..., Any], guard: Callable[[], bool] | None) -> Callable[..., Any]:
    """Return ``callback``, called only while ``guard()`` is true (always without a guard)."""
    return callback if guard is None else partial(_call_if, guard, callback)


def _call_if(guard: Callable[[], bool], callback: Callable[..., Any], *args: Any) -> Any:
    return callback(*args) if guard() else None


def set_progress(worker: Any, done: int, total: int, text: str = "") -> None:
    """Show ``done`` of ``total`` (and ``text``) in a worker's progress bar (GUI thread).

    napari's progress bar processes pending Qt events when it changes, so
    values reported after this one may be handled before this call returns:
    call it last in a report handler.
    """
    pbar = getattr(worker, "pbar", None)
    if pbar is None or pbar.disable:  # no bar, or closed: the worker finished
        return
    if pbar.total != total:
        pbar.total = total
    if done != pbar.n:
        pbar.update(done - pbar.n)
    if text:
        pbar.set_description(text)
