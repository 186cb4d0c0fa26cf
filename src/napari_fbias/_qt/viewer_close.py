"""Tell when a napari viewer's window closes (``viewer.close()`` or the window's close button).

napari has no public "viewer closed" event. Its main window handles a
``Close`` event and, when the close is accepted, hides and later deletes
itself; :class:`CloseWatch` sees the event and, once control is back in the
event loop, calls back if the window did not stay open (a close the user
cancelled in napari's confirmation dialog keeps it open and calls nothing).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer

__all__ = ["CloseWatch", "watch_close"]


def _main_window(viewer: Any) -> Any:
    window = getattr(viewer, "window", None)
    return getattr(window, "_qt_window", None)  # napari's QMainWindow (no public accessor)


class _Once:
    """Calls a callback once, when the window it is given did not stay open."""

    def __init__(self, callback: Callable[[], Any]) -> None:
        self.callback: Callable[[], Any] | None = callback

    def check(self, window_ref: weakref.ref) -> None:
        window, open_ = window_ref(), False
        with contextlib.suppress(RuntimeError):  # the window is gone already: it closed
            open_ = window is not None and window.isVisible()
        if not open_ and self.callback is not None:
            callback, self.callback = self.callback, None
            callback()


class CloseWatch(QObject):
    """Calls ``callback()`` once, after the viewer's main window has closed.

    A child of that window, kept alive by it; it holds the window only
    weakly, and nothing should hold the watch (either would keep the viewer
    from being garbage collected). The check runs from a plain function,
    not a slot of the watch, so that it still runs when Qt has deleted the
    window and the watch with it. The callback should hold the objects it
    closes weakly.
    """

    def __init__(self, window: Any, callback: Callable[[], Any]) -> None:
        super().__init__(window)
        self._once = _Once(callback)
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        """Check, after a ``Close`` event, whether the window really closed."""
        if event.type() == QEvent.Type.Close and self._once.callback is not None:
            QTimer.singleShot(0, partial(_Once.check, self._once, weakref.ref(obj)))
        return False


def watch_close(viewer: Any, callback: Callable[[], Any]) -> CloseWatch | None:
    """Call ``callback()`` once the window of ``viewer`` has closed; None when it has no window."""
    window = _main_window(viewer)
    if window is None:
        return None
    return CloseWatch(window, callback)
