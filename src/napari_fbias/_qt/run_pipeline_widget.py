"""The "Run pipeline" panel: rerun a delivered pipeline file in napari.

* **Pipeline**: pick a ``*.fbias.yaml`` file (file picker or path). It is
  read with the bounded safe YAML loader and validated; *every* problem is
  listed in words (``PipelineError.problems``) and Run stays disabled until
  none is left. The steps are listed (id, operation, inputs); selecting one
  shows its settings as widgets (bounds and choices enforced). An edit builds
  a *new* immutable :class:`~napari_fbias.pipeline.Pipeline` that is validated
  again (a value the validator refuses is not taken); **Save as...** writes
  the edited pipeline atomically (``Pipeline.dump``), never over the file it
  was loaded from, with provenance naming the original and the edits.
* **Image layer**: run the pipeline on layers of the viewer, read as the
  pipeline would read the file (axes and pixel size from our reader's
  ``layer.metadata``, or the axes typed in the axes field; every channel of a
  multi-channel image). Each output becomes a layer ``"<pipeline>: <output>"``
  (labels, images, tracks, spots); tables become the measured labels layer's
  features and are shown in the panel. Running again replaces those layers.
  The runner is :func:`napari_fbias.pipeline.runner.run_pipeline`, the one the
  CLI uses: same data in, the same labels and tables out, bit for bit.
* **Batch**: run it on a folder or a list of images (paths, URLs) with
  :func:`napari_fbias.pipeline.batch.run_batch`, writing results to an output
  folder (never into the inputs), with a progress bar, Cancel (after the image
  in progress) and a summary (done / skipped / failed, with each failure's
  message).

Work runs off the GUI thread (napari ``create_worker``); errors are napari
notifications. A ``QWidget`` because the steps are shown in a tree view.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, SpinBox
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.fit_width import MessageLine, narrow_choices, wrap_label
from napari_fbias._qt.layer_axes import (
    LayerAxesError,
    channel_index,
    fit_axes,
    layer_array,
    layer_axes,
    reader_info,
    set_layer_axes,
    unwrap,
)
from napari_fbias._qt.layer_data import layer_value, lost_pixel_size, value_layer_data
from napari_fbias._qt.op_widget import layer_choices
from napari_fbias._qt.pipeline_steps_view import PipelineStepsView
from napari_fbias._qt.table_widget import TableView
from napari_fbias.io.errors import FbiasIOError
from napari_fbias.ops.registry import UnknownOpError, get_op
from napari_fbias.pipeline.errors import BatchError, PipelineError, Problem
from napari_fbias.pipeline.model import Pipeline, thaw
from napari_fbias.pipeline.values import Value

__all__ = [
    "PipelineEditError",
    "RunCancelled",
    "RunPipelineWidget",
    "batch_job",
    "layer_input",
    "output_layer_name",
    "pipeline_job",
    "unwrap_viewer",
    "with_param",
]

PIPELINE_SUFFIX = ".fbias.yaml"
#: ``layer.metadata`` key of the layers a pipeline run made.
META_KEY = "fbias_pipeline"


class PipelineEditError(ValueError):
    """An edit of a setting that the pipeline validator refuses."""


class RunCancelled(Exception):
    """Raised in the worker thread when the user cancelled the run."""


# --- plain functions (testable without a widget) ------------------------------------------


def with_param(pipeline: Pipeline, step_id: str, name: str, value: Any) -> Pipeline:
    """Return a new pipeline with setting ``name`` of step ``step_id`` set to ``value``.

    The value is checked against the operation's setting (type, range,
    choices) and the new pipeline validated as a whole.

    Raises
    ------
    PipelineEditError
        Naming the step, the setting and why the value is refused.
    """
    from napari_fbias.pipeline.validate import coerce_param

    try:
        step = pipeline.step(step_id)
    except KeyError:
        raise PipelineEditError(f"the pipeline has no step {step_id!r}") from None
    try:
        spec = get_op(step.op).param(name)
    except UnknownOpError as exc:
        raise PipelineEditError(f"step {step_id!r}: {exc}") from None
    except KeyError:
        raise PipelineEditError(f"step {step_id!r} ({step.op}) has no setting {name!r}") from None
    converted, why = coerce_param(spec, value)
    if why is not None:
        raise PipelineEditError(f"step {step_id!r}, setting {name!r}: {why}")
    steps = tuple(
        replace(s, params={**s.params, name: converted}) if s.id == step_id else s
        for s in pipeline.steps
    )
    edited = replace(pipeline, steps=steps)
    mine = [p for p in edited.problems() if p.step_id == step_id and p.field == f"params.{name}"]
    if mine:
        raise PipelineEditError("; ".join(str(p) for p in mine))
    return edited


def unwrap_viewer(viewer: Any) -> Any:
    """Return the viewer itself when napari hands a dock widget a ``PublicOnlyProxy`` of it."""
    return unwrap(viewer)


def output_layer_name(pipeline_name: str, output: str) -> str:
    """Name of the layer showing ``output`` of a pipeline run: ``"<pipeline>: <output>"``."""
    return f"{pipeline_name}: {output}"


def _units_of(layer: Any, axes: str) -> tuple[str | None, ...] | None:
    """Units our reader recorded for ``axes`` of a layer's image (None when unknown)."""
    info = reader_info(layer)
    if info is None:
        return None
    full, units = str(info.get("axes", "")), list(info.get("units") or ())
    if len(full) != len(units) or not any(units):
        return None
    by_axis = dict(zip(full, units, strict=True))
    return tuple(by_axis.get(a) for a in axes)


def _channel_layers(layer: Any, layers: Any) -> dict[int, Any]:
    """Return the layers showing the channels of the same image as ``layer``, by channel."""
    info = reader_info(layer)
    found: dict[int, Any] = {}
    for other in layers:
        o = reader_info(other)
        if o is None or type(other) is not type(layer):
            continue
        if (o.get("source"), o.get("name")) != (info.get("source"), info.get("name")):
            continue
        try:
            c = channel_index(other)
        except LayerAxesError:
            continue
        if c is not None:
            found.setdefault(c, other)
    return found


def layer_input(layer: Any, kind: str, layers: Any = (), axes: str | None = None) -> Any:
    """Return what the pipeline input of ``kind`` receives for ``layer``.

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer chosen for the input.
    kind : str
        The input's kind (``"image"`` or ``"labels"``).
    layers : sequence of layers
        The viewer's layers: a layer showing one channel of a multi-channel
        image is run with the whole image, rebuilt from its channel layers.
    axes : str, optional
        Corrected axes of the layer (recorded in its metadata); by default
        those recorded by our reader or a step, else guessed.

    Returns
    -------
    Value or str
        The data with axes, pixel size and units as the pipeline reads them
        from the file; or the image's source (path or URL, opened by the
        runner) when a channel layer of it is missing.

    Raises
    ------
    LayerAxesError
        When the axes do not fit the layer, or the image cannot be rebuilt.
    """
    ax = set_layer_axes(layer, axes) if axes else layer_axes(layer)
    c = channel_index(layer)
    if c is None:
        value = layer_value(layer, kind, axes=ax)
        return replace(value, units=_units_of(layer, ax))
    info = reader_info(layer) or {}
    full = str(info.get("axes", ""))
    n_c = int(info["shape"][full.index("c")])
    found = _channel_layers(layer, layers)
    if all(i in found for i in range(n_c)):
        arrays = [layer_array(found[i]) for i in range(n_c)]
        if any(type(a).__module__.startswith("dask") for a in arrays):
            import dask.array as da

            data: Any = da.stack([da.asarray(a) for a in arrays], axis=full.index("c"))
        else:
            data = np.stack([np.asarray(a) for a in arrays], axis=full.index("c"))
        scale = tuple(float(s) for s in info.get("scale") or ())
        return Value(
            data, kind, full, scale if len(scale) == len(full) else None, _units_of(layer, full)
        )
    source = str(info.get("source") or "")
    if source:
        return source
    missing = ", ".join(str(i) for i in range(n_c) if i not in found)
    raise LayerAxesError(
        f"layer {layer.name!r} is one channel of image {info.get('name')!r}; the pipeline "
        f"reads the whole image, but the layers of channel(s) {missing} are not in the viewer "
        "and the image has no source to read them from. Open the image again."
    )


def pipeline_job(pipeline: Pipeline, inputs: Mapping[str, Any], progress: Any = None) -> Any:
    """Run ``pipeline`` on ``inputs`` (input name -> data) with the CLI's runner (worker thread).

    Returns
    -------
    Results
        As :func:`napari_fbias.pipeline.runner.run_pipeline` returns them.
    """
    from napari_fbias.pipeline.runner import run_pipeline

    names = list(pipeline.inputs)
    more = {n: inputs[n] for n in names[1:] if n in inputs}
    return run_pipeline(pipeline, inputs.get(names[0]), progress=progress, **more)


def batch_job(
    pipeline: Pipeline,
    inputs: Sequence[str],
    outdir: str,
    progress: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Run ``pipeline`` on every input with :func:`run_batch` (worker thread); return its report."""
    from napari_fbias.pipeline.batch import run_batch

    return run_batch(pipeline, list(inputs), outdir, progress=progress, **dict(options or {}))


def _features(df: pd.DataFrame) -> pd.DataFrame | None:
    """Return a measurement table as labels features (one row per label), else None."""
    if "label" not in df or "t" in df or not df["label"].is_unique:
        return None
    return pd.concat(
        [pd.DataFrame({"index": df["label"].to_numpy()}), df.reset_index(drop=True)], axis=1
    )


def _for_display(path: Path) -> Pipeline | None:
    """Read a pipeline file that has problems, as far as it can be shown (None if it cannot).

    The file is parsed with the same bounded safe loader; nothing is run.
    """
    from napari_fbias.pipeline.yaml_safe import load_file

    try:
        return Pipeline.load(path, validate=False)
    except PipelineError:
        pass
    try:
        d = load_file(path)
        return Pipeline(
            name=str(d.get("name", "")),
            inputs=d.get("inputs") or {},
            steps=[s for s in d.get("steps") or () if isinstance(s, Mapping)],
            outputs=d.get("outputs") or {},
            description=str(d.get("description") or ""),
        )
    except (PipelineError, AttributeError, KeyError, TypeError, ValueError):
        return None


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


def _problem_lines(problems: Sequence[Problem]) -> str:
    n = len(problems)
    head = f"This pipeline cannot run: {n} problem{'s' if n != 1 else ''} to fix"
    return head + ":\n" + "\n".join(f"\u2022 {p}" for p in problems)


# --- the panel ----------------------------------------------------------------------------


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progressed = Signal(int, int, str)


class _Progress:
    """The ``progress`` callback handed to the runner: relays progress and stops on Cancel."""

    def __init__(self, relay: _Relay, cancel: threading.Event) -> None:
        self.relay = relay
        self.cancel = cancel

    def __call__(self, done: int, total: int, what: str) -> None:
        try:
            self.relay.progressed.emit(int(done), int(total), str(what))
        except RuntimeError:  # the panel was closed
            self.cancel.set()
        if self.cancel.is_set() and done < total:
            raise RunCancelled("cancelled")


@dataclass
class _Job:
    """A run in flight (one at a time)."""

    kind: str
    pipeline: Pipeline
    cancel: threading.Event
    total: int
    like: Any = None
    outdir: str = ""
    worker: Any = None
    bar: Any = None
    seen: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class RunPipelineWidget(QWidget):
    """Load, check, edit and run a pipeline file on layers or on a batch of images.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers are run on and receive the results.

    Attributes
    ----------
    pipeline : Pipeline or None
        The pipeline as shown (with the edits made here).
    problems : list of Problem
        What stops it from running (empty when it can run).
    results : Results or None
        The outputs of the last run on layers.
    tables : dict of str to pandas.DataFrame
        Table outputs of the last runs, by layer-style name (``"nuclei: props"``).
    report : BatchReport or None
        What the last batch did.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = unwrap_viewer(napari_viewer)
        self.pipeline: Pipeline | None = None
        self.problems: list[Problem] = []
        self.path: Path | None = None
        self.loaded_sha: str | None = None
        self.edits: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.results: Any = None
        self.tables: dict[str, pd.DataFrame] = {}
        self.report: Any = None
        self._job: _Job | None = None
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._build()
        layers = self.viewer.layers.events
        for event in (layers.inserted, layers.removed, layers.reordered):
            event.connect(self._on_layers_changed)
        self._update_state()

    # --- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.file_edit = FileEdit(
            mode="r", filter=f"Pipeline files (*{PIPELINE_SUFFIX} *.yaml *.yml)", label="pipeline"
        )
        self.file_edit.changed.connect(self._on_file_changed)
        self.name_label = QLabel("No pipeline loaded.")
        wrap_label(self.name_label)
        self.problems_box = QPlainTextEdit()
        self.problems_box.setReadOnly(True)
        self.problems_box.setMaximumHeight(130)
        self.problems_box.setVisible(False)
        self.steps_view = PipelineStepsView()
        self.steps_view.param_edited.connect(self._on_param_edited)
        self.steps_view.param_refused.connect(self._on_param_refused)
        self.save_button = QPushButton("Save as...")
        self.save_button.setToolTip("Write the (edited) pipeline to a new file.")
        self.save_button.clicked.connect(self._on_save_clicked)

        # run on layers
        self.inputs_form = Container(labels=True)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the pipeline on the chosen layer(s).")
        self.run_button.clicked.connect(self._on_run_clicked)
        layer_tab = QWidget()
        lt = QVBoxLayout(layer_tab)
        lt.addWidget(self.inputs_form.native)
        lt.addWidget(self.run_button)
        lt.addStretch(1)

        # batch
        self.batch_inputs = QPlainTextEdit()
        self.batch_inputs.setPlaceholderText(
            "Images to run on, one per line: folders, TIFF files, OME-Zarr paths or URLs, "
            "globs (data/*.tif)"
        )
        self.batch_inputs.setMaximumHeight(110)
        self.add_folder_button = QPushButton("Add folder...")
        self.add_folder_button.clicked.connect(self._on_add_folder)
        self.add_files_button = QPushButton("Add files...")
        self.add_files_button.clicked.connect(self._on_add_files)
        self.outdir_edit = FileEdit(mode="d", label="output folder")
        self.workers = SpinBox(
            value=1,
            min=1,
            max=64,
            label="workers",
            tooltip="1: one image after the other in napari; more: a local dask cluster.",
        )
        self.scheduler = LineEdit(
            label="dask scheduler",
            tooltip="Address of a running dask scheduler (tcp://host:8786); empty: this computer.",
        )
        self.batch_form = Container(widgets=[self.outdir_edit, self.workers, self.scheduler])
        self.batch_button = QPushButton("Run batch")
        self.batch_button.clicked.connect(self._on_batch_clicked)
        batch_tab = QWidget()
        bt = QVBoxLayout(batch_tab)
        bt.addWidget(self.batch_inputs)
        row = QHBoxLayout()
        row.addWidget(self.add_folder_button)
        row.addWidget(self.add_files_button)
        bt.addLayout(row)
        bt.addWidget(self.batch_form.native)
        bt.addWidget(self.batch_button)
        bt.addStretch(1)

        self.tabs = QTabWidget()
        self.tabs.addTab(layer_tab, "Image layer")
        self.tabs.addTab(batch_tab, "Batch")

        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.status = MessageLine()
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setMaximumHeight(120)
        self.summary.setVisible(False)
        self.table_choice = ComboBox(label="table", choices=self._table_choices)
        self.table_choice.changed.connect(self._on_table_chosen)
        self.table_view = TableView()
        self.table_box = QWidget()
        tb = QVBoxLayout(self.table_box)
        tb.setContentsMargins(0, 0, 0, 0)
        tb.addWidget(self.table_choice.native)
        tb.addWidget(self.table_view)
        self.table_box.setVisible(False)

        layout = _scrolled_layout(self)
        layout.addWidget(self.file_edit.native)
        layout.addWidget(self.name_label)
        layout.addWidget(self.problems_box)
        layout.addWidget(self.steps_view)
        layout.addWidget(self.save_button)
        layout.addWidget(self.tabs)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress_bar, 1)
        bottom.addWidget(self.cancel_button)
        layout.addLayout(bottom)
        layout.addWidget(self.status.native)
        layout.addWidget(self.summary)
        layout.addWidget(self.table_box)

    # --- state --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a run or a batch is in flight."""
        return self._job is not None

    @property
    def can_run(self) -> bool:
        """True when a pipeline without problems is loaded and nothing is running."""
        return self.pipeline is not None and not self.problems and not self.busy

    def _update_state(self) -> None:
        self.run_button.setEnabled(self.can_run)
        self.batch_button.setEnabled(self.can_run)
        self.save_button.setEnabled(self.pipeline is not None and not self.busy)
        self.cancel_button.setEnabled(self.busy)
        self.file_edit.enabled = not self.busy
        if self.problems:
            self.problems_box.setPlainText(_problem_lines(self.problems))
            self.problems_box.setVisible(True)
        else:
            self.problems_box.clear()
            self.problems_box.setVisible(False)
        p = self.pipeline
        if p is None:
            self.name_label.setText("No pipeline loaded.")
        else:
            edited = " (edited)" if self.edited else ""
            text = f"Pipeline {p.name!r}{edited}: {len(p.steps)} steps"
            if p.description:
                text += f" \u2014 {p.description}"
            self.name_label.setText(text)

    @property
    def edited(self) -> bool:
        """True when settings were changed here since the file was loaded."""
        return self.pipeline is not None and self.pipeline.sha256() != self.loaded_sha

    def _report(self, message: str, *, error: bool = False, warning: bool = False) -> None:
        self.status.value = message
        if error or warning:
            from napari.utils.notifications import show_error, show_warning

            (show_error if error else show_warning)(message)

    # --- loading and editing --------------------------------------------------------------
    def _on_file_changed(self, value: Any) -> None:
        if value is None or str(value) in ("", "."):
            return
        path = Path(value)
        if path.is_file():
            self.load(path)

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
        path = Path(path)
        problems: list[Problem] = []
        try:
            pipeline: Pipeline | None = Pipeline.load(path)
        except PipelineError as exc:
            problems = list(exc.problems)
            pipeline = _for_display(path)
        self.path = path
        self.pipeline = pipeline
        self.problems = problems
        self.loaded_sha = pipeline.sha256() if pipeline is not None else None
        self.edits = {}
        self.steps_view.set_pipeline(pipeline, problems)
        self._build_inputs()
        self._update_state()
        if problems:
            self._report(
                f"{path.name}: {len(problems)} problem(s); Run is disabled until they are fixed.",
                error=True,
            )
        else:
            self._report(f"Loaded {path.name}: valid.")
        return pipeline

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
        old = self.pipeline
        try:
            new = with_param(old, step_id, name, value)
        except PipelineEditError as exc:
            self.steps_view.revert(step_id, name)
            self._report(f"Not changed: {exc}", error=True)
            return False
        problems = new.problems()
        if not problems:
            new = new.validated()
        before = old.step(step_id).params.get(name)
        first = self.edits.get((step_id, name), (before, None))[0]
        self.edits[(step_id, name)] = (first, new.step(step_id).params.get(name))
        self.pipeline, self.problems = new, problems
        self.steps_view.set_pipeline(new, problems)
        self._update_state()
        self._report(f"Step {step_id!r}: {name} = {new.step(step_id).params.get(name)!r}")
        return True

    def _on_param_edited(self, step_id: str, name: str, value: Any) -> None:
        self.set_param(step_id, name, value)

    def _on_param_refused(self, step_id: str, name: str, message: str) -> None:
        self._report(f"Not changed: step {step_id!r}: {message}", error=True)

    def pipeline_to_save(self) -> Pipeline:
        """Return the pipeline as it would be saved (edited: naming the original and the edits)."""
        if self.pipeline is None:
            raise PipelineEditError("no pipeline is loaded")
        if not self.edited:
            return self.pipeline
        from napari_fbias.pipeline.provenance import make_provenance

        author = self.pipeline.provenance.get("author")
        edits = [
            {"step": sid, "setting": name, "from": thaw(a), "to": thaw(b)}
            for (sid, name), (a, b) in self.edits.items()
            if a != b
        ]
        source = {
            "edited_from": {
                "file": self.path.name if self.path is not None else "",
                "sha256": self.loaded_sha,
            },
            "edits": edits,
        }
        return replace(self.pipeline, provenance=make_provenance(author=author, source=source))

    def save_as(self, path: str | Path, *, overwrite: bool = False) -> Path | None:
        """Write the (edited) pipeline to ``path`` atomically; return the path written.

        A name without ``.yaml`` gets ``.fbias.yaml``. The file the pipeline was
        loaded from is never overwritten, nor any file unless ``overwrite``.
        A pipeline with problems is not saved.
        """
        from napari_fbias.io.errors import OutputExistsError

        if self.pipeline is None:
            self._report("Load a pipeline first.", error=True)
            return None
        if self.problems:
            self._report("Not saved: fix the pipeline's problems first.", error=True)
            return None
        p = Path(path)
        if not p.name.lower().endswith((".yaml", ".yml")):
            p = p.with_name(p.name + PIPELINE_SUFFIX)
        if self.path is not None and p.resolve() == self.path.resolve():
            self._report(
                f"Not saved: {p.name} is the pipeline you loaded; it is kept as delivered. "
                "Choose another name.",
                error=True,
            )
            return None
        try:
            written = self.pipeline_to_save().dump(p, overwrite=overwrite)
        except (OutputExistsError, OSError) as exc:
            self._report(f"Not saved: {exc}", error=True)
            return None
        self._report(f"Saved {written}")
        return written

    def _on_save_clicked(self) -> None:
        start = str(self.path.parent) if self.path is not None else ""
        name, _ = QFileDialog.getSaveFileName(
            self, "Save pipeline as", start, f"Pipeline files (*{PIPELINE_SUFFIX})"
        )
        if name:  # the dialog asked before replacing an existing file
            self.save_as(name, overwrite=True)

    # --- inputs (layers) ------------------------------------------------------------------
    def _build_inputs(self) -> None:
        self.inputs_form.clear()
        if self.pipeline is None:
            return
        for name, decl in self.pipeline.inputs.items():
            picker = ComboBox(
                name=f"layer_{name}",
                label=f"{name} ({decl.kind})",
                choices=partial(layer_choices, self.viewer, decl.kind),
                tooltip=f"The {decl.kind} layer for input {name!r} of the pipeline.",
            )
            axes = LineEdit(
                name=f"axes_{name}",
                label="axes",
                tooltip="Axes of the layer, one letter per dimension (t, c, z, y, x). Empty: "
                "as recorded by the reader, else guessed.",
            )
            problem = Label(name=f"problem_{name}", label="", value="")
            wrap_label(problem.native)
            problem.visible = False
            picker.changed.connect(self._on_layer_picked)
            axes.changed.connect(self._on_layer_picked)
            self.inputs_form.extend([picker, axes, problem])
        self.inputs_form.reset_choices()
        narrow_choices(self.inputs_form)
        self._on_layer_picked()

    def _on_layers_changed(self, event: Any = None) -> None:
        try:
            self.inputs_form.reset_choices()
            self._on_layer_picked()
        except RuntimeError:  # the panel's widgets are gone
            return

    def _on_layer_picked(self, *args: Any) -> None:
        if self.pipeline is None:
            return
        for name in self.pipeline.inputs:
            layer = self.inputs_form[f"layer_{name}"].value
            field_ = self.inputs_form[f"axes_{name}"]
            try:
                shown = layer_axes(layer) if layer is not None else ""
            except LayerAxesError:
                shown = ""
            field_.native.setPlaceholderText(shown)
            self.axes_problem(name, layer)

    def axes_problem(self, name: str, layer: Any = None) -> str | None:
        """Check the axes typed for input ``name``; show what is wrong under the field.

        Returns
        -------
        str or None
            The problem, or None when the field is empty or the axes fit the layer.
        """
        layer = self.inputs_form[f"layer_{name}"].value if layer is None else layer
        typed = str(self.inputs_form[f"axes_{name}"].value).strip()
        problem = None
        if typed and layer is not None:
            try:
                fit_axes(layer, typed)
            except LayerAxesError as exc:
                problem = str(exc)
        label = self.inputs_form[f"problem_{name}"]
        label.value = problem or ""
        label.visible = bool(problem)
        return problem

    def chosen_layers(self) -> dict[str, Any]:
        """Input name -> the layer chosen for it (None when none)."""
        if self.pipeline is None:
            return {}
        return {n: self.inputs_form[f"layer_{n}"].value for n in self.pipeline.inputs}

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
        if not self.can_run:
            self._report(self._why_not(), error=True)
            return None
        pipeline = self.pipeline
        assert pipeline is not None
        names = list(pipeline.inputs)
        chosen = self._resolve_layers(layers, names)
        axes_of = self._resolve_axes(axes, names)
        missing = [n for n in names if chosen.get(n) is None]
        if missing:
            self._report(f"Choose a layer for input(s) {', '.join(missing)}.", error=True)
            return None
        for name in axes_of:  # typos in an axes field: said under the field, no notification
            try:
                fit_axes(chosen[name], axes_of[name])
            except LayerAxesError as exc:
                if axes is None:
                    self.axes_problem(name, chosen[name])
                self._report(f"Not run: {exc}")
                return None
        inputs: dict[str, Any] = {}
        try:
            for name in names:
                inputs[name] = layer_input(
                    chosen[name], pipeline.inputs[name].kind, self.viewer.layers, axes_of.get(name)
                )
        except (LayerAxesError, ValueError) as exc:
            self._report(f"Not run: {exc}", error=True)
            return None
        first = chosen[names[0]]
        job = _Job("layers", pipeline, threading.Event(), len(pipeline.steps))
        job.like = first
        job.notes = [n for n in (lost_pixel_size(chosen[name]) for name in names) if n]
        worker = self._start(
            job,
            pipeline_job,
            pipeline,
            inputs,
            _Progress(self._relay, job.cancel),
            desc=f"Running {pipeline.name}",
        )
        if job.notes:
            from napari.utils.notifications import show_warning

            for note in job.notes:
                show_warning(note)
        return worker

    def _on_run_clicked(self) -> None:
        self.run()

    def _on_batch_clicked(self) -> None:
        self.run_batch()

    def _resolve_layers(self, layers: Any, names: list[str]) -> dict[str, Any]:
        if layers is None:
            chosen = self.chosen_layers()
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

    def _resolve_axes(self, axes: Any, names: list[str]) -> dict[str, str]:
        if axes is None:
            typed = {n: str(self.inputs_form[f"axes_{n}"].value).strip() for n in names}
            return {n: a for n, a in typed.items() if a}
        if isinstance(axes, str):
            return {names[0]: axes} if axes else {}
        return {n: a for n, a in axes.items() if a}

    def _why_not(self) -> str:
        if self.busy:
            return "A run is in progress; wait for it or cancel it."
        if self.pipeline is None:
            return "Load a pipeline file first."
        return "The pipeline has problems; fix them first (see the list)."

    def _show_results(self, job: _Job, results: Any) -> None:
        self.results = results
        pipeline = job.pipeline
        like = job.like
        meta = {"pipeline": pipeline.name, "sha256": pipeline.sha256()}
        shown: dict[str, Any] = {}
        tables: list[str] = []
        for out in results:
            value = results.value(out)
            name = output_layer_name(pipeline.name, out)
            metadata = {META_KEY: {**meta, "output": out}}
            made = value_layer_data(value, name, metadata, like)
            if made is None:
                tables.append(out)
                continue
            shown[out] = self._put_layer(*made)
        for out in tables:
            df = results[out]
            name = output_layer_name(pipeline.name, out)
            self.tables[name] = df
            target = self._measured_layer(results, out, shown)
            features = _features(df)
            if target is not None and features is not None:
                target.features = features
        self.table_choice.reset_choices()
        if tables:
            self.table_choice.value = output_layer_name(pipeline.name, tables[0])
            self._on_table_chosen()
        self.table_box.setVisible(bool(self.tables))
        made_names = ", ".join(output_layer_name(pipeline.name, o) for o in results)
        self._report("\n".join([f"Done: {made_names}", *(f"Note: {n}" for n in job.notes)]))

    def _measured_layer(self, results: Any, out: str, shown: Mapping[str, Any]) -> Any:
        """Return the layer showing the labels a table output measured (None if not shown)."""
        fed = results.feeds.get(out, {})
        labels = next((v for v in fed.values() if v.kind == "labels"), None)
        if labels is None:
            return None
        for other, layer in shown.items():
            if results.value(other) is labels:
                return layer
        return None

    def _put_layer(self, data: Any, kwargs: dict[str, Any], ltype: str) -> Any:
        """Add a result layer, or put the new result into the layer of the previous run."""
        from napari_fbias._qt.workspace import _update_layer

        layers = self.viewer.layers
        name = kwargs["name"]
        existing = layers[name] if name in layers else None
        if existing is not None and type(existing).__name__.lower() == ltype:
            try:
                _update_layer(existing, data, kwargs)
                return existing
            except (ValueError, TypeError, IndexError):  # napari refused an in-place update
                pass
        if existing is not None:
            layers.remove(existing)
        return getattr(self.viewer, f"add_{ltype}")(data, **kwargs)

    def _table_choices(self, widget: Any = None) -> list[str]:
        return list(self.tables)

    def _on_table_chosen(self, *args: Any) -> None:
        name = self.table_choice.value
        if name in self.tables:
            self.table_view.set_table(self.tables[name], name)

    # --- batch ----------------------------------------------------------------------------
    def batch_input_list(self) -> list[str]:
        """Return the images typed or added for the batch, one per line."""
        return [s.strip() for s in self.batch_inputs.toPlainText().splitlines() if s.strip()]

    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.batch_inputs.appendPlainText(folder)

    def _on_add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add images", "", "Images (*.tif *.tiff *.zarr);;All files (*)"
        )
        for f in files:
            self.batch_inputs.appendPlainText(f)

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
        from napari_fbias.pipeline.inputs import check_outdir, expand_inputs

        if not self.can_run:
            self._report(self._why_not(), error=True)
            return None
        pipeline = self.pipeline
        assert pipeline is not None
        inputs = list(inputs) if inputs is not None else self.batch_input_list()
        if outdir is None:
            value = self.outdir_edit.value
            outdir = str(value) if value is not None and str(value) not in ("", ".") else None
        if not inputs:
            self._report("Add the images to run on (folders, files or URLs).", error=True)
            return None
        if not outdir:
            self._report("Choose an output folder for the results.", error=True)
            return None
        if len(pipeline.inputs) != 1:
            self._report(
                f"A batch feeds one image to each run, but pipeline {pipeline.name!r} has "
                f"{len(pipeline.inputs)} inputs ({', '.join(pipeline.inputs)}).",
                error=True,
            )
            return None
        try:
            items = expand_inputs(inputs)
            out = check_outdir(outdir, items)
        except BatchError as exc:
            self._report(f"Batch not started: {exc}", error=True)
            return None
        n_workers = int(self.workers.value if workers is None else workers)
        address = (self.scheduler.value if scheduler is None else scheduler).strip()
        options: dict[str, Any] = {}
        if address:
            options["scheduler"] = address
        elif n_workers > 1:
            options.update(scheduler="local", n_workers=n_workers)
        job = _Job("batch", pipeline, threading.Event(), len(items), outdir=str(out))
        return self._start(
            job,
            batch_job,
            pipeline,
            inputs,
            str(out),
            _Progress(self._relay, job.cancel),
            options,
            desc=f"Batch {pipeline.name}",
        )

    def _show_report(self, job: _Job, report: Any) -> None:
        self.report = report
        lines = [f"{report.summary()} \u2192 {report.outdir}"]
        for item in report.items:
            if item.status == "failed":
                lines.append(f"\u2022 {item.stem}: failed: {item.message}")
        text = "\n".join(lines)
        self.summary.setPlainText(text)
        self.summary.setVisible(True)
        if report.ok:
            self._report(lines[0])
            from napari.utils.notifications import show_info

            show_info(f"Batch {job.pipeline.name!r}: {lines[0]}")
        else:
            self._report(text, warning=True)

    # --- workers --------------------------------------------------------------------------
    def _start(self, job: _Job, func: Any, *args: Any, desc: str) -> Any:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        connect = {  # our own "errored" handler: napari does not re-raise in the GUI thread
            "returned": partial(self._on_returned, job),
            "errored": partial(self._on_errored, job),
            "finished": partial(self._on_finished, job),
        }
        worker = create_worker(func, *args, _start_thread=False, _connect=connect)
        job.worker = worker
        job.bar = progress(total=job.total, desc=desc)
        self._job = job
        self.progress_bar.setRange(0, max(job.total, 1))
        self.progress_bar.setValue(0)
        self.summary.setVisible(False)
        self._update_state()
        self._report(f"{desc}...")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the run in flight (a run before its next step, a batch after the current image)."""
        job = self._job
        if job is None:
            return
        job.cancel.set()
        self.cancel_button.setEnabled(False)
        when = "after the current image" if job.kind == "batch" else "before the next step"
        self._report(f"Cancelling {when}...")

    def _on_progress(self, done: int, total: int, what: str) -> None:
        job = self._job
        if job is None:
            return
        if job.kind == "batch":
            if what:
                job.seen.append(what)
            text = f"{done}/{total} images (last: {what})" if what else f"{done}/{total} images"
        else:
            text = f"step {done + 1}/{total}: {what}" if what else "writing results"
        job.total = total
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.status.value = text
        bar = job.bar  # napari may process events (and finish the job) while it redraws
        if bar is not None and not bar.disable:
            bar.total = total
            bar.update(done - bar.n)
            bar.set_description(text)

    def _on_returned(self, job: _Job, result: Any) -> None:
        try:
            if job.kind == "batch":
                self._show_report(job, result)
            else:
                self._show_results(job, result)
        except RuntimeError:  # the panel or the viewer is gone
            return

    def _on_errored(self, job: _Job, exc: BaseException) -> None:
        name = job.pipeline.name
        if isinstance(exc, RunCancelled):
            if job.kind == "batch":
                text = (
                    f"Batch {name!r} cancelled after {len(job.seen)} of {job.total} images. "
                    f"Results of finished images are in {job.outdir}; run again to finish "
                    "(finished images are skipped)."
                )
                self.summary.setPlainText(text)
                self.summary.setVisible(True)
            else:
                text = f"Run of {name!r} cancelled; no layer was changed."
            self._report(text)
            return
        if isinstance(exc, (PipelineError, BatchError, FbiasIOError, ValueError)):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        what = "Batch" if job.kind == "batch" else "Run of"
        self._report(f"{what} {name!r} failed: {message}", error=True)

    def _on_finished(self, job: _Job) -> None:
        if job.bar is not None:
            job.bar.close()
            job.bar = None
        if self._job is job:
            self._job = None
        try:
            self._update_state()
        except RuntimeError:  # the panel is gone
            return
