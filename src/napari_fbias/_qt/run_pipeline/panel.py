"""The "Run pipeline" panel: rerun a delivered pipeline file in napari.

* **Pipeline** (:mod:`.pipeline_box`, :mod:`.edit_model`): pick a
  ``*.fbias.yaml`` file (file picker or path). It is read with the bounded
  safe YAML loader and validated; *every* problem is listed in words
  (``PipelineError.problems``) and Run stays disabled until none is left. The
  steps are listed (id, operation, inputs); selecting one shows its settings
  as widgets (bounds and choices enforced). An edit builds a *new* immutable
  :class:`~napari_fbias.pipeline.Pipeline` that is validated again (a value
  the validator refuses is not taken); **Save as...** writes the edited
  pipeline atomically (``Pipeline.dump``), never over the file it was loaded
  from, with provenance naming the original and the edits.
* **Image layer** (:mod:`.layer_tab`, :mod:`.inputs_model`): run the pipeline
  on layers of the viewer, read as the pipeline would read the file (axes and
  pixel size from our reader's ``layer.metadata``, or the axes typed in the
  axes field; every channel of a multi-channel image). Each output becomes a
  layer ``"<pipeline>: <output>"`` (labels, images, tracks, spots); tables
  become the measured labels layer's features and are shown in the panel
  (:mod:`.results_view`). Running again replaces those layers. The runner is
  :func:`napari_fbias.pipeline.runner.run_pipeline`, the one the CLI uses:
  same data in, the same labels and tables out, bit for bit.
* **Batch** (:mod:`.batch_tab`): run it on a folder or a list of images
  (paths, URLs) with :func:`napari_fbias.pipeline.batch.run_batch`, writing
  results to an output folder (never into the inputs), with a progress bar,
  Cancel (after the image in progress) and a summary (done / skipped /
  failed, with each failure's message).

Work runs off the GUI thread (:mod:`.run_status`, through
:func:`napari_fbias._qt.workers.start_worker`); errors are napari
notifications. A ``QWidget`` because the steps are shown in a tree view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from napari_fbias._qt.layer_axes import LayerAxesError, fit_axes, shown_extra, unwrap
from napari_fbias._qt.layer_data import lost_pixel_size
from napari_fbias._qt.run_pipeline.batch_tab import BatchTab
from napari_fbias._qt.run_pipeline.edit_model import PipelineDocument, PipelineEditError
from napari_fbias._qt.run_pipeline.inputs_model import chosen_axes, layer_input
from napari_fbias._qt.run_pipeline.layer_tab import LayerTab
from napari_fbias._qt.run_pipeline.pipeline_box import PipelineBox
from napari_fbias._qt.run_pipeline.results_view import TablesView, show_results
from napari_fbias._qt.run_pipeline.run_model import (
    Job,
    batch_job,
    batch_plan,
    batch_summary,
    output_layer_name,
    pipeline_job,
    record_plates,
)
from napari_fbias._qt.run_pipeline.run_status import RunStatus
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.pipeline.errors import BatchError, Problem
from napari_fbias.pipeline.model import Pipeline

__all__ = ["RunPipelineWidget"]


def _scrolled_layout(panel: QWidget) -> QVBoxLayout:
    """Give ``panel`` a vertical scroll area; return the layout of the widget inside it.

    On a small screen the panel scrolls instead of pushing the napari window
    taller than the screen.
    """
    inner = QWidget()
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setWidget(inner)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return QVBoxLayout(inner)


class RunPipelineWidget(QWidget):
    """Load, check, edit and run a pipeline file on layers or on a batch of images.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers are run on and receive the results.

    Attributes
    ----------
    document : PipelineDocument
        The pipeline file as shown (``pipeline``, ``problems``, ``edits``...).
    results : Results or None
        The outputs of the last run on layers.
    report : BatchReport or None
        What the last batch did.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = unwrap(napari_viewer)
        self.document = PipelineDocument()
        self.results: Any = None
        self.report: Any = None
        self._build()
        self._update_state()

    # --- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.pipeline_box = PipelineBox()
        self.pipeline_box.file_chosen.connect(self.load)
        self.pipeline_box.save_requested.connect(self._on_save_requested)
        self.steps_view = self.pipeline_box.steps_view
        self.steps_view.param_edited.connect(self.set_param)
        self.steps_view.param_refused.connect(self._on_param_refused)
        self.file_edit = self.pipeline_box.file_edit
        self.name_label = self.pipeline_box.name_label
        self.problems_box = self.pipeline_box.problems_box
        self.save_button = self.pipeline_box.save_button

        self.layer_tab = LayerTab(self.viewer)
        self.layer_tab.run_button.clicked.connect(self._on_run_clicked)
        self.inputs_form = self.layer_tab.inputs_form
        self.run_button = self.layer_tab.run_button
        self.batch_tab = BatchTab()
        self.batch_tab.batch_button.clicked.connect(self._on_batch_clicked)
        self.batch_inputs = self.batch_tab.batch_inputs
        self.outdir_edit = self.batch_tab.outdir_edit
        self.batch_button = self.batch_tab.batch_button
        self.tabs = QTabWidget()
        self.tabs.addTab(self.layer_tab, "Image layer")
        self.tabs.addTab(self.batch_tab, "Batch")

        self.run_status = RunStatus()
        self.run_status.busy_changed.connect(self._update_state)
        self.progress_bar = self.run_status.progress_bar
        self.cancel_button = self.run_status.cancel_button
        self.status = self.run_status.status
        self.summary = self.run_status.summary
        self.tables_view = TablesView()
        self.table_view = self.tables_view.table_view

        layout = _scrolled_layout(self)
        layout.addWidget(self.pipeline_box)
        layout.addWidget(self.tabs)
        layout.addWidget(self.run_status)
        layout.addWidget(self.tables_view)

    # --- state --------------------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline as shown (with the edits made here)."""
        return self.document.pipeline

    @property
    def problems(self) -> list[Problem]:
        """What stops the pipeline from running (empty when it can run)."""
        return self.document.problems

    @property
    def edits(self) -> dict[tuple[str, str], tuple[Any, Any]]:
        """``(step id, setting) -> (value as loaded, value now)``."""
        return self.document.edits

    @property
    def edited(self) -> bool:
        """True when settings were changed here since the file was loaded."""
        return self.document.edited

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Table outputs of the last runs, by layer-style name (``"nuclei: props"``)."""
        return self.tables_view.tables

    @property
    def busy(self) -> bool:
        """True while a run or a batch is in flight."""
        return self.run_status.busy

    @property
    def can_run(self) -> bool:
        """True when a pipeline without problems is loaded and nothing is running."""
        return self.document.can_run and not self.busy

    def _update_state(self) -> None:
        self.run_button.setEnabled(self.can_run)
        self.batch_button.setEnabled(self.can_run)
        self.pipeline_box.show_document(self.document, busy=self.busy)

    def _report(self, message: str, *, error: bool = False, warning: bool = False) -> None:
        self.run_status.say(message, error=error, warning=warning)

    def _runnable(self) -> Pipeline | None:
        """Return the pipeline when it can run now; else say why not and return None."""
        if self.can_run:
            return self.pipeline
        if self.busy:
            why = "A run is in progress; wait for it or cancel it."
        elif self.pipeline is None:
            why = "Load a pipeline file first."
        else:
            why = "The pipeline has problems; fix them first (see the list)."
        self._report(why, error=True)
        return None

    # --- loading, editing, saving -----------------------------------------------------------
    def load(self, path: str | Path) -> Pipeline | None:
        """Read and validate a pipeline file; show its steps and all its problems.

        Returns
        -------
        Pipeline or None
            The pipeline (possibly with problems: then Run is disabled), or
            None when the file cannot be read as a pipeline at all.
        """
        if self.busy:
            self._report("Wait for the run to finish (or cancel it) first.", error=True)
            return None
        doc = self.document = PipelineDocument.load(path)
        self.steps_view.set_pipeline(doc.pipeline, doc.problems)
        self.layer_tab.set_pipeline(doc.pipeline)
        self._update_state()
        name = Path(path).name
        if doc.problems:
            self._report(
                f"{name}: {len(doc.problems)} problem(s); Run is disabled until they are fixed.",
                error=True,
            )
        else:
            self._report(f"Loaded {name}: valid.")
        return doc.pipeline

    def set_param(self, step_id: str, name: str, value: Any) -> bool:
        """Change a setting of a step; the new pipeline is validated again.

        Returns
        -------
        bool
            True when the value was taken, False when it was refused (the
            reason is shown and the widget shows the previous value again).
        """
        if self.pipeline is None:
            return False
        if self.busy:
            self.steps_view.revert(step_id, name)
            self._report("Settings cannot change while the pipeline runs.", error=True)
            return False
        try:
            taken = self.document.set_param(step_id, name, value)
        except PipelineEditError as exc:
            self.steps_view.revert(step_id, name)
            self._report(f"Not changed: {exc}", error=True)
            return False
        self.steps_view.set_pipeline(self.pipeline, self.problems)
        self._update_state()
        self._report(f"Step {step_id!r}: {name} = {taken!r}")
        return True

    def _on_param_refused(self, step_id: str, name: str, message: str) -> None:
        self._report(f"Not changed: step {step_id!r}: {message}", error=True)

    def pipeline_to_save(self) -> Pipeline:
        """Return the pipeline as it would be saved (edited: naming the original and the edits)."""
        return self.document.to_save()

    def save_as(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Write the (edited) pipeline to ``path`` atomically; return the path written.

        A name without ``.yaml`` gets ``.fbias.yaml``. The file the pipeline was
        loaded from is never overwritten, nor any file unless ``overwrite``.
        A pipeline with problems is not saved.
        """
        from napari_fbias.io.errors import OutputExistsError

        try:
            target = self.document.save_path(path)
            written = self.document.to_save().dump(target, overwrite=overwrite)
        except PipelineEditError as exc:
            self._report(str(exc), error=True)
            return None
        except (OutputExistsError, OSError) as exc:
            self._report(f"Not saved: {exc}", error=True)
            return None
        self._report(f"Saved {written}")
        return written

    def _on_save_requested(self, path: str) -> None:
        self.save_as(path, overwrite=True)  # the dialog asked before replacing a file

    # --- running on layers ----------------------------------------------------------------
    def run(
        self,
        layers: Mapping[str, Any] | Any = None,
        *,
        axes: Mapping[str, str] | str | None = None,
    ) -> Any:
        """Run the pipeline on layers of the viewer (in a worker thread); return the worker.

        Parameters
        ----------
        layers : mapping or layer, optional
            Input name -> layer (or layer name), or one layer for the first
            input. By default the layers chosen in the panel.
        axes : mapping or str, optional
            Corrected axes per input (or of the first input). By default the
            panel's axes fields (empty: the layer's own axes).

        Returns
        -------
        FunctionWorker or None
            None when the run could not start (the reason is shown).
        """
        pipeline = self._runnable()
        if pipeline is None:
            return None
        names = list(pipeline.inputs)
        chosen = self._resolve_layers(layers, names)
        axes_of = self.layer_tab.typed_axes() if axes is None else chosen_axes(axes, names)
        missing = [n for n in names if chosen.get(n) is None]
        if missing:
            self._report(f"Choose a layer for input(s) {', '.join(missing)}.", error=True)
            return None
        for name in axes_of:  # typos in an axes field: said under the field, no notification
            try:
                fit_axes(chosen[name], axes_of[name])
            except LayerAxesError as exc:
                if axes is None:
                    self.layer_tab.axes_problem(name, chosen[name])
                self._report(f"Not run: {exc}")
                return None
        inputs: dict[str, Any] = {}
        try:
            for name in names:
                inputs[name] = layer_input(
                    chosen[name],
                    pipeline.inputs[name].kind,
                    self.viewer.layers,
                    axes_of.get(name),
                    extra=shown_extra(chosen[name], self.viewer.dims),  # the angle... shown
                )
        except (LayerAxesError, ValueError) as exc:
            self._report(f"Not run: {exc}", error=True)
            return None
        job = Job("layers", pipeline, len(pipeline.steps), like=chosen[names[0]])
        job.notes = [n for n in (lost_pixel_size(chosen[name]) for name in names) if n]
        worker = self.run_status.start(job, pipeline_job, pipeline, inputs, done=self._show_results)
        if job.notes:
            from napari.utils.notifications import show_warning

            for note in job.notes:
                show_warning(note)
        return worker

    def _on_run_clicked(self) -> None:
        self.run()

    def _resolve_layers(self, layers: Any, names: list[str]) -> dict[str, Any]:
        if layers is None:
            chosen = self.layer_tab.chosen_layers()
        elif isinstance(layers, Mapping):
            chosen = dict(layers)
        else:
            chosen = {names[0]: layers}
        out = {}
        for n, layer in chosen.items():
            if isinstance(layer, str):
                layer = self.viewer.layers[layer] if layer in self.viewer.layers else None
            out[n] = layer
        return out

    def _show_results(self, job: Job, results: Any) -> None:
        self.results = results
        self.tables_view.add_tables(show_results(self.viewer, job, results))
        made_names = ", ".join(output_layer_name(job.pipeline.name, o) for o in results)
        self._report("\n".join([f"Done: {made_names}", *(f"Note: {n}" for n in job.notes)]))

    # --- batch ----------------------------------------------------------------------------
    def batch_input_list(self) -> list[str]:
        """Return the images typed or added for the batch, one per line."""
        return self.batch_tab.input_list()

    def run_batch(
        self,
        inputs: Sequence[str] | None = None,
        outdir: str | Path | None = None,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
    ) -> Any:
        """Run the pipeline on many images, writing results under ``outdir`` (worker thread).

        Parameters
        ----------
        inputs : sequence of str, optional
            Folders, files, OME-Zarr paths or URLs, globs (default: the panel's list).
        outdir : path, optional
            Output folder (default: the panel's); never inside an input.
        workers : int, optional
            1 runs one image after the other here; more start a local dask cluster.
        scheduler : str, optional
            Address of a running dask scheduler.

        Returns
        -------
        FunctionWorker or None
            None when the batch could not start (the reason is shown).
        """
        pipeline = self._runnable()
        if pipeline is None:
            return None
        tab = self.batch_tab
        try:
            plan = batch_plan(
                pipeline,
                list(inputs) if inputs is not None else tab.input_list(),
                str(outdir) if outdir is not None else tab.outdir(),
                workers=int(tab.workers.value if workers is None else workers),
                scheduler=tab.scheduler.value if scheduler is None else scheduler,
                wells=tab.wells.value,
                fields=tab.fields.value,
                series=tab.series.value,
            )
        except BatchError as exc:
            self._report(str(exc), error=True)
            return None
        job = Job("batch", pipeline, plan.n_items, outdir=plan.outdir)
        return self.run_status.start(
            job,
            batch_job,
            pipeline,
            plan.inputs,
            plan.outdir,
            options=plan.options,
            done=self._show_report,
        )

    def _on_batch_clicked(self) -> None:
        self.run_batch()

    def _show_report(self, job: Job, report: Any) -> None:
        self.report = report
        first, text = batch_summary(report)
        recorded = record_plates(get_workspace(self.viewer).recorder, report.plates)
        if recorded:
            text += f"\n{recorded}"
        self.run_status.show_summary(text)
        if report.ok:
            self._report(first)
            from napari.utils.notifications import show_info

            show_info(f"Batch {job.pipeline.name!r}: {first}")
        else:
            self._report(text, warning=True)

    def cancel(self) -> None:
        """Stop the run in flight (a run before its next step, a batch after the current image)."""
        self.run_status.cancel()
