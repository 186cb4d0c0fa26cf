"""The run part of the panel: the run in flight, its progress, Cancel, the status line, a summary.

:class:`RunStatus` starts a :class:`~.run_model.Job` with the plugin's one
worker helper (:func:`napari_fbias._qt.workers.start_worker`): the runner's
progress reaches the GUI thread through the worker's report relay and moves
both this progress bar and the one in napari's activity dock; Cancel stops
the run before its next step (a batch after the image in progress). Errors
are said in the status line and as napari notifications.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.fit_width import MessageLine
from napari_fbias._qt.run_pipeline.run_model import Job, RunCancelled, run_with_progress
from napari_fbias._qt.workers import set_progress, start_worker

__all__ = ["RunStatus"]


class RunStatus(QWidget):
    """Progress bar, Cancel, status line and summary of the run in flight (one at a time).

    Signals
    -------
    busy_changed
        A run started or ended.
    """

    busy_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.status = MessageLine()
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setMaximumHeight(120)
        self.summary.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.progress_bar, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        layout.addWidget(self.status.native)
        layout.addWidget(self.summary)

    @property
    def busy(self) -> bool:
        """True while a run or a batch is in flight."""
        return self.job is not None

    def say(self, message: str, *, error: bool = False, warning: bool = False) -> None:
        """Show ``message`` in the status line (and as a notification for an error or warning)."""
        self.status.value = message
        if error or warning:
            from napari.utils.notifications import show_error, show_warning

            (show_error if error else show_warning)(message)

    def show_summary(self, text: str) -> None:
        """Show ``text`` in the summary box under the status line."""
        self.summary.setPlainText(text)
        self.summary.setVisible(True)

    def start(
        self,
        job: Job,
        func: Callable[..., Any],
        *args: Any,
        done: Callable[[Job, Any], Any],
        **kwargs: Any,
    ) -> Any:
        """Run ``func(*args, progress=..., **kwargs)`` in a worker for ``job``; return the worker.

        ``done(job, result)`` is called on the GUI thread with what it returned.
        """
        worker = start_worker(
            run_with_progress,
            func,
            *args,
            **kwargs,
            cancel=job.cancel,
            mid_step=job.kind != "batch",
            desc=job.desc,
            report=self._on_progress,
            returned=partial(self._on_returned, job, done),
            errored=partial(self._on_errored, job),
            finished=partial(self._on_finished, job),
        )
        job.worker = worker
        self.job = job
        self.progress_bar.setRange(0, max(job.total, 1))
        self.progress_bar.setValue(0)
        self.summary.setVisible(False)
        self.cancel_button.setEnabled(True)
        self.busy_changed.emit()
        self.say(f"{job.desc}...")
        set_progress(worker, 0, job.total)  # last: napari may process events here
        return worker

    def cancel(self) -> None:
        """Stop the run in flight (a run at its next block or step, a batch after its image)."""
        job = self.job
        if job is None:
            return
        job.cancel.set()
        self.cancel_button.setEnabled(False)
        self.say(job.cancelling())

    def _on_progress(self, report: tuple[Any, ...]) -> None:
        job = self.job
        if job is None:
            return
        if report[0] == "tasks":  # inside a step: a dask pass over a large image's blocks
            try:
                self.status.value = f"{job.line} ({report[1]}/{report[2]} dask tasks)"
            except RuntimeError:
                job.cancel.set()
            return
        done, total, what = report
        text = job.line = job.progressed(done, total, what)
        try:
            self.progress_bar.setRange(0, max(total, 1))
            self.progress_bar.setValue(done)
            self.status.value = text
        except RuntimeError:  # the panel was closed: stop at the next step
            job.cancel.set()
            return
        set_progress(job.worker, done, total, text)  # last: napari may process events here

    def _on_returned(self, job: Job, done: Callable[[Job, Any], Any], result: Any) -> None:
        try:
            done(job, result)
        except RuntimeError:  # the panel or the viewer is gone
            return

    def _on_errored(self, job: Job, exc: BaseException) -> None:
        try:
            if isinstance(exc, RunCancelled):
                if job.kind == "batch":
                    self.show_summary(job.cancelled())
                self.say(job.cancelled())
            else:
                self.say(job.failed(exc), error=True)
        except RuntimeError:  # the panel is gone
            return

    def _on_finished(self, job: Job) -> None:
        if self.job is job:
            self.job = None
        try:
            self.cancel_button.setEnabled(False)
            self.busy_changed.emit()
        except RuntimeError:  # the panel is gone
            return
