"""The OMERO browser's work off the GUI thread: started, guarded and reported in one place.

Every part of the browser (login, tree, opening, sending) starts its work
with :meth:`OmeroJobs.start`, over the plugin's one worker helper
(:func:`napari_fbias._qt.workers.start_worker`): results and errors that
arrive after Qt deleted the browser are dropped; an error is said in the
status line and as a notification, credentials scrubbed, and a lost
connection is shown as such.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from napari_fbias._qt.workers import start_worker
from napari_fbias.io.omero.connection import OmeroConnection, get_connection
from napari_fbias.io.omero.errors import OmeroConnectionError, OmeroError, OmeroNotLoggedInError
from napari_fbias.io.omero.uri import OmeroRef
from napari_fbias.session.secrets import scrub_text

__all__ = ["OmeroJobs", "connection_for", "error_text"]


def error_text(exc: BaseException) -> str:
    """Say what went wrong, without credentials (the type of an unexpected error is named)."""
    if isinstance(exc, (OmeroError, ValueError)):
        return scrub_text(str(exc))
    return f"{type(exc).__name__}: {scrub_text(str(exc))}"


def connection_for(ref: OmeroRef, current: OmeroConnection | None, *, web: bool) -> OmeroConnection:
    """Return the connection for a reference's host; web links may use the browser's ``current``.

    Raises
    ------
    OmeroNotLoggedInError
        When no connection to that host is open.
    """
    try:
        return get_connection(ref.host)
    except OmeroNotLoggedInError:
        if web and current is not None:
            return current  # an OMERO.web host name: the server we are logged in to
        raise


class OmeroJobs:
    """The workers of one browser (login, listing, thumbnails, opening, sending).

    Parameters
    ----------
    say : callable
        Shows a line in the browser's status (GUI thread).
    lost : callable
        Called with the message of an :class:`OmeroConnectionError` (the
        connection was lost).
    """

    def __init__(self, say: Callable[[str], Any], lost: Callable[[str], Any]) -> None:
        self.say = say
        self.lost = lost
        self.alive = True
        self._running: dict[object, Any] = {}

    @property
    def workers(self) -> list[Any]:
        """The workers running, oldest first."""
        return list(self._running.values())

    @property
    def busy(self) -> bool:
        """True while a worker runs."""
        return bool(self._running)

    def is_alive(self) -> bool:
        """Tell whether the browser is still there (else late results are dropped)."""
        return self.alive

    def close(self, *_args: Any) -> None:
        """Drop every result from now on (connected to the browser's ``destroyed`` signal)."""
        self.alive = False

    def start(
        self,
        func: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], Any],
        action: str,
        yielded: Callable[[Any], Any] | None = None,
        progress: bool = False,
        failed: Callable[[BaseException], Any] | None = None,
    ) -> Any:
        """Run ``func(*args)`` in a worker; ``done(result)`` on success; return the worker.

        Parameters
        ----------
        action : str
            What it does, in words (``"listing the server"``): the progress
            bar's text (with ``progress``) and the error message's start.
        yielded : callable, optional
            Called with each value a generator ``func`` yields.
        failed : callable, optional
            Called with the error before it is said.
        """
        token = object()
        worker = start_worker(
            func,
            *args,
            desc=f"OMERO: {action}" if progress else None,
            returned=done,
            errored=partial(self._on_error, action, failed),
            yielded=yielded,
            finished=partial(self._running.pop, token, None),
            guard=self.is_alive,
        )
        self._running[token] = worker  # before ``finished`` can arrive (from the event loop)
        return worker

    def _on_error(
        self, action: str, failed: Callable[[BaseException], Any] | None, exc: BaseException
    ) -> None:
        from napari.utils.notifications import show_error

        text = error_text(exc)
        if failed is not None:
            failed(exc)
        if isinstance(exc, OmeroConnectionError):
            self.lost(text)
        self.say(f"{action[:1].upper()}{action[1:]} failed: {text}")
        show_error(f"OMERO: {action} failed: {text}")
