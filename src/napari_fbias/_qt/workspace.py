"""The napari workspace: one per viewer, it runs operations and records them.

Every widget runs its operation through :meth:`Workspace.run_op`, which

1. reads the picked layers as the pipeline runner would (same axes, pixel
   size, selected time point / channel / plane: :mod:`.layer_data`);
2. computes the op off the GUI thread with the runner's own single-step
   function :func:`napari_fbias.pipeline.runner.compute_step` (so a recorded
   approach re-run headless gives the same result, bit for bit);
3. on success records the step in the running session
   (:class:`~napari_fbias.session.recorder.SessionRecorder`, started on
   demand) and shows the result as a layer named after the approach
   (``"A: nuclei"``); re-running onto that layer replaces the step;
4. on failure shows the op's message as a napari notification and records
   nothing.

Deleting a result layer tells the recorder (``layer_removed``; closing the
viewer does not: the record keeps its steps); renaming a layer too. Closing
the viewer closes its recorder (the session stays on disk, and another
viewer can reopen it). The recorder never holds a widget; widgets listen to
:attr:`Workspace.events`.

An image that enters the session gets its pixel checksum (``sha256:``)
recorded, computed in a worker thread. Reopening a session
(:meth:`Workspace.open_session`) reads it, opens its images and recomputes
its results in a worker (:mod:`.session_restore`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from psygnal import Signal, SignalGroup

from napari_fbias._qt.layer_axes import (
    LayerAxesError,
    image_ref,
    layer_axes,
    layer_kind,
    set_layer_axes,
    shown_extra,
    step_info,
    unwrap,
)
from napari_fbias._qt.layer_data import layer_value, value_layer_data
from napari_fbias._qt.layer_kinds import input_layer_types
from napari_fbias._qt.result_layers import attach_table, put_layer
from napari_fbias._qt.viewer_close import watch_close
from napari_fbias._qt.workers import start_worker
from napari_fbias.ops.registry import OpSpec, get_op
from napari_fbias.pipeline.apply import compute_step
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.model import Step
from napari_fbias.pipeline.values import Value
from napari_fbias.session import checksums
from napari_fbias.session.checks import check_params
from napari_fbias.session.errors import InvalidStepError, SessionError
from napari_fbias.session.model import ImageRef, RecordedStep, Session, StepInput
from napari_fbias.session.recorder import SessionRecorder
from napari_fbias.session.restore import image_layers

__all__ = [
    "OUTPUT_NAMES",
    "RunJob",
    "Workspace",
    "WorkspaceError",
    "WorkspaceEvents",
    "compute_step",
    "get_workspace",
]

#: Short result names (layer ``"<approach>: <name>"``) for ops whose last word is unclear.
OUTPUT_NAMES: dict[str, str] = {
    "cellpose.segment": "cellpose",
    "track.track_spots": "tracks",
    "track.track_labels": "label tracks",
    "track.locate_spots": "spots",
    "track.link_spots": "tracks",
    "measure.regionprops": "measurements",
}
_SELECT_AXES = ("t", "c", "z")


class WorkspaceError(ValueError):
    """A run that cannot start: a missing layer, unfitting axes or settings."""


class WorkspaceEvents(SignalGroup):
    """Signals of a :class:`Workspace` (psygnal)."""

    #: a session was started or reopened: the new recorder
    session_changed = Signal(object)
    #: a run succeeded and was recorded: the step id
    step_recorded = Signal(str)
    #: a run failed (or could not start): the message shown to the analyst
    step_failed = Signal(str)
    #: load a recorded step's settings into the widgets (a ``SettingsRequest``)
    settings_requested = Signal(object)


@dataclass(eq=False)
class RunJob:
    """One run of an op from the workspace; also ``worker.fbias_job``.

    ``step_id`` and ``output_layer`` are set once the result is recorded,
    ``error`` when it failed; ``cancelled`` when the analyst cancelled it.
    """

    op: str
    params: dict[str, Any]
    inputs: dict[str, str]
    refs: dict[str, tuple[ImageRef, dict[str, int]]]
    select: dict[str, dict[str, int]]
    output_name: str | None = None
    new_result: bool = False
    replaces: str | None = None
    like: Any = None
    #: Data parameter -> index read along its layer's extra axes (the sliders).
    extra: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The index along extra axes the result is of (its inputs' or their steps').
    index: dict[str, int] = field(default_factory=dict)
    worker: Any = None
    cancelled: bool = False
    done: bool = False
    step_id: str | None = None
    output_layer: str | None = None
    error: str | None = None
    value: Value | None = field(default=None, repr=False)


_WORKSPACES: weakref.WeakKeyDictionary[Any, Workspace] = weakref.WeakKeyDictionary()


def get_workspace(viewer: Any) -> Workspace:
    """Return the workspace of ``viewer`` (created on first use; one per viewer)."""
    viewer = unwrap(viewer)
    ws = _WORKSPACES.get(viewer)
    if ws is None:
        ws = Workspace(viewer)
        _WORKSPACES[viewer] = ws
    return ws


def _viewer_closed(ref: weakref.ref[Workspace]) -> None:
    ws = ref()
    if ws is not None:
        ws.viewer_closed()


def _same_recipe(a: RecordedStep, b: RecordedStep) -> bool:
    """Tell whether two versions of a step compute the same thing (op, settings, what it reads)."""

    def recipe(st: RecordedStep) -> tuple[Any, ...]:
        reads = {k: (i.image, i.step, dict(i.select)) for k, i in st.inputs.items()}
        return st.op, dict(st.params), reads

    return recipe(a) == recipe(b)


def _message(exc: BaseException) -> str:
    if isinstance(exc, StepError):
        return exc.reason
    if isinstance(exc, ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Workspace:
    """The running session of one napari viewer and the operations applied in it.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (held weakly).

    Attributes
    ----------
    recorder : SessionRecorder or None
        The running session; None until one is started.
    events : WorkspaceEvents
        ``session_changed(recorder)``, ``step_recorded(step_id)``,
        ``step_failed(message)``, ``settings_requested(request)``.
    tables : dict of str to pandas.DataFrame
        Table results (measurements) by their output name.
    closed : bool
        True once the viewer's window has closed (its recorder is closed then).
    """

    def __init__(self, viewer: Any) -> None:
        self._viewer = weakref.ref(viewer)
        self.recorder: SessionRecorder | None = None
        self.events = WorkspaceEvents()
        self.tables: dict[str, pd.DataFrame] = {}
        self._outputs: dict[str, Value] = {}
        self._jobs: list[RunJob] = []
        self._names: dict[int, str] = {}
        self._quiet: set[str] = set()
        self._removed: list[str] = []
        self._recent: list[str] = []
        self._checksums: dict[str, Any] = {}  # image source -> checksum worker in flight
        self._reopen: Any = None  # the latest ReopenJob
        self.closed = False
        viewer.layers.events.inserted.connect(self._on_layer_inserted)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        for layer in viewer.layers:
            self._watch(layer)
        # kept alive by the window; holds this workspace weakly (a reference to the watch
        # here would keep the window, hence the viewer, alive)
        watch_close(viewer, partial(_viewer_closed, weakref.ref(self)))

    @property
    def viewer(self) -> Any:
        """The napari viewer (None once it is gone)."""
        return self._viewer()

    @property
    def busy(self) -> bool:
        """True while a run, a reopen or a checksum is in flight."""
        return any(not j.done for j in self._jobs) or bool(self._checksums) or self.reopening

    @property
    def reopening(self) -> bool:
        """True while a session is being reopened (read, images opened, results recomputed)."""
        return self._reopen is not None and not self._reopen.done

    # --- sessions ----------------------------------------------------------------------
    def start_session(
        self,
        *,
        title: str = "",
        user: str = "",
        lab: str = "",
        question: str = "",
        analysts: tuple[str, ...] | list[str] = (),
        folder: str | Path | None = None,
        space: str | None = None,
    ) -> SessionRecorder:
        """Start a new session (the previous one stays on disk as it is).

        ``space`` is where it lives (a shared folder or an object-store URL)
        so that other analysts can join it; default: this computer.
        """
        rec = SessionRecorder.start(
            title,
            user_name=user,
            user_lab=lab,
            question=question,
            analysts=tuple(analysts),
            folder=folder,
            space=space,
        )
        self._set_recorder(rec)
        return rec

    def open_session(
        self,
        path: str | Path,
        *,
        analysts: tuple[str, ...] | list[str] = (),
        progress: Callable[[str], Any] | None = None,
    ) -> Any:
        """Reopen (or join) a session in a worker thread and bring its work back.

        The journals are read, the images opened from their sources and every
        approach's recorded steps recomputed off the GUI thread
        (:mod:`.session_restore`); the session starts recording here as soon
        as it is read, then its images and result layers appear. Images or
        approaches that cannot be brought back are reported with a warning
        notification; the session is reopened all the same.

        Parameters
        ----------
        path : str or Path
            The session link (folder path or URL).
        analysts : sequence of str
            Analysts present (added to the record).
        progress : callable, optional
            Called with a line of text on the GUI thread as the work goes on.

        Returns
        -------
        napari.qt.threading.FunctionWorker
            Already started; ``worker.fbias_job`` is its
            :class:`~napari_fbias._qt.session_restore.ReopenJob` (``recorder``,
            ``problems``, ``error``, ``done``).
        """
        from napari_fbias._qt.session_restore import start_reopen

        worker = start_reopen(self, path, analysts, progress)
        self._reopen = worker.fbias_job
        return worker

    def adopt_recorder(self, rec: SessionRecorder, job: Any) -> bool:
        """Record into ``rec``, which reopen ``job`` opened; False when the job was overtaken."""
        if self.closed or job is not self._reopen:
            return False
        job.recorder = rec
        self._set_recorder(rec)
        return True

    def reopen_done(self, job: Any) -> None:
        """Forget a finished reopen job."""
        if job is self._reopen:
            self._reopen = None

    def ensure_session(self) -> SessionRecorder:
        """Return the running session, starting an untitled one with approach ``A`` if needed."""
        rec = self.recorder if self.recorder is not None else self.start_session()
        if rec.active is None:
            rec.add_approach()
        return rec

    def close_session(self) -> None:
        """Stop recording (the session stays on disk; it can be reopened)."""
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
            self._outputs.clear()
            self.tables.clear()
            self.events.session_changed.emit(None)

    def viewer_closed(self) -> None:
        """Stop recording because the viewer's window closed (the session stays on disk)."""
        self.closed = True
        if self._reopen is not None:
            self._reopen.cancelled = True
        self.close_session()

    def _set_recorder(self, rec: SessionRecorder) -> None:
        old = self.recorder
        if old is not None and old is not rec:
            old.close()
        if self._reopen is not None and self._reopen.recorder is not rec:
            self._reopen.cancelled = True  # another session replaces the one being reopened
        self.recorder = rec
        self._outputs.clear()
        self.tables.clear()
        rec.start_live()  # other analysts' work appears within a second or two
        self.events.session_changed.emit(rec)

    def add_image_layers(self, ref: ImageRef, image: Any) -> list[str]:
        """Show a reopened image as the layers the session recorded for it; return their names.

        Nothing is added when those layers are shown already (a channel layer
        of the image included).
        """
        from napari.utils.notifications import show_warning

        from napari_fbias._layers import image_to_layer_data

        viewer = self.viewer
        wanted = image_layers(ref)
        if viewer is None or all(name in viewer.layers for name in wanted):
            return []
        data, kwargs, ltype = image_to_layer_data(image)[0]
        kwargs = dict(kwargs)
        if "channel_axis" in kwargs:
            names = list(kwargs["name"])
            for name, sel in wanted.items():
                if "c" in sel and sel["c"] < len(names):
                    names[sel["c"]] = name
            if any(n in viewer.layers for n in names):
                return []
            kwargs["name"] = names
        else:
            kwargs["name"] = next(iter(wanted))
        try:
            out = getattr(viewer, f"add_{ltype}")(data, **kwargs)
        except Exception as exc:  # pixels unreadable (corrupt chunk, server gone)
            show_warning(f"could not show image {ref.name!r} from {ref.source}: {exc}")
            return []
        return [layer.name for layer in (out if isinstance(out, list) else [out])]

    # --- running ops --------------------------------------------------------------------
    def output_name(
        self, op: str, *, new_result: bool = False, extra: Mapping[str, int] | None = None
    ) -> str:
        """Layer name for the result of ``op`` in the active approach (``"A: nuclei"``).

        With ``new_result``, or when a layer of that name shows something else
        than an earlier result of ``op``, a name no layer or result has yet
        (``"A: nuclei (2)"``). A result of one index along extra axes says
        which (``extra={"angle": 2}``: ``"A: nuclei (angle 2)"``).
        """
        rec = self.recorder
        key = rec.session.active if rec is not None and rec.session.active else "A"
        base = f"{key}: {OUTPUT_NAMES.get(op, op.rsplit('.', 1)[-1].replace('_', ' '))}"
        if extra:
            base += f" ({', '.join(f'{k} {v}' for k, v in extra.items())})"
        if not new_result:
            layer = self._layer(base)
            info = step_info(layer) if layer is not None else None
            if layer is None or (info is not None and info.get("op") == op):
                return base  # new, or the result of an earlier run to replace
        taken = {layer.name for layer in self.viewer.layers} | set(self.tables)
        if rec is not None:
            taken |= {s.output_layer for _, s in rec.session.all_steps() if s.output_layer}
        name, n = base, 2
        while name in taken:
            name, n = f"{base} ({n})", n + 1
        return name

    def run_op(
        self,
        op_name: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        axes: str | Mapping[str, str] | None = None,
        select: Mapping[str, Mapping[str, int]] | None = None,
        output_name: str | None = None,
        new_result: bool = False,
        replaces: str | None = None,
        connect: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Any:
        """Run ``op_name`` in a worker thread; record it and show its result when it succeeds.

        Parameters
        ----------
        op_name : str
            Registry name (``"segment.nuclei"``).
        inputs : mapping
            The op's data parameter -> napari layer (or layer name).
        params : mapping
            Settings; missing ones take the op's defaults.
        axes : str or mapping, optional
            Corrected axes of the first input's layer (a str), or per data
            parameter; stored in the layer's metadata.
        select : mapping, optional
            Data parameter -> index along ``t``/``c``/``z`` to use
            (``{"image": {"t": 3}}``); that axis is dropped.
        output_name : str, optional
            Name of the result layer; default :meth:`output_name`. A layer of
            that name made by the same op in the active approach is replaced.
        new_result : bool
            Keep earlier results: the result gets a new layer name.
        replaces : str, optional
            Id of the step this run replaces.
        connect : mapping, optional
            Worker signal name (``"returned"``, ``"errored"``, ``"finished"``)
            -> callback, connected before the worker starts and after the
            workspace's own handlers (so ``worker.fbias_job`` is complete).

        Returns
        -------
        napari.qt.threading.FunctionWorker
            Already started; ``worker.fbias_job`` is its :class:`RunJob`.

        Raises
        ------
        WorkspaceError
            (also shown as a notification) when the run cannot start.
        """
        try:
            spec, step, values, job = self._prepare(
                op_name, inputs, params, axes, select, output_name, new_result, replaces
            )
        except (ValueError, KeyError) as exc:
            msg = str(exc) if isinstance(exc, ValueError) else str(exc.args[0])
            self._report(msg)
            raise WorkspaceError(msg) from exc
        self._jobs.append(job)
        worker = start_worker(
            compute_step,
            spec,
            step,
            values,
            desc=spec.title,
            returned=partial(self._on_returned, job),
            errored=partial(self._on_errored, job),
            finished=partial(self._on_finished, job),
            connect=connect,
        )
        # the callbacks run from the event loop, after these lines
        worker.fbias_job = job
        job.worker = worker
        return worker

    def cancel(self, worker: Any) -> None:
        """Cancel a run: its result, when it comes, is discarded and nothing is recorded."""
        job: RunJob | None = getattr(worker, "fbias_job", None)
        if job is not None:
            job.cancelled = True
        worker.quit()

    def _prepare(
        self,
        op_name: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        axes: str | Mapping[str, str] | None,
        select: Mapping[str, Mapping[str, int]] | None,
        output_name: str | None,
        new_result: bool,
        replaces: str | None,
    ) -> tuple[OpSpec, Step, list[Value | None], RunJob]:
        spec = get_op(op_name)
        declared = [i.name for i in spec.inputs]
        unknown = sorted(set(inputs) - set(declared))
        if unknown:
            raise WorkspaceError(
                f"{spec.title}: unknown input(s) {', '.join(unknown)} "
                f"(inputs: {', '.join(declared)})"
            )
        try:
            clean = check_params(spec, params)
        except InvalidStepError as exc:  # "cannot record <op>: <problems>"
            raise WorkspaceError(f"{spec.title}: {str(exc).split(': ', 1)[-1]}") from None
        first = next((n for n in declared if inputs.get(n) is not None), None)
        if isinstance(axes, str) or axes is None:
            axes_of = {first: axes} if axes and first else {}
        else:
            axes_of = dict(axes)
        sel_of = {str(k): {str(a): int(i) for a, i in v.items()} for k, v in (select or {}).items()}
        for name, sel in sel_of.items():
            bad = [a for a in sel if a not in _SELECT_AXES]
            if bad or any(i < 0 for i in sel.values()):
                raise WorkspaceError(f"{spec.title}: cannot select {sel} of input {name!r}")
        values: list[Value | None] = []
        names: dict[str, str] = {}
        refs: dict[str, tuple[ImageRef, dict[str, int]]] = {}
        extra_of: dict[str, dict[str, int]] = {}
        index: dict[str, int] = {}
        like = None
        for inp in spec.inputs:
            layer = inputs.get(inp.name)
            if isinstance(layer, str):
                layer = self._layer(layer)
            if layer is None:
                if inp.required:
                    raise WorkspaceError(f"{spec.title}: choose a layer for {inp.name!r}")
                values.append(None)
                continue
            layer = unwrap(layer)
            kind = layer_kind(layer)
            if kind not in input_layer_types(inp.kind):
                article = "an" if kind[0] in "aeiou" else "a"
                raise WorkspaceError(
                    f"{spec.title}: input {inp.name!r} needs {inp.kind} data; layer "
                    f"{layer.name!r} is {article} {kind} layer"
                )
            try:
                ax = axes_of.get(inp.name)
                ax = set_layer_axes(layer, ax) if ax else layer_axes(layer)
                info = step_info(layer)
                cached = self._outputs.get(str(info["step_id"])) if info else None
                # the index the sliders show along extra axes (angle...), never a guess
                shown = shown_extra(layer, self.viewer.dims)
                values.append(
                    layer_value(
                        layer,
                        inp.kind,
                        axes=ax,
                        select=sel_of.get(inp.name),
                        cached=cached,
                        extra=shown,
                    )
                )
                refs[inp.name] = image_ref(layer, inp.kind, shown)
            except LayerAxesError as exc:
                raise WorkspaceError(f"{spec.title}: {exc}") from None
            names[inp.name] = layer.name
            if shown:
                extra_of[inp.name] = shown
            made = dict((info or {}).get("extra") or {})  # a result of one index (angle 2)
            for axis, i in {**made, **shown}.items():
                if index.setdefault(axis, i) != i:
                    raise WorkspaceError(
                        f"{spec.title}: the inputs are of different {axis}s ({index[axis]} and "
                        f"{i}, layer {layer.name!r}); move the {axis} slider to the index of "
                        "the result you use"
                    )
            if like is None and kind in ("image", "labels"):
                like = weakref.ref(layer)
        step = Step(id=op_name.rsplit(".", 1)[-1], op=op_name, params=clean)
        job = RunJob(
            op=op_name,
            params=clean,
            inputs=names,
            refs=refs,
            select={k: v for k, v in sel_of.items() if v and k in names},
            output_name=output_name,
            new_result=new_result,
            replaces=replaces,
            like=like,
            extra=extra_of,
            index=index,
        )
        self.ensure_session()
        return spec, step, values, job

    def _on_returned(self, job: RunJob, value: Value) -> None:
        if job.cancelled:
            return
        try:
            self._record(job, value)
        except (ValueError, KeyError) as exc:
            job.error = f"{get_op(job.op).title}: the result could not be recorded: {exc}"
            self._report(job.error)

    def _on_errored(self, job: RunJob, exc: BaseException) -> None:
        if job.cancelled:
            return
        job.error = f"{get_op(job.op).title} failed: {_message(exc)}"
        self._report(job.error)

    def _on_finished(self, job: RunJob) -> None:
        job.done = True
        # keep no finished worker alive (it holds the widgets' callbacks)
        self._jobs = [j for j in self._jobs if j is not job]

    def _report(self, message: str) -> None:
        from napari.utils.notifications import show_error

        show_error(message)
        self.events.step_failed.emit(message)

    def _record(self, job: RunJob, value: Value) -> None:
        rec = self.ensure_session()
        shown = job.index
        name = job.output_name
        if name is not None and name in self.viewer.layers:
            made = step_info(self.viewer.layers[name]) or {}
            if dict(made.get("extra") or {}) != shown:
                name = None  # a result of another index (angle...) is kept
        name = name or self.output_name(job.op, new_result=job.new_result, extra=shown)
        inputs: dict[str, Any] = dict(job.inputs)
        for param, layer_name in job.inputs.items():
            ref, sel = job.refs[param]
            if param in job.extra:
                # one index of the layer's extra axes: an image of its own (store[angle=2]),
                # which no layer shows alone
                image = rec.add_image(ref, layers={})
                self._checksum_later(rec, image)
                inputs[param] = StepInput(image=image, select=sel, layer=layer_name)
            elif rec.layer_source(layer_name) is None:
                self._checksum_later(rec, rec.add_image(ref, layers={layer_name: sel}))
        step_id = rec.record_step(
            job.op,
            job.params,
            inputs,
            name,
            replaces=job.replaces,
            select=job.select or None,
            chosen=value.chosen,
        )
        found = rec.session.find_step(step_id)
        key = found[0].key if found else rec.session.active
        meta = _result_meta(step_id, str(key), job.op, value, job.inputs)
        if shown:
            meta["fbias"]["extra"] = dict(shown)
        self._outputs[step_id] = value
        like = job.like() if job.like is not None else None
        if value.kind == "table":
            self.tables[name] = value.data
            self._attach_table(value.data, job.inputs.get("labels"))
        else:
            self._show(value, name, meta, like)
        job.step_id, job.output_layer, job.value = step_id, name, value
        self._recent = [n for n in self._recent if n != name] + [name]
        self.events.step_recorded.emit(step_id)

    def recent_results(self, kind: str) -> list[Any]:
        """Return the result layers of type ``kind`` (``"labels"``...), newest first.

        Results of this sitting in the order they were recorded, then other
        step outputs in the viewer (a reopened session) from the top of the
        layer list down.
        """
        layers = self.viewer.layers
        mine = [layers[n] for n in reversed(self._recent) if n in layers]
        rest = [ly for ly in reversed(layers) if step_info(ly) is not None and ly not in mine]
        return [ly for ly in mine + rest if layer_kind(ly) == kind]

    def show_approach_here(
        self, key: str, *, connect: Mapping[str, Callable[..., Any]] | None = None
    ) -> Any:
        """Recompute another analyst's approach here, in a worker, and show its results.

        The layers get the names the analyst's steps gave them, so steps
        recorded here on top of them read that analyst's steps. Returns the
        started worker (its ``errored`` signal carries a
        :class:`~napari_fbias.session.recompute.CannotRecomputeError` saying why);
        ``connect`` (worker signal name -> callback) is connected before it
        starts, after the workspace's own handler.
        """
        from napari_fbias.session.recompute import recompute_approach

        rec = self.recorder
        if rec is None:
            raise WorkspaceError("no session is running")
        session = rec.session
        approach = session.approach(key)
        return start_worker(
            recompute_approach,
            session,
            key,
            desc=f"approach {key} ({approach.analyst or 'analyst'})",
            returned=partial(self.show_step_values, session, key),
            connect=connect,
        )

    def show_step_values(
        self, session: Session, key: str, values: Mapping[str, Value]
    ) -> list[str]:
        """Show recomputed results of approach ``key`` as its steps' output layers; return them.

        ``values`` are the results of ``session``'s steps, by step id
        (:func:`~napari_fbias.session.recompute.recompute_approach`). A step
        the running session no longer records as it was computed (re-run or
        removed meanwhile) is left alone. Tables become the measured labels
        layer's features, as after a run.
        """
        current = self.recorder.session if self.recorder is not None else session
        shown = []
        for st in session.approach(key).steps:
            value = values.get(st.id)
            found = current.find_step(st.id)
            if value is None or found is None or not _same_recipe(found[1], st):
                continue
            name = found[1].output_layer
            if not name:
                continue
            inputs = {p: i.layer for p, i in st.inputs.items() if i.layer}
            self._outputs[st.id] = value
            if value.kind == "table":
                self.tables[name] = value.data
                self._attach_table(value.data, inputs.get("labels"))
            else:
                meta = _result_meta(st.id, key, st.op, value, inputs, recomputed=True)
                self._show(value, name, meta, self._like(session, inputs))
            shown.append(name)
        return shown

    def _like(self, session: Session, inputs: Mapping[str, str]) -> Any:
        """Return the layer whose grid a recomputed result takes: an input, else an image's."""
        for name in inputs.values():
            layer = self._layer(name)
            if layer is not None and layer_kind(layer) in ("image", "labels"):
                return layer
        return next(
            (self._layer(n) for img in session.images for n in img.layers if self._layer(n)),
            None,
        )

    # --- checksums ------------------------------------------------------------------------
    def _checksum_later(self, rec: SessionRecorder, name: str) -> None:
        """Record the pixel checksum of image ``name`` once a worker has computed it."""
        img = rec.session.image(name)
        if img is None or not img.source or img.checksum or img.source in self._checksums:
            return
        self._checksums[img.source] = start_worker(
            checksums.image_checksum,
            img.source,
            desc=f"checksum of {name}",
            returned=partial(self._checksummed, rec, name, img.source),
            finished=partial(self._checksums.pop, img.source, None),
        )

    def _checksummed(self, rec: SessionRecorder, name: str, source: str, checksum: str) -> None:
        img = rec.session.image(name) if rec is self.recorder else None
        if img is None or img.source != source or img.checksum:
            return  # another session, or the image changed meanwhile
        with contextlib.suppress(SessionError, ValueError, OSError):  # the record stays as it is
            rec.add_image(img, layers={}, checksum=checksum)

    def result(self, step_id: str) -> Value | None:
        """Return the value a recorded step produced in this sitting (None if unknown)."""
        return self._outputs.get(step_id)

    # --- layers ---------------------------------------------------------------------------
    def _layer(self, name: str) -> Any:
        layers = self.viewer.layers
        return layers[name] if name in layers else None

    def _show(self, value: Value, name: str, meta: Mapping[str, Any], like: Any) -> Any:
        out = value_layer_data(value, name, meta, like)
        if out is None:
            return None
        return put_layer(self.viewer, *out, remove=self._remove_quietly)

    def _remove_quietly(self, layer: Any) -> None:
        """Remove a layer that a result replaces (the recorder keeps the step)."""
        with self._quietly(layer.name):
            self.viewer.layers.remove(layer)

    def _attach_table(self, df: pd.DataFrame, name: str | None) -> None:
        """Give the measured labels layer ``name`` the table as features (one row per label)."""
        layer = self._layer(name) if name else None
        if layer is not None:
            attach_table(layer, df)

    @contextlib.contextmanager
    def _quietly(self, name: str) -> Iterator[None]:
        self._quiet.add(name)
        try:
            yield
        finally:
            self._quiet.discard(name)

    def _watch(self, layer: Any) -> None:
        self._names[id(layer)] = layer.name
        layer.events.name.connect(self._on_layer_renamed)

    def _on_layer_inserted(self, event: Any) -> None:
        self._watch(event.value)

    def _on_layer_removed(self, event: Any) -> None:
        from qtpy.QtCore import QTimer

        layer = event.value
        self._names.pop(id(layer), None)
        with contextlib.suppress(TypeError, ValueError):
            layer.events.name.disconnect(self._on_layer_renamed)
        if layer.name in self._quiet or self.recorder is None:
            return
        # Told to the recorder once control is back in the event loop: closing the
        # viewer removes every layer too, and that must not remove the steps.
        self._removed.append(layer.name)
        if len(self._removed) == 1:
            QTimer.singleShot(0, self._flush_removed)

    def _flush_removed(self) -> None:
        names, self._removed = self._removed, []
        if self.recorder is None or not self._viewer_open():
            return
        for name in names:
            for sid in self.recorder.layer_removed(name):
                self._outputs.pop(sid, None)

    def _viewer_open(self) -> bool:
        """Tell whether the viewer is still open (``Viewer.close`` removes all layers first)."""
        viewer = self.viewer
        if viewer is None:
            return False
        open_viewers = getattr(type(viewer), "_instances", None)
        return open_viewers is None or viewer in open_viewers

    def _on_layer_renamed(self, event: Any) -> None:
        layer = event.source
        old = self._names.get(id(layer))
        self._names[id(layer)] = layer.name
        if old is None or old == layer.name:
            return
        for other in self.viewer.layers:  # results remember the layers they were made from
            made_from = (step_info(other) or {}).get("inputs")
            if isinstance(made_from, dict):
                made_from.update({k: layer.name for k, v in made_from.items() if v == old})
        self._recent = [layer.name if n == old else n for n in self._recent]
        if self.recorder is not None:
            self.recorder.rename_layer(old, layer.name)


def _result_meta(
    step_id: str,
    approach: str,
    op: str,
    value: Value,
    inputs: Mapping[str, str],
    **extra: Any,
) -> dict[str, Any]:
    """Return the ``metadata`` of a result layer: which step made it, its axes and pixel size."""
    info = {
        "step_id": step_id,
        "approach": approach,
        "op": op,
        "axes": value.axes,
        "spacing": [float(s) for s in value.spacing] if value.spacing else None,
        "inputs": dict(inputs),
        **extra,
    }
    return {"fbias": info}
