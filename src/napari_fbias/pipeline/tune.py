"""Tune a step's settings from a few annotated objects (issue 15).

:func:`tune_pipeline` searches the settings of one step of a pipeline (or
:func:`tune_step`, of one operation) so that its labels best match objects an
analyst annotated on the user's image: 5 to 20 objects painted in a label
image, or points at object centres.

* **Score.** :func:`napari_fbias.ops.metrics.scoreboard` (AP@0.5, F1, mean
  IoU) in the *annotated region* only, so partial annotation is fair: every
  annotated object counts; an unmatched prediction is a false positive only
  when at least half of it lies in the region. The region
  (:func:`~napari_fbias.ops.metrics.annotated_region`) is, by default
  (``region="objects"``), the annotated objects grown by a quarter of their
  diameter: correct objects nobody annotated are never penalised, fragments
  and spurious objects on annotated ones are. ``region="box"`` says every
  object inside the annotations' bounding box was annotated. For points, a
  prediction matches a point inside it (one to one), and the region is a disc
  of 0.6 object diameters around each point.
* **Search.** Optuna's TPE sampler (the ``tune`` extra), seeded: the same
  inputs and number of trials give the same trials and the same winner. The
  current settings are scored first, then a guess from the object size, then
  the sampler's proposals. The ranges come from the operation's declared
  bounds and from the object diameter (the annotated objects' median, or
  :func:`~napari_fbias.ops.object_size.object_diameter` for points); see
  :mod:`.tune_space`.
* **Fast.** Steps upstream of the tuned one run once; each trial runs the
  tuned step and the steps after it up to the first labels result. Trials run
  on a crop around the annotated region (when it is less than half the
  image); because a crop changes global statistics (an Otsu threshold), the
  best few are scored again on the whole image, and the winner is chosen there.
* **Control.** ``progress(done, total, text)``, ``cancel`` (a
  :class:`threading.Event` or a callable returning True to stop), a number of
  trials and a time budget. The result holds a scoreboard of the best settings
  tried; the winner is plain step settings (:attr:`TuneResult.params`,
  :attr:`TuneResult.pipeline`), so a rerun is exact.
* **Not overfitting ten objects.** The objective is AP@0.5 + 0.1 mean IoU
  - 0.05 x how far the settings moved from the start (see
  :data:`DISTANCE_WEIGHT`), and the starting settings stay unless a trial
  beats them by more than half an annotated object's AP (:data:`MIN_GAIN`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_fbias.ops.metrics import (
    Scores,
    annotated_region,
    grow,
    point_indices,
    point_scoreboard,
    scoreboard,
)
from napari_fbias.ops.registry import OpSpec, get_op
from napari_fbias.pipeline.apply import apply_step, materialise
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.model import Pipeline
from napari_fbias.pipeline.parts import Step, thaw
from napari_fbias.pipeline.tune_space import Dim, search_space, without_inert
from napari_fbias.pipeline.validate import topological_order
from napari_fbias.pipeline.values import Value, bind_inputs, select, to_value

__all__ = [
    "DEFAULT_TRIALS",
    "Annotations",
    "TuneError",
    "TuneResult",
    "TuneTrial",
    "load_annotations",
    "tune_pipeline",
    "tune_step",
]

#: Trials when none are asked for.
DEFAULT_TRIALS = 60
#: Trials re-scored on the whole image after a search on a crop.
RESCORED = 3
#: Weight of the mean IoU beside AP@0.5 in the objective: with ten objects AP is coarse
#: (steps of about 0.1), and among equal APs the better outlines should win.
IOU_WEIGHT = 0.1
#: Cost of moving every setting across its whole range (``TuneTrial.distance`` = 1): ten
#: annotated objects cannot tell apart settings that score alike on them, and those
#: nearest the starting point (the recipe's defaults, measured on many images) generalise
#: best; half an object's AP (0.05 of 10) buys a move across the whole space.
DISTANCE_WEIGHT = 0.05
#: The winner must beat the starting point by more than this share of one annotated
#: object's AP (``MIN_GAIN / n``): a gain of one false positive less on ten objects is
#: within what ten objects cannot tell apart, and the defaults then stay.
MIN_GAIN = 0.5
#: A crop is used when it holds at most this share of the image.
CROP_SHARE = 0.5

Cancel = threading.Event | Callable[[], bool] | None
Progress = Callable[[int, int, str], None] | None


class TuneError(ValueError):
    """Tuning cannot start: bad annotations, nothing to tune, a step that gives no labels."""


@dataclass(frozen=True)
class Annotations:
    """What the analyst annotated: a label image of some objects, or points at object centres.

    Exactly one of ``labels`` (integer array of the image's spatial shape) and
    ``points`` (``(n, ndim)`` pixel coordinates) is set.
    """

    labels: np.ndarray | None = None
    points: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.labels is None) == (self.points is None):
            raise TuneError("give either annotated labels or points, not both or neither")
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.dtype.kind not in "iub":
                raise TuneError(f"annotated labels must be whole numbers; got {lab.dtype} pixels")
            object.__setattr__(self, "labels", lab)
        else:
            pts = np.asarray(self.points, float)
            if pts.ndim != 2 or pts.shape[1] not in (2, 3):
                raise TuneError(
                    f"points must be an (n, 2) or (n, 3) array of pixel coordinates; got shape "
                    f"{pts.shape}"
                )
            object.__setattr__(self, "points", pts)

    @property
    def kind(self) -> str:
        """``"labels"`` or ``"points"``."""
        return "labels" if self.labels is not None else "points"

    @property
    def count(self) -> int:
        """Annotated objects (or points)."""
        if self.labels is not None:
            return int(np.count_nonzero(np.bincount(self.labels.ravel().astype(np.int64))[1:]))
        return len(self.points)  # type: ignore[arg-type]

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`TuneError` unless they fit an image of spatial ``shape`` and hold some."""
        if self.labels is not None:
            if self.labels.shape != tuple(shape):
                raise TuneError(
                    f"the annotation's shape {self.labels.shape} differs from the image's "
                    f"{tuple(shape)} (annotate on the image being tuned, one time point and "
                    "channel)"
                )
            if not self.labels.any():
                raise TuneError("the annotation is empty: paint a few objects (5 to 20) first")
            return
        if not len(self.points):  # type: ignore[arg-type]
            raise TuneError("no points: mark the centres of a few objects (5 to 20) first")
        try:
            point_indices(self.points, shape)
        except ValueError as exc:
            raise TuneError(f"points: {exc}") from None


def load_annotations(path: str | Path) -> Annotations:
    """Read annotations from a file.

    A ``.csv`` holds points (columns ``y, x`` or ``z, y, x``, or napari's
    ``axis-0...`` export); anything else is opened as a label image (TIFF,
    OME-Zarr; its first time point and channel).
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        import pandas as pd

        table = pd.read_csv(p)
        for cols in (["z", "y", "x"], ["y", "x"]):
            if all(c in table.columns for c in cols):
                return Annotations(points=table[cols].to_numpy(float))
        axes = sorted(c for c in table.columns if str(c).startswith("axis-"))
        if axes:
            return Annotations(points=table[axes[-3:] if len(axes) > 2 else axes].to_numpy(float))
        raise TuneError(f"{p}: a points CSV needs columns y, x (or z, y, x)")
    from napari_fbias.io.open import open_image

    image = open_image(str(p))
    data = np.asarray(image.levels[0])
    axes = "".join(image.axes)
    keep = tuple(slice(None) if a in "zyx" else 0 for a in axes)
    data = data[keep]
    if data.dtype.kind not in "iub":
        raise TuneError(f"{p}: annotated labels must be whole numbers; got {data.dtype} pixels")
    return Annotations(labels=data)


@dataclass(frozen=True)
class TuneTrial:
    """One set of settings tried, with its scores.

    Attributes
    ----------
    number : int
        0 is the starting point (the current settings).
    params : dict
        The step's settings for this trial (all of them, as written in a pipeline).
    scores : Scores or None
        On the region searched (a crop, or the whole image); None when the step failed.
    full : Scores or None
        On the whole image, for the trials scored again there.
    error : str
        Why the step failed with these settings.
    seconds : float
        Time of the trial.
    distance : float
        How far the settings moved from the starting point, 0 to 1 (the mean over
        the searched settings of the change relative to its range; a changed choice
        counts 1).
    """

    number: int
    params: dict[str, Any]
    scores: Scores | None
    full: Scores | None = None
    error: str = ""
    seconds: float = 0.0
    distance: float = 0.0

    @property
    def final(self) -> Scores | None:
        """The scores that count: on the whole image when known."""
        return self.full if self.full is not None else self.scores

    @property
    def objective(self) -> float:
        """What the search maximises: AP@0.5 + 0.1 mean IoU - 0.05 distance; -1 for a failure."""
        return _objective(self.final) - DISTANCE_WEIGHT * self.distance

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict."""
        return {
            "number": self.number,
            "params": _plain(self.params),
            "scores": None if self.scores is None else self.scores.to_dict(),
            "full": None if self.full is None else self.full.to_dict(),
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def _objective(s: Scores | None) -> float:
    if s is None:
        return -1.0
    return s.average_precision + IOU_WEIGHT * (s.mean_iou or 0.0)


@dataclass(frozen=True)
class TuneResult:
    """What a tuning found.

    Attributes
    ----------
    step_id, op : str
        The step tuned.
    start : TuneTrial
        The current settings, scored.
    best : TuneTrial
        The winner (never worse than ``start``).
    board : tuple of TuneTrial
        The best settings tried, best first (the scoreboard).
    trials : tuple of TuneTrial
        Every trial, in order.
    space : tuple of Dim
        What was searched.
    stopped : str
        ``"done"``, ``"timeout"`` or ``"cancelled"``.
    seconds : float
        Wall time.
    diameter : float
        Object diameter the ranges came from (pixels).
    crop : tuple of (int, int)
        Start and stop of the crop per spatial axis (the whole image when not cropped).
    annotations : str
        ``"labels"`` or ``"points"``, with their count in ``n_annotated``.
    pipeline : Pipeline or None
        The pipeline with the winner's settings (for :func:`tune_pipeline`).
    """

    step_id: str
    op: str
    start: TuneTrial
    best: TuneTrial
    board: tuple[TuneTrial, ...]
    trials: tuple[TuneTrial, ...]
    space: tuple[Dim, ...]
    stopped: str
    seconds: float
    diameter: float
    crop: tuple[tuple[int, int], ...]
    annotations: str
    n_annotated: int
    region: str
    seed: int
    pipeline: Pipeline | None = field(default=None, compare=False)

    @property
    def params(self) -> dict[str, Any]:
        """The winner's settings: ordinary step settings."""
        return dict(self.best.params)

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary for a record or ``--json`` (scoreboard included, not every trial)."""
        start, best = self.start.final, self.best.final
        return {
            "step": self.step_id,
            "op": self.op,
            "annotations": self.annotations,
            "n_annotated": self.n_annotated,
            "region": self.region,
            "trials": len(self.trials),
            "stopped": self.stopped,
            "seconds": round(self.seconds, 2),
            "seed": self.seed,
            "diameter_px": round(self.diameter, 2),
            "crop": [list(c) for c in self.crop],
            "searched": [d.describe() for d in self.space],
            "start": {"params": _plain(self.start.params), **_scores(start)},
            "best": {"params": _plain(self.best.params), **_scores(best)},
            "scoreboard": [
                {"trial": t.number, "params": _changed(t.params, self.space), **_scores(t.final)}
                for t in self.board
            ],
        }


def _scores(s: Scores | None) -> dict[str, Any]:
    return s.to_dict() if s is not None else {"ap": None, "f1": None, "mean_iou": None}


def _changed(params: Mapping[str, Any], space: Iterable[Dim]) -> dict[str, Any]:
    names = {d.name for d in space}
    return {k: _plain(v) for k, v in params.items() if k in names}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


# --- the chain of steps a trial runs ------------------------------------------------------


class _Chain:
    """The steps from the tuned one to the labels it leads to, with upstream values computed."""

    def __init__(self, pipeline: Pipeline, target: Step, inputs: Mapping[str, Value]) -> None:
        order = topological_order(pipeline)
        ids = [s.id for s in order]
        start = ids.index(target.id)
        after = {target.id}
        for s in order[start + 1 :]:
            if any(ref in after for ref in s.inputs.values()):
                after.add(s.id)
        scored = next(
            (s for s in order[start:] if s.id in after and get_op(s.op).output == "labels"), None
        )
        if scored is None:
            raise TuneError(
                f"step {target.id!r} ({target.op}) leads to no labels: tuning compares labels "
                "with the annotation"
            )
        need = {scored.id}
        for s in reversed(order):
            if s.id in need:
                need.update(s.inputs.values())
        self.target = target
        self.scored = scored.id
        self.upstream = [s for s in order if s.id in need and s.id not in after]
        self.chain = [s for s in order if s.id in need and s.id in after]
        self.inputs = dict(inputs)
        self._values: dict[str, Value] | None = None

    def values(self) -> dict[str, Value]:
        """Return the inputs and the upstream steps' results (computed once)."""
        if self._values is None:
            vals = dict(self.inputs)
            for s in self.upstream:
                vals[s.id] = _run(s, vals)
            self._values = vals
        return self._values

    def labels(self, params: Mapping[str, Any]) -> np.ndarray:
        """Run the chain with the tuned step's settings ``params``; return the labels."""
        vals = dict(self.values())
        for s in self.chain:
            st = replace(s, params=dict(params)) if s.id == self.target.id else s
            vals[s.id] = _run(st, vals)
        out = vals[self.scored]
        return np.asarray(out.data)


def _run(step: Step, vals: Mapping[str, Value]) -> Value:
    spec = get_op(step.op)
    args = [vals[step.inputs[i.name]] if i.name in step.inputs else None for i in spec.inputs]
    return apply_step(spec, step, args)


def _crop_value(v: Value, box: tuple[slice, ...]) -> Value:
    if not v.is_array:
        return v
    index = tuple(box[v.spatial_axes.index(a)] if a in v.spatial_axes else slice(None)
                  for a in v.axes)  # fmt: skip
    return Value(np.ascontiguousarray(v.data[index]), v.kind, v.axes, v.spacing, v.units)


# --- the search -------------------------------------------------------------------------


def _should_stop(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _annotated_diameter(labels: np.ndarray, spacing: tuple[float, ...] | None) -> float:
    sizes = np.bincount(labels.ravel().astype(np.int64))[1:]
    sizes = sizes[sizes > 0].astype(float)
    if spacing is not None:
        sp = np.asarray(spacing, float)
        sizes = sizes * float(np.prod(sp / sp.min()))
    ball = math.pi / 4 if labels.ndim == 2 else math.pi / 6
    return float((np.median(sizes) / ball) ** (1.0 / labels.ndim))


def _crop_box(
    region: np.ndarray, pad: float, spacing: tuple[float, ...] | None
) -> tuple[slice, ...] | None:
    idx = np.nonzero(region)
    sp = np.ones(region.ndim) if spacing is None else np.asarray(spacing, float)
    box = []
    for axis, n in enumerate(region.shape):
        extra = math.ceil(pad * sp.min() / sp[axis])
        box.append(
            slice(max(0, int(idx[axis].min()) - extra), min(n, int(idx[axis].max()) + 1 + extra))
        )
    share = np.prod([s.stop - s.start for s in box]) / region.size
    return tuple(box) if share <= CROP_SHARE else None


class _Scorer:
    """Scores labels against the annotations in a (cropped) frame."""

    def __init__(self, ann: Annotations, region: np.ndarray, box: tuple[slice, ...]) -> None:
        self.region = region[box]
        if ann.labels is not None:
            self.gt: np.ndarray | None = ann.labels[box]
            self.points = None
        else:
            self.gt = None
            start = np.asarray([s.start for s in box])
            self.points = point_indices(ann.points, region.shape) - start

    def __call__(self, labels: np.ndarray) -> Scores:
        if labels.shape != self.region.shape:
            raise TuneError(
                f"the tuned step gives labels of shape {labels.shape}, not the annotated "
                f"image's {self.region.shape}"
            )
        if self.gt is not None:
            return scoreboard(self.gt, labels, self.region)
        return point_scoreboard(self.points, labels, self.region)


def tune_pipeline(
    pipeline: Pipeline,
    image: Any,
    annotations: Annotations,
    *,
    step: int | str | None = None,
    params: Iterable[str] | None = None,
    n_trials: int = DEFAULT_TRIALS,
    timeout: float | None = None,
    seed: int = 0,
    region: str = "objects",
    top: int = 5,
    crop: bool = True,
    progress: Progress = None,
    cancel: Cancel = None,
    **more_inputs: Any,
) -> TuneResult:
    """Search the settings of one step of ``pipeline`` to best match ``annotations``.

    Parameters
    ----------
    pipeline : Pipeline
        Validated first.
    image : object
        Data for the first input (array, ``(array, axes)``, Value, MultiscaleImage,
        path); after the input's selection, one 2D or 3D image.
    annotations : Annotations
        Annotated objects (labels) or object centres (points) on that image.
    step : int, str or None
        The step to tune: its 1-based number or id. Default: the first step
        that gives labels and has settings to tune.
    params : iterable of str, optional
        Search only these settings.
    n_trials : int
        Settings tried, the starting point included.
    timeout : float, optional
        Seconds for the search (the re-scoring of the best few on the whole
        image comes on top).
    seed : int
        Seed of the sampler: same inputs, same trials.
    region : {"objects", "box"}
        Where the annotation is complete (see the module documentation).
    top : int
        Length of the scoreboard.
    crop : bool
        Run the trials on a crop around the annotated region when it is small.
    progress : callable, optional
        ``progress(done, total, text)`` after each trial.
    cancel : threading.Event or callable, optional
        Set (or returning True) to stop; the best settings so far are returned.
    **more_inputs
        Data for the other inputs, by name.

    Returns
    -------
    TuneResult
        With ``pipeline`` holding the winner's settings.

    Raises
    ------
    TuneError
        Annotations that do not fit, a step with nothing to tune or no labels.
    MissingExtraError
        When optuna (the ``tune`` extra) is not installed.
    """
    from napari_fbias.extras import require

    optuna = require("optuna", "tune", what="tuning (fbias tune, the Tune widget)")
    t0 = time.perf_counter()
    if n_trials < 1:
        raise TuneError(f"the number of trials must be at least 1; got {n_trials}")
    pipeline = pipeline.validated()
    target = _pick_step(pipeline, step)
    spec = get_op(target.op)
    bound = bind_inputs(pipeline.inputs, image, more_inputs)
    inputs: dict[str, Value] = {}
    for name, decl in pipeline.inputs.items():
        raw, _ = to_value(bound[name], decl, name)
        inputs[name] = materialise(select(raw, decl, name))
    primary = inputs[next(iter(pipeline.inputs))]
    if primary.loop_axes:
        raise TuneError(
            f"the image has axes {primary.axes!r}: tuning works on one 2D or 3D image; select "
            "one time point and channel (the pipeline input's t / channel)"
        )
    shape = tuple(int(n) for n in primary.data.shape)
    annotations.check(shape)
    spacing = primary.spacing
    # the object size the ranges come from, and the region scored
    if annotations.labels is not None:
        diameter = _annotated_diameter(annotations.labels, spacing)
        where = annotated_region(annotations.labels, mode=region, spacing=spacing)
    else:
        diameter = _image_diameter(primary)
        marks = np.zeros(shape, bool)
        marks[tuple(point_indices(annotations.points, shape).T)] = True
        if region == "box":
            idx = np.nonzero(marks)
            marks[tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)] = True
        elif region != "objects":
            raise TuneError(f"region must be 'objects' or 'box'; got {region!r}")
        where = grow(marks, 0.6 * diameter, spacing)
    full_box = tuple(slice(0, n) for n in shape)
    box = _crop_box(where, max(16.0, 1.5 * diameter), spacing) if crop else None
    box = box or full_box
    cropped = box != full_box
    frame = {k: _crop_value(v, box) for k, v in inputs.items()} if cropped else inputs
    chain = _Chain(pipeline, target, frame)
    img = np.asarray(frame[next(iter(pipeline.inputs))].data, float)
    intensity = (float(np.percentile(img, 1)), float(np.percentile(img, 99.5)))
    start_params = {**spec.defaults(), **thaw(target.params)}
    space = search_space(
        spec, start_params, diameter=diameter, ndim=len(shape), intensity=intensity, only=params
    )
    if not space:
        raise TuneError(f"{spec.name} has no setting tuning can search (numbers with a range, "
                        "choices, yes/no)")  # fmt: skip
    score = _Scorer(annotations, where, box)

    seen: dict[str, TuneTrial] = {}
    trials: list[TuneTrial] = []

    def moved(p: Mapping[str, Any]) -> float:
        return _distance(space, start_params, p)

    def evaluate(number: int, values: Mapping[str, Any]) -> TuneTrial:
        p = without_inert(start_params, {**start_params, **dict(values)})
        key = repr(sorted((k, _plain(v)) for k, v in p.items()))
        if key in seen:
            return replace(seen[key], number=number, seconds=0.0)
        t = time.perf_counter()
        try:
            trial = TuneTrial(number, p, score(chain.labels(p)), distance=moved(p))
        except StepError as exc:
            trial = TuneTrial(number, p, None, error=str(exc), distance=moved(p))
        trial = replace(trial, seconds=time.perf_counter() - t)
        seen[key] = trial
        return trial

    stopped = "done"
    total = n_trials + (RESCORED + 1 if cropped else 0)

    def report(done: int) -> None:
        if progress is not None:
            best = max(trials, key=lambda t: t.objective)
            ap = best.final.average_precision if best.final is not None else 0.0
            progress(done, total, f"best AP@0.5 {ap:.2f}")

    first = evaluate(0, {})  # the starting point, as it is (auto settings included)
    if first.scores is None:
        raise TuneError(f"the step fails with its current settings: {first.error}")
    trials.append(first)
    report(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 4)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = {d.name: _distribution(optuna, d) for d in space}
    guess = {d.name: d.guess for d in space if d.guess is not None}
    if guess:
        study.enqueue_trial(guess)
    for number in range(1, n_trials):
        if _should_stop(cancel):
            stopped = "cancelled"
            break
        if timeout is not None and time.perf_counter() - t0 >= timeout:
            stopped = "timeout"
            break
        asked = study.ask(dists)
        trial = evaluate(number, asked.params)
        study.tell(asked, trial.objective)
        trials.append(trial)
        report(number + 1)
    if cropped and stopped != "cancelled":
        trials = _rescore(trials, pipeline, target, inputs, annotations, where, full_box, report)
    ranked = sorted(trials, key=lambda t: (-t.objective, t.number))
    margin = MIN_GAIN / max(1, annotations.count)
    best = ranked[0] if ranked[0].objective > trials[0].objective + margin else trials[0]
    board = [best, *[t for t in _distinct(ranked) if t is not best]][:top]
    tuned = _with_params(pipeline, target, best.params, best, trials[0])
    return TuneResult(
        step_id=target.id,
        op=target.op,
        start=trials[0],
        best=best,
        board=tuple(board),
        trials=tuple(trials),
        space=tuple(space),
        stopped=stopped,
        seconds=time.perf_counter() - t0,
        diameter=diameter,
        crop=tuple((s.start, s.stop) for s in box),
        annotations=annotations.kind,
        n_annotated=annotations.count,
        region=region,
        seed=seed,
        pipeline=tuned,
    )


def _distance(space: Iterable[Dim], start: Mapping[str, Any], params: Mapping[str, Any]) -> float:
    """Return how far ``params`` moved from ``start`` (0 to 1; see :attr:`TuneTrial.distance`)."""
    parts = []
    for d in space:
        a, b = start.get(d.name), params.get(d.name)
        if d.kind == "choice":
            parts.append(0.0 if a == b else 1.0)
            continue
        a = d.guess if a is None else d.clip(a)  # "auto": measured from the size guess
        if a is None or b is None:
            parts.append(0.0 if a == b else 1.0)
            continue
        if d.log:
            lo, hi = math.log(max(d.low, 1e-9)), math.log(d.high)
            a, b = math.log(max(float(a), 1e-9)), math.log(max(float(b), 1e-9))
        else:
            lo, hi = float(d.low), float(d.high)
        parts.append(min(1.0, abs(float(b) - float(a)) / (hi - lo)) if hi > lo else 0.0)
    return float(np.mean(parts)) if parts else 0.0


def _distinct(trials: Iterable[TuneTrial]) -> Iterable[TuneTrial]:
    seen = set()
    for t in trials:
        key = repr(sorted((k, _plain(v)) for k, v in t.params.items()))
        if key not in seen:
            seen.add(key)
            yield t


def _rescore(
    trials: list[TuneTrial],
    pipeline: Pipeline,
    target: Step,
    inputs: Mapping[str, Value],
    annotations: Annotations,
    where: np.ndarray,
    full_box: tuple[slice, ...],
    report: Callable[[int], None],
) -> list[TuneTrial]:
    """Score the starting point and the best few trials again on the whole image."""
    chain = _Chain(pipeline, target, inputs)
    score = _Scorer(annotations, where, full_box)
    ranked = [t for t in _distinct(sorted(trials, key=lambda t: -t.objective)) if t.number != 0]
    pick = {0, *(t.number for t in ranked[:RESCORED] if t.scores is not None)}
    out = []
    done = len(trials)
    for t in trials:
        if t.number in pick:
            try:
                t = replace(t, full=score(chain.labels(t.params)))
            except StepError as exc:
                t = replace(t, full=None, scores=None, error=str(exc))
            done += 1
            report(done)
        out.append(t)
    return out


def _distribution(optuna: Any, d: Dim) -> Any:
    dist = optuna.distributions
    if d.kind == "choice":
        return dist.CategoricalDistribution(list(d.choices))
    if d.kind == "int":
        return dist.IntDistribution(int(d.low), int(d.high), log=d.log, step=d.step)
    return dist.FloatDistribution(float(d.low), float(d.high), log=d.log)


def _image_diameter(primary: Value) -> float:
    from napari_fbias.ops.object_size import object_diameter

    try:
        d, _ = object_diameter(primary.data, primary.spacing)
    except ValueError as exc:
        raise TuneError(f"cannot estimate the object size from the image: {exc}") from None
    return float(d)


def _pick_step(pipeline: Pipeline, step: int | str | None) -> Step:
    steps = list(pipeline.steps)
    if step is None:
        for s in steps:
            spec = get_op(s.op)
            if spec.output == "labels" and _has_tunable(spec):
                return s
        raise TuneError("no step of the pipeline gives labels with settings to tune; name one")
    if isinstance(step, int) or (isinstance(step, str) and step.isdigit()):
        n = int(step)
        if not 1 <= n <= len(steps):
            raise TuneError(f"step {n}: the pipeline has steps 1 to {len(steps)}")
        return steps[n - 1]
    for s in steps:
        if s.id == step:
            return s
    raise TuneError(f"no step {step!r} (steps: {', '.join(s.id for s in steps)})")


def _has_tunable(spec: OpSpec) -> bool:
    from napari_fbias.pipeline.tune_space import tunable

    return any(tunable(p) for p in spec.params)


def _with_params(
    pipeline: Pipeline, target: Step, params: Mapping[str, Any], best: TuneTrial, start: TuneTrial
) -> Pipeline:
    """Return ``pipeline`` with the tuned step's settings (validated, provenance kept)."""
    d = pipeline.to_dict()
    for s in d["steps"]:
        if s["id"] == target.id:
            defaults = get_op(target.op).defaults()
            s["params"] = {
                k: _plain(v)
                for k, v in params.items()
                if v is not None or defaults.get(k, 0) is not None  # None: the default (auto)
            }
    if best is not start and best.final is not None and start.final is not None:
        note = (
            f"Step {target.id!r} ({target.op}) tuned on annotated objects: AP@0.5 "
            f"{start.final.average_precision:.2f} -> {best.final.average_precision:.2f}."
        )
        d["description"] = f"{d.get('description', '')}\n{note}".strip()
    return Pipeline.from_dict(d, validate=True)


def tune_step(
    op: str,
    params: Mapping[str, Any],
    image: Any,
    annotations: Annotations,
    **options: Any,
) -> TuneResult:
    """Tune one operation applied to ``image`` (see :func:`tune_pipeline` for the options).

    The operation must read only the image (its other inputs optional).
    """
    spec = get_op(op)
    needs = [i.name for i in spec.inputs if i.required]
    if not spec.inputs or len(needs) > 1 or spec.inputs[0].kind != "image":
        raise TuneError(
            f"{op} needs more than one image ({', '.join(needs)}): tune it as a step of a "
            "pipeline instead"
        )
    if spec.output != "labels":
        raise TuneError(f"{op} gives {spec.output}, not labels: tuning compares labels")
    pipe = Pipeline(
        name="tune",
        inputs={"image": {"kind": "image"}},
        steps=[{"id": "step", "op": op, "inputs": {spec.inputs[0].name: "image"},
                "params": {k: v for k, v in dict(params).items()
                           if v is not None or spec.defaults().get(k, 0) is not None}}],
        outputs={"labels": "step"},
    )  # fmt: skip
    return tune_pipeline(pipe, image, annotations, step="step", **options)
