"""Reopen (or join) a session in napari without freezing it, and bring its work back.

Everything slow happens in one worker thread: reading the journals (maybe
from a shared folder or an object store), opening each image from its
recorded source, and recomputing every approach's recorded steps
(:func:`napari_fbias.session.restore.restore_work`, bit for bit). Each piece
is shown on the GUI thread as soon as it is ready: the session (the panels
show it at once), then each image, then each approach's result layers,
named as its steps' output layers. Progress shows in napari's activity dock
and through the ``progress`` callback.

A job that is overtaken (another session opened) or whose viewer closed
keeps nothing: the recorder it opened is closed again.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from napari_fbias._qt.workers import set_progress, start_worker
from napari_fbias.session.errors import JournalRecoveryWarning, SessionError
from napari_fbias.session.model import Session
from napari_fbias.session.restore import (
    ApproachRecomputed,
    ImageOpened,
    Problem,
    Progress,
    RestoreSummary,
    restore_work,
)

__all__ = ["ReopenJob", "reopen_in_worker", "start_reopen"]


@dataclass(frozen=True)
class Opened:
    """The session was read: its recorder, the session restored, warnings caught on the way."""

    recorder: Any
    session: Session
    caught: tuple[Any, ...] = ()


@dataclass(eq=False)
class ReopenJob:
    """One reopen, as the GUI sees it; also ``worker.fbias_job``.

    Attributes
    ----------
    link : str
        The session link (folder or URL) reopened.
    recorder : SessionRecorder or None
        Set once the session is read and recording (None if it never was).
    session : Session or None
        The session as read, whose results the worker recomputes.
    caught : list
        ``warnings.WarningMessage`` raised while reading the journals
        (recovery after a crash...).
    problems : list of str
        Images or approaches that could not be brought back, and why.
    layers : list of str
        Layers added or updated (images, then results).
    summary : RestoreSummary or None
        What the worker brought back, once done.
    error : str or None
        Why the session could not be reopened.
    when_done : list of callable
        Called with the job once it is over and everything it brought back
        is shown.
    """

    link: str
    analysts: tuple[str, ...]
    progress: Callable[[str], Any] | None = None
    recorder: Any = None
    session: Session | None = None
    caught: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    summary: RestoreSummary | None = None
    error: str | None = None
    cancelled: bool = False
    done: bool = False
    worker: Any = None
    when_done: list[Callable[[ReopenJob], Any]] = field(default_factory=list)
    pending: list[object] = field(default_factory=list, repr=False)
    handling: bool = False

    def describe(self, name: str) -> str:
        """Return one line saying what was reopened and brought back (``name``: the folder)."""
        s = self.recorder.session if self.recorder is not None else self.session
        if s is None:
            return f"Could not open {name}: {self.error}"
        n = sum(len(a.steps) for a in s.approaches)
        parts = [f"Reopened {s.title or name}: {len(s.approaches)} approach(es), {n} step(s)"]
        if self.summary is not None and self.summary.approaches:
            parts.append(f"results of {', '.join(self.summary.approaches)} recomputed here")
        parts += [f"not brought back: {p}" for p in self.problems]
        if self.error:
            parts.append(f"stopped: {self.error}")
        return "; ".join(parts)

    def show_caught(self) -> None:
        """Show the recovery warnings met reading the journals; warn the others again."""
        from napari.utils.notifications import show_warning

        for w in self.caught:
            if issubclass(w.category, JournalRecoveryWarning):
                show_warning(f"Recovered after a crash: {w.message}")
            else:  # not ours to swallow
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def reopen_in_worker(
    link: str, analysts: tuple[str, ...], present: Collection[str], *, report: Callable
) -> RestoreSummary:
    """Read the session at ``link`` and bring its work back (runs in the worker thread).

    Reports :class:`Opened` first, then what
    :func:`~napari_fbias.session.restore.restore_work` reports.
    """
    from napari_fbias.session.recorder import open_session

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JournalRecoveryWarning)
        rec = open_session(link, analysts=analysts)
    session = rec.session
    report(Opened(rec, session, tuple(caught)))
    return restore_work(session, report=report, present=present)


def start_reopen(
    workspace: Any,
    link: str | Path,
    analysts: tuple[str, ...] | list[str] = (),
    progress: Callable[[str], Any] | None = None,
) -> Any:
    """Reopen the session at ``link`` for ``workspace`` in a worker; return the started worker.

    ``worker.fbias_job`` is the :class:`ReopenJob`; ``progress(text)`` is
    called on the GUI thread as the work goes on, and each callable in
    ``job.when_done`` with the job once everything it brought back is shown.
    """
    job = ReopenJob(str(link), tuple(analysts), progress=progress)
    present = frozenset(layer.name for layer in workspace.viewer.layers)
    handle = partial(_enqueue, workspace, job)
    worker = start_worker(
        reopen_in_worker,
        job.link,
        job.analysts,
        present,
        desc=f"Reopening session {Path(job.link).name}",
        report=handle,
        returned=lambda summary: handle(_Returned(summary)),
        errored=lambda exc: handle(_Errored(exc)),
        finished=lambda: handle(_FINISHED),
    )
    worker.fbias_job = job
    job.worker = worker
    return worker


@dataclass(frozen=True)
class _Returned:
    summary: RestoreSummary


@dataclass(frozen=True)
class _Errored:
    exc: BaseException


_FINISHED = object()


def _enqueue(workspace: Any, job: ReopenJob, value: object) -> None:
    """Handle what the worker sent, one at a time and in order.

    Showing a layer or a progress bar may run a nested Qt event loop (napari's
    progress bar processes events), which delivers the next values while one
    is being handled; they wait in ``job.pending`` until it is done.
    """
    job.pending.append(value)
    if job.handling:
        return
    job.handling = True
    try:
        while job.pending:
            _handle(workspace, job, job.pending.pop(0))
    finally:
        job.handling = False


def _handle(workspace: Any, job: ReopenJob, value: object) -> None:
    if value is _FINISHED:
        job.done = True
        workspace.reopen_done(job)
        for callback in job.when_done:
            callback(job)
    elif isinstance(value, _Returned):
        job.summary = value.summary
    elif isinstance(value, _Errored):
        job.error = _error_text(value.exc)
    elif isinstance(value, Opened):
        job.caught = list(value.caught)
        job.session = value.session
        if job.cancelled or not workspace.adopt_recorder(value.recorder, job):
            job.cancelled = True
            value.recorder.close()  # overtaken, or the viewer closed meanwhile
    elif job.cancelled or job.recorder is None or workspace.recorder is not job.recorder:
        return
    elif isinstance(value, Progress):
        if job.progress is not None:
            job.progress(value.text)
        set_progress(job.worker, value.done, value.total, value.text)
    elif isinstance(value, ImageOpened):
        job.layers += workspace.add_image_layers(value.ref, value.image)
    elif isinstance(value, ApproachRecomputed):
        job.layers += workspace.show_step_values(job.session, value.key, value.values)
    elif isinstance(value, Problem):
        _warn(value.message)
        job.problems.append(value.message)


def _warn(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def _error_text(exc: BaseException) -> str:
    from napari_fbias.session.secrets import scrub_text

    known = isinstance(exc, (SessionError, ValueError, OSError))
    return scrub_text(str(exc) if known else f"{type(exc).__name__}: {exc}")
