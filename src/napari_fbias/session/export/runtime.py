"""Run a pipeline one explicit call per step: what the exported scripts and notebooks use.

A delivered ``run_pipeline.py`` reads like a plain analysis script::

    run = StepRunner("nuclei-classical", "3f2a...")
    image = run.open_input(source, "image", kind="image", channel=0)
    nuclei_labels = run.step("nuclei", nuclei, image, smoothing_sigma=1.5, ...)
    results = run.results({"nuclei": nuclei_labels})
    write_outputs(results, "results", "my_image")

:meth:`StepRunner.step` checks the settings as a pipeline file's are checked
(:func:`napari_fbias.pipeline.settings.bind_settings`) and calls the
operation through the single-step function the pipeline runner and the
napari widgets use (:func:`napari_fbias.pipeline.apply.compute_step`): a
2D/3D operation is applied to each time point and channel of a larger image,
and the settings ``axes`` and ``spacing`` are filled in from the image. The
run record (``run.json``) is built by the runner's own
:class:`~napari_fbias.pipeline.record.RunRecorder`, the result folder
written by :func:`~napari_fbias.pipeline.outputs.write_result_folder` and
the inputs of :func:`script_main` looped over by the batch runner's
:func:`~napari_fbias.pipeline.batch.run_each`. The results, the run record
and the files written are therefore the same as those of ``fbias run`` on
the same image, bit for bit.

Bundles delivered before :mod:`napari_fbias.api` existed import this module
by its path: its names stay.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_fbias.ops.registry import OpSpec, get_op, op_name_of
from napari_fbias.pipeline.errors import InputError, StepError
from napari_fbias.pipeline.parts import InputDecl, Step
from napari_fbias.pipeline.values import Value

__all__ = ["StepRunner", "op_spec", "script_main", "write_outputs"]

#: How :attr:`StepRunner.results` records say they were made.
MADE_WITH = "step by step (napari_fbias.session.export.runtime.StepRunner)"


def op_spec(func: Callable[..., Any]) -> OpSpec:
    """Return the registered operation of an op function.

    Raises
    ------
    TypeError
        When ``func`` is not a registered napari-fbias operation.
    """
    name = op_name_of(func)
    if name is None:
        raise TypeError(
            f"{getattr(func, '__name__', func)!r} is not a napari-fbias operation "
            "(functions registered with @register_op)"
        )
    spec = get_op(name)
    if spec.func is not func:
        raise TypeError(f"{func!r} is not the function registered as operation {name!r}")
    return spec


class StepRunner:
    """Run pipeline steps one call at a time, exactly as the pipeline runner does.

    Parameters
    ----------
    pipeline_name : str
        Name of the pipeline these steps come from (for the run record).
    pipeline_sha256 : str
        Its :meth:`~napari_fbias.pipeline.model.Pipeline.sha256`, so that
        ``fbias run`` recognises results written by a script as its own.
    checksum : bool
        Record the SHA-256 of each input's pixels (as ``fbias run`` does).
    memory_limit : int, optional
        Bytes above which an input is refused (``fbias run`` processes such
        images chunk by chunk; a script holds everything in memory). Default:
        the runner's limit, a quarter of this computer's memory.
    """

    def __init__(
        self,
        pipeline_name: str,
        pipeline_sha256: str = "",
        *,
        checksum: bool = True,
        memory_limit: int | None = None,
    ) -> None:
        from napari_fbias.pipeline.record import RunRecorder
        from napari_fbias.pipeline.runner import default_memory_limit

        self.pipeline_name = str(pipeline_name)
        self.pipeline_sha256 = str(pipeline_sha256)
        self.checksum = checksum
        self.memory_limit = default_memory_limit() if memory_limit is None else memory_limit
        self._record = RunRecorder(checksum=checksum, memory_limit=self.memory_limit)
        self.started = self._record.started
        self.inputs: dict[str, Value] = {}
        self._made: dict[str, Value] = {}
        self._feeds: dict[str, dict[str, Value]] = {}

    # --- inputs ----------------------------------------------------------------------
    def open_input(
        self,
        data: Any,
        name: str = "image",
        *,
        kind: str = "image",
        channel: int | None = None,
        t: int | None = None,
        z: int | None = None,
        axes: str | None = None,
    ) -> Value:
        """Open (or wrap) the data of one pipeline input and take its selection.

        Parameters
        ----------
        data : str, Path, MultiscaleImage, Value, array or (array, axes)
            The image: a path or URL is opened lazily with ``open_image``.
        name : str
            The pipeline's name for this input.
        kind : {"image", "labels"}
            What the input holds.
        channel, t, z : int, optional
            Index to keep along ``c``, ``t`` or ``z`` (that axis is dropped).
        axes : str, optional
            Axes of a plain array or a TIFF without metadata (e.g. ``"tyx"``).

        Returns
        -------
        Value
            The selected pixels in memory, with axes and pixel size.

        Raises
        ------
        InputError
            When the image cannot be used (bad selection, empty, too large).
        """
        from napari_fbias.pipeline.apply import materialise

        decl = InputDecl(kind=kind, channel=channel, t=t, z=z, axes=axes)
        value = self._record.take_input(data, decl, name)
        if value.data.nbytes > self.memory_limit:
            raise InputError(
                f"input {name!r}: the image needs {value.data.nbytes / 2**30:.1f} GiB, more than "
                f"the {self.memory_limit / 2**30:.1f} GiB this script may use; run it with "
                "`fbias run`, which processes large images chunk by chunk"
            )
        value = materialise(value)
        self.inputs[name] = value
        return value

    # --- steps -----------------------------------------------------------------------
    def step(
        self, step_id: str, op: Callable[..., Any], *data: Value | None, **settings: Any
    ) -> Value:
        """Apply operation ``op`` to ``data`` with ``settings``, as a pipeline step does.

        Parameters
        ----------
        step_id : str
            The step's id in the pipeline (used in messages and the run record).
        op : callable
            The operation function (e.g. ``napari_fbias.ops.segment.nuclei``).
        *data : Value or None
            Its data inputs, in the order of the function's parameters (None
            for an optional input left out).
        **settings
            Its settings, by name; they are checked and converted like the
            settings of a pipeline file (``2`` becomes ``2.0`` for a number).

        Returns
        -------
        Value
            The step's result, with axes and pixel size.

        Raises
        ------
        StepError
            When a setting or input does not fit, or the operation fails.
        """
        from napari_fbias.pipeline.apply import compute_step
        from napari_fbias.pipeline.settings import bind_settings

        spec = op_spec(op)
        step_id = str(step_id)
        if len(data) > len(spec.inputs):
            raise StepError(
                step_id, spec.name, f"takes {len(spec.inputs)} data input(s), got {len(data)}"
            )
        args: list[Value | None] = [*data, *([None] * (len(spec.inputs) - len(data)))]
        for decl, value in zip(spec.inputs, args, strict=True):
            if value is None:
                if decl.required:
                    raise StepError(step_id, spec.name, f"data input {decl.name!r} is missing")
                continue
            if not isinstance(value, Value):
                raise StepError(
                    step_id,
                    spec.name,
                    f"data input {decl.name!r} must be the result of open_input or step, "
                    f"got {type(value).__name__}",
                )
            if value.kind != decl.kind:
                raise StepError(
                    step_id,
                    spec.name,
                    f"data input {decl.name!r} needs {decl.kind}, got {value.kind}",
                )
        params, problems = bind_settings(spec, settings)
        if problems:
            raise StepError(step_id, spec.name, "; ".join(p.message for p in problems))
        refs = {d.name: d.name for d, v in zip(spec.inputs, args, strict=True) if v is not None}
        step = Step(step_id, spec.name, inputs=refs, params=params)
        t0 = time.perf_counter()
        out = compute_step(spec, step, args)
        self._record.add_step(spec, step, time.perf_counter() - t0, chosen=out.chosen)
        self._made[step_id] = out
        self._feeds[step_id] = {
            d.name: v for d, v in zip(spec.inputs, args, strict=True) if v is not None
        }
        return out

    # --- results ---------------------------------------------------------------------
    def _source_of(self, value: Value) -> str | None:
        for sid, v in self._made.items():
            if v is value:
                return sid
        for name, v in self.inputs.items():
            if v is value:
                return name
        return None

    def results(self, outputs: Mapping[str, Value]) -> Any:
        """Collect the named outputs with a run record, as ``Pipeline.run`` returns them.

        Parameters
        ----------
        outputs : mapping of str to Value
            Output name -> the value of a step (or an input).

        Returns
        -------
        napari_fbias.pipeline.runner.Results
            Output name -> array / table, with ``.record`` (what ``run.json`` holds).
        """
        from napari_fbias.pipeline.runner import Results

        sources: dict[str, str] = {}
        for name, value in outputs.items():
            src = self._source_of(value)
            if src is None:
                raise ValueError(f"output {name!r} is not a value made by this runner")
            sources[name] = src
        values = dict(outputs)
        record = self._record.finish(
            self.pipeline_name, self.pipeline_sha256, values, made_with=MADE_WITH
        )
        feeds = {name: self._feeds.get(src, {}) for name, src in sources.items()}
        return Results(values, record, dict(self.inputs), feeds)


def write_outputs(results: Any, outdir: str | Path, stem: str, *, source: str = "") -> Path:
    """Write results to ``outdir/stem/`` the way ``fbias run`` does, atomically.

    The folder is built next to its final place and renamed once complete,
    with ``run.json`` written last. An existing result folder of an earlier
    run is replaced; any other existing folder is left alone.

    Parameters
    ----------
    results : Results
        What :meth:`StepRunner.results` or ``Pipeline.run`` returned.
    outdir : path
        The output folder (created if needed).
    stem : str
        Name of this image's result folder.
    source : str
        Where the image came from (for the record).

    Returns
    -------
    pathlib.Path
        The result folder.

    Raises
    ------
    FbiasIOError
        When ``outdir/stem`` exists but is not a napari-fbias result folder.
    """
    from napari_fbias.pipeline.outputs import write_result_folder

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    return write_result_folder(results, out, stem, source=source)


def script_main(
    run: Callable[..., Any],
    argv: Sequence[str] | None = None,
    *,
    description: str = "",
    extra_inputs: Sequence[str] = (),
) -> int:
    """Command line of an exported script: ``python run_pipeline.py INPUT... [-o OUTDIR]``.

    Parameters
    ----------
    run : callable
        ``run(source, **extra) -> Results`` for one image.
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).
    description : str
        Shown by ``--help``.
    extra_inputs : sequence of str
        Names of the pipeline's other inputs: each becomes a required option
        ``--NAME PATH`` given to every run.

    Returns
    -------
    int
        0 when every image was processed, 1 when some failed, 2 for usage errors.
    """
    from napari_fbias.pipeline.batch import BatchItem, run_each
    from napari_fbias.pipeline.errors import BatchError
    from napari_fbias.pipeline.inputs import BatchInput, check_outdir, expand_inputs

    parser = argparse.ArgumentParser(
        description=description,
        epilog="Results go to OUTDIR/<image name>/, as with `fbias run`.",
    )
    parser.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="+",
        help="images: OME-Zarr folders or URLs, TIFF files, a folder of images, or a pattern",
    )
    parser.add_argument(
        "-o", "--output", default="results", metavar="OUTDIR", help="results folder"
    )
    for name in extra_inputs:
        parser.add_argument(
            f"--{name}", dest=name, required=True, metavar="PATH", help=f"input {name!r}"
        )
    args = parser.parse_args(argv)
    extra = {name: getattr(args, name) for name in extra_inputs}
    try:
        items = expand_inputs(args.inputs)
        outdir = check_outdir(args.output, items)
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def one(item: BatchInput) -> BatchItem:
        folder = write_outputs(run(item.source, **extra), outdir, item.stem, source=item.shown)
        return BatchItem(item.shown, item.stem, "done", folder=str(folder))

    failed = 0
    for done in run_each(items, one):
        if done.status == "failed":
            failed += 1
            print(f"{done.stem}: failed: {' '.join(done.message.split())}", file=sys.stderr)
        else:
            print(f"{done.stem}: done -> {done.folder}")
    print(f"{len(items) - failed} done, {failed} failed -> {outdir}")
    return 1 if failed else 0
