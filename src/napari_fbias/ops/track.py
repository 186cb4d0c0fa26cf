"""Tracking: trackpy spot detection and linking, label-based linking over time.

Four operations work on whole movies (``spatial=False``: the runner passes the
full ``(t, y, x)`` or ``(t, z, y, x)`` array and fills ``axes`` / ``spacing``):

* ``track.locate_spots`` -- trackpy's Crocker-Grier spot finder, frame by frame;
* ``track.link_spots`` -- ``trackpy.link`` on a spots table;
* ``track.track_spots`` -- both in one step (what the tracking widget runs);
* ``track.track_labels`` -- link segmented objects (a labels movie) by overlap
  (Hungarian matching of intersection-over-union between frames) or by
  centroid distance (``trackpy.link`` on the object centroids).

Outputs are tracks tables as described in :mod:`napari_fbias.ops.track_features`.
Sizes and distances (``diameter``, ``search_range``) are in pixels along
y/x; on anisotropic 3D stacks (known ``spacing``) they are scaled down along the
coarser z axis so that they describe the same physical length.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd

from napari_fbias.ops.auto_scale import frames_diameter, spot_diameter_for
from napari_fbias.ops.chosen import report_chosen
from napari_fbias.ops.link_tiles import TiledLinks, link_in_tiles
from napari_fbias.ops.registry import keep_old_default, register_op
from napari_fbias.ops.track_chunks import iter_frames, track_labels_chunks
from napari_fbias.ops.track_features import (
    FEATURE_COLUMNS,
    build_tracks,
    empty_tracks,
    position_columns,
)
from napari_fbias.ops.types import Image, Labels, Spots, Tracks

__all__ = [
    "TrackingError",
    "link_spots",
    "locate_spots",
    "relabel_by_track",
    "track_labels",
    "track_spots",
]


class TrackingError(ValueError):
    """Linking failed for a reason the user can fix by changing a setting."""


#: Columns a tracks table computes itself; never carried over from an input table.
_DERIVED = frozenset(
    {"t", "z", "y", "x", "frame", "particle", "track_id", "speed", *FEATURE_COLUMNS}
    | {f"{c}_physical" for c in ("t", "z", "y", "x", "speed", "displacement", "mean_speed")}
)

_SPOT_HINT = (
    "lower search_range (the largest distance a spot moves between two frames), or set "
    "adaptive_stop (e.g. 0.5) so that search_range is reduced automatically where spots are "
    "crowded, or detect fewer spots (raise minmass)"
)


# --- axes, spacing -----------------------------------------------------------------------


def _movie_layout(ndim: int, axes: str, op: str, name: str = "image") -> tuple[bool, int]:
    """Return ``(has_t, n_spatial)`` of a movie from its ``axes`` (or its ndim)."""
    if axes:
        if len(axes) != ndim:
            raise ValueError(f"{op}: axes {axes!r} do not match a {name} with {ndim} dimensions")
        if "c" in axes:
            raise ValueError(
                f"{op} expects a single-channel movie (t, y, x) or (t, z, y, x); the {name} has "
                f"axes {axes!r} — select a channel first"
            )
        if axes not in ("yx", "zyx", "tyx", "tzyx"):
            raise ValueError(f"{op} expects a (t, y, x) or (t, z, y, x) {name}; got axes {axes!r}")
        return axes.startswith("t"), len(axes) - axes.startswith("t")
    if ndim == 2:
        return False, 2
    if ndim in (3, 4):
        return True, ndim - 1
    raise ValueError(
        f"{op} expects a movie (t, y, x) or (t, z, y, x), or a single 2D frame; the {name} has "
        f"{ndim} dimension(s) — select a channel first"
    )


def _split_spacing(
    spacing: Sequence[float] | None, axes: str, pos_cols: Sequence[str], op: str
) -> tuple[float | None, tuple[float, ...] | None]:
    """Split the runner's ``spacing`` into (frame interval, spatial pixel size)."""
    if spacing is None:
        return None, None
    values = tuple(float(s) for s in spacing)
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"{op}: spacing must be positive numbers; got {tuple(spacing)}")
    n = len(pos_cols)
    if axes and len(axes) == len(values):
        per_axis = dict(zip(axes, values, strict=True))
        missing = [c for c in pos_cols if c not in per_axis]
        if missing:
            raise ValueError(f"{op}: spacing for axes {axes!r} gives no pixel size along {missing}")
        return per_axis.get("t"), tuple(per_axis[c] for c in pos_cols)
    if len(values) == n + 1:
        return values[0], values[1:]
    if len(values) == n:
        return None, values
    raise ValueError(
        f"{op}: spacing {values} does not match the axes ({'t, ' + ', '.join(pos_cols)})"
    )


def _per_axis(value: float, spacing: Sequence[float] | None, n: int) -> float | tuple[float, ...]:
    """Scale a length in pixels along the finest axis for the coarser axes (z)."""
    if spacing is None or max(spacing) == min(spacing):
        return value
    finest = min(spacing)
    return tuple(value * finest / s for s in spacing)


def _odd(value: float) -> int:
    n = max(int(round(value)), 1)
    return n if n % 2 else n + 1


# --- spot detection ----------------------------------------------------------------------


def _frame_getter(image: Any, has_t: bool) -> tuple[int, Callable[[int], np.ndarray]]:
    if has_t:
        return int(image.shape[0]), lambda i: np.asarray(image[i])
    return 1, lambda i: np.asarray(image)


def _prepare_frame(frame: np.ndarray, invert: bool, t: int, op: str) -> np.ndarray:
    if frame.dtype.kind not in "biuf":
        raise ValueError(f"{op}: the image must hold numbers; got pixel type {frame.dtype}")
    if frame.dtype == bool:
        frame = frame.astype(np.uint8)
    if frame.dtype.kind == "f":
        nan = np.isnan(frame)
        if nan.all():
            raise ValueError(f"{op}: frame t={t} of the image is all NaN (not-a-number)")
        if nan.any():  # fill the holes with the typical background, keep the rest
            frame = np.where(nan, np.nanmedian(frame), frame)
    if invert:
        frame = frame.max() - frame
    return frame


def _noise_sigma(frame: np.ndarray) -> float:
    """Robust estimate of the pixel noise (MAD of neighbour differences along x)."""
    d = np.diff(frame.astype(np.float64), axis=-1).ravel() / math.sqrt(2.0)
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def _auto_minmass(frames: list[np.ndarray], kwargs: dict[str, Any]) -> float:
    """Mass just above what pure noise of the movie's noise level gives as "spots".

    The noise level is measured on the given frames; a noise-only frame of
    that level (fixed seed, so the result is reproducible) goes through the same
    trackpy detection, and the brightest noise "spot" sets the threshold.
    """
    sigma = float(np.median([_noise_sigma(f) for f in frames]))
    if sigma <= 0:
        return 0.0
    ref = frames[0]
    return _minmass_for_noise(sigma, float(np.median(ref)), ref.shape, ref.dtype, kwargs)


def _minmass_for_noise(
    sigma: float, level: float, shape: Sequence[int], dtype: Any, kwargs: dict[str, Any]
) -> float:
    """:func:`_auto_minmass` from the noise level ``sigma`` and the median ``level``.

    ``shape`` and ``dtype`` are those of the first sampled frame (the
    chunk-wise run, :mod:`.spot_chunks`, measures ``sigma`` and ``level``
    by reduction passes and calls this).
    """
    import trackpy

    if sigma <= 0:
        return 0.0
    ndim = len(shape)
    dtype = np.dtype(dtype)
    caps = (32, 512, 512)[-ndim:] if ndim <= 3 else tuple(shape)
    shape = tuple(min(int(n), c) for n, c in zip(shape, caps, strict=True))
    noise = np.random.default_rng(0).normal(level, sigma, shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        noise = np.clip(np.rint(noise), info.min, info.max).astype(dtype)
    else:
        noise = noise.astype(dtype)
    found = trackpy.locate(noise, minmass=0, **kwargs)
    if len(found) == 0:
        return 0.0
    return 1.2 * float(found["mass"].max())


def _feature_columns(n_spatial: int, anisotropic: bool) -> list[str]:
    if anisotropic:
        return [
            "mass", "size_z", "size_y", "size_x", "ecc", "signal", "raw_mass",
            "ep_z", "ep_y", "ep_x",
        ]  # fmt: skip
    return ["mass", "size", "ecc", "signal", "raw_mass", "ep"]


@register_op(
    "track.locate_spots",
    category="track",
    spatial=False,
    memory=(16, 0),
)
def locate_spots(
    image: Image,
    *,
    diameter: Annotated[int | None, {"min": 3, "max": 99, "step": 2}] = None,
    minmass: Annotated[float | None, {"min": 0.0}] = None,
    separation: Annotated[float | None, {"min": 0.0}] = None,
    percentile: Annotated[float, {"min": 0.0, "max": 100.0}] = 64.0,
    noise_size: Annotated[float, {"min": 0.1, "max": 10.0, "step": 0.1}] = 1.0,
    max_size: Annotated[float | None, {"min": 0.0}] = None,
    invert: bool = False,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Spots:
    """Find bright spots in every frame of a movie (trackpy).

    Parameters
    ----------
    image : Image
        Movie ``(t, y, x)`` or ``(t, z, y, x)``, or a single 2D frame (t = 0).
    diameter : int, optional
        Spot size in pixels: an odd number a bit larger than the spots;
        empty = automatic: the odd number nearest 1.5 times the spot size
        measured on the first, middle and last frames (``measure.object_size``),
        recorded with the step.
    minmass : float, optional
        Minimum total brightness of a spot; empty = automatic, from the noise.
        The automatic value lies just above the brightest "spot" that pure
        camera noise of this movie's noise level produces (after background
        removal, as trackpy measures ``mass``).
    separation : float, optional
        Minimum distance between two spots, in pixels (default: diameter + 1).
    percentile : float
        A spot's peak must be brighter than this percentile of the frame.
    noise_size : float
        Width (pixels) of the Gaussian blur that removes pixel noise.
    max_size : float, optional
        Largest allowed spot radius of gyration, in pixels (no limit if empty).
    invert : bool
        Look for dark spots on a bright background.
    axes : str
        Axes of the image, e.g. ``"tyx"`` (filled by the pipeline).
    spacing : tuple of float, optional
        Pixel size per axis of the image (filled by the pipeline).

    Returns
    -------
    Spots
        One row per spot: ``t``, ``(z)``, ``y``, ``x`` (pixels, sub-pixel
        precision), trackpy's ``mass``, ``size``, ``ecc``, ``signal``,
        ``raw_mass``, ``ep`` and, when ``spacing`` is known, ``z/y/x_physical``
        (and ``t_physical`` with a frame interval). Sorted by ``t`` then position.
    """
    op = "track.locate_spots"
    import trackpy

    trackpy.quiet()
    has_t, n_sp = _movie_layout(np.ndim(image), axes, op)
    if math.prod(np.shape(image)) == 0:
        raise ValueError(f"{op}: the image is empty (shape {tuple(np.shape(image))})")
    pos_cols = ["z", "y", "x"][-n_sp:]
    frame_interval, sp = _split_spacing(spacing, axes, pos_cols, op)
    n_t, frame_at = _frame_getter(image, has_t)
    if diameter is None:
        sample = sorted({0, n_t // 2, n_t - 1})
        frames = [_prepare_frame(frame_at(i), invert, i, op) for i in sample]
        diameter = spot_diameter_for(frames_diameter(frames, sp))
        report_chosen("diameter", diameter)
    kwargs, anisotropic = _locate_kwargs(
        diameter, separation, percentile, noise_size, max_size, sp, n_sp, op
    )
    feature_cols = _feature_columns(n_sp, anisotropic)
    found: list[pd.DataFrame] = []
    with warnings.catch_warnings():
        # trackpy warns about small axes ("color image?") and empty frames: handled here
        warnings.filterwarnings("ignore", message="I am interpreting the image")
        warnings.filterwarnings("ignore", message="No maxima survived")
        warnings.filterwarnings("ignore", message="Image is completely black")
        warnings.filterwarnings("ignore", message="The inplace keyword", module="trackpy")
        if minmass is None:
            sample = sorted({0, n_t // 2, n_t - 1})
            frames = [_prepare_frame(frame_at(i), invert, i, op) for i in sample]
            mass_min = _auto_minmass(frames, kwargs)
            report_chosen("minmass", round(mass_min, 4))
        else:
            mass_min = float(minmass)
        for i in range(n_t):
            frame = _prepare_frame(frame_at(i), invert, i, op)
            # filter on mass here: trackpy misaligns the 3D ep_* columns when it filters
            f = trackpy.locate(frame, minmass=-np.inf, **kwargs)
            f = f[f["mass"].to_numpy() > mass_min]
            if len(f):
                f.insert(0, "t", np.int64(i))
                found.append(f)
    return _spots_table(found, pos_cols, feature_cols, sp, frame_interval, mass_min)


def _locate_kwargs(
    diameter: float,
    separation: float | None,
    percentile: float,
    noise_size: float,
    max_size: float | None,
    sp: tuple[float, ...] | None,
    n_sp: int,
    op: str,
) -> tuple[dict[str, Any], bool]:
    """Check ``locate_spots``' settings; return trackpy's ``locate`` keywords and anisotropy."""
    if int(diameter) != diameter or diameter < 3 or diameter % 2 == 0:
        raise ValueError(
            f"{op}: diameter must be an odd whole number of pixels >= 3; got {diameter} "
            f"(try {_odd(max(diameter, 3))})"
        )
    if not 0 <= percentile <= 100:
        raise ValueError(f"{op}: percentile must be between 0 and 100; got {percentile}")
    if noise_size <= 0:
        raise ValueError(f"{op}: noise_size must be > 0 pixels; got {noise_size}")
    anisotropic = sp is not None and max(sp) != min(sp)
    diam = _per_axis(float(diameter), sp, n_sp)
    kwargs: dict[str, Any] = {
        "diameter": tuple(_odd(d) for d in diam) if anisotropic else int(diameter),
        "percentile": float(percentile),
        "noise_size": _per_axis(float(noise_size), sp, n_sp),
        "separation": (
            _per_axis(float(separation), sp, n_sp)
            if separation is not None
            else (tuple(_odd(d) + 1 for d in diam) if anisotropic else None)
        ),
    }
    if max_size is not None:
        if anisotropic:
            raise ValueError(f"{op}: max_size cannot be used on anisotropic 3D stacks")
        kwargs["maxsize"] = float(max_size)
    return kwargs, anisotropic


def _spots_table(
    found: list[pd.DataFrame],
    pos_cols: list[str],
    feature_cols: list[str],
    sp: tuple[float, ...] | None,
    frame_interval: float | None,
    mass_min: float,
) -> pd.DataFrame:
    """Return ``locate_spots``' table from each frame's spots (with ``t``).

    Built column by column, sorted by ``t, (z), y, x``: one column is copied
    at a time, not the whole table (a concatenated, reindexed and sorted copy
    each held 72 bytes a spot at once).
    """
    cols = ["t", *pos_cols, *feature_cols]
    keys = [_joined(found, c) for c in ["t", *pos_cols]]
    order = np.lexsort(keys[::-1])
    data = {c: k[order] for c, k in zip(["t", *pos_cols], keys, strict=True)}
    del keys
    for c in feature_cols:
        data[c] = _joined(found, c)[order]
    spots = pd.DataFrame(data, columns=cols, copy=False)
    spots["t"] = spots["t"].astype(np.int64)
    if sp is not None:
        for c, s in zip(pos_cols, sp, strict=True):
            spots[f"{c}_physical"] = spots[c] * s
        if frame_interval is not None:
            spots["t_physical"] = spots["t"] * frame_interval
    spots.attrs["minmass"] = mass_min
    return spots


def _joined(found: list[pd.DataFrame], column: str) -> np.ndarray:
    """One column of every table in ``found``, end to end (NaN where a table lacks it)."""
    parts = [
        f[column].to_numpy() if column in f.columns else np.full(len(f), np.nan) for f in found
    ]
    return np.concatenate(parts) if parts else np.empty(0, np.float64)


keep_old_default("track.locate_spots", diameter=7)


# --- linking -------------------------------------------------------------------------------


def _detections(spots: pd.DataFrame, op: str) -> tuple[pd.DataFrame, list[str]]:
    """Check a spots table; return it with a ``t`` column and a clean index."""
    if not isinstance(spots, pd.DataFrame):
        raise ValueError(f"{op} expects a spots table (pandas DataFrame); got {type(spots)}")
    det = spots
    if "t" not in det.columns and "frame" in det.columns:  # a trackpy table
        det = det.rename(columns={"frame": "t"})
    missing = [c for c in ("t", "y", "x") if c not in det.columns]
    if missing:
        raise ValueError(
            f"{op}: the spots table has no column(s) {', '.join(missing)}; "
            "expected t, (z), y, x (e.g. from track.locate_spots)"
        )
    pos_cols = position_columns(det)
    if len(det):
        values = det[["t", *pos_cols]].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{op}: the spots table has missing (NaN) times or positions")
        if (values[:, 0] != np.round(values[:, 0])).any() or values[:, 0].min() < 0:
            raise ValueError(f"{op}: the t column must hold frame numbers (0, 1, 2...)")
    if not isinstance(det.index, pd.RangeIndex) or det.index.start != 0 or det.index.step != 1:
        det = det.reset_index(drop=True)
    return det, pos_cols


def _check_link_params(
    search_range: float, memory: int, adaptive_stop: float | None, adaptive_step: float, op: str
) -> None:
    if not search_range > 0:
        raise ValueError(f"{op}: search_range must be > 0 pixels; got {search_range}")
    if int(memory) != memory or memory < 0:
        raise ValueError(f"{op}: memory must be a whole number of frames >= 0; got {memory}")
    if adaptive_stop is not None and not 0 < adaptive_stop < search_range:
        raise ValueError(
            f"{op}: adaptive_stop must be > 0 and smaller than search_range ({search_range}); "
            f"got {adaptive_stop}"
        )
    if not 0 < adaptive_step < 1:
        raise ValueError(f"{op}: adaptive_step must be between 0 and 1; got {adaptive_step}")


def _link(
    det: pd.DataFrame,
    pos_cols: list[str],
    *,
    search_range: float,
    memory: int,
    adaptive_stop: float | None,
    adaptive_step: float,
    spacing: Sequence[float] | None,
    op: str,
    hint: str = _SPOT_HINT,
) -> np.ndarray:
    """Run ``trackpy.link``; return the trajectory id of each row of ``det``.

    Frames with many detections are linked in spatial tiles
    (:mod:`napari_fbias.ops.link_tiles`), which bounds trackpy's memory; the
    number of tiles and of links the tiles disagreed on are reported as
    chosen values (``link_tiles``, ``link_tile_disagreements``).
    """
    link_one, reach = _linker(
        pos_cols,
        search_range=search_range,
        memory=memory,
        adaptive_stop=adaptive_stop,
        adaptive_step=adaptive_step,
        spacing=spacing,
        op=op,
        hint=hint,
    )
    return report_tiles(link_in_tiles(det, pos_cols, link_one, reach)).particle


def report_tiles(done: TiledLinks) -> TiledLinks:
    """Report how a table was linked in tiles (chosen values); return ``done``."""
    if done.tiles > 1:
        report_chosen("link_tiles", done.tiles)
        report_chosen("link_tile_disagreements", done.dropped)
    return done


def _linker(
    pos_cols: list[str],
    *,
    search_range: float,
    memory: int,
    adaptive_stop: float | None,
    adaptive_step: float,
    spacing: Sequence[float] | None,
    op: str,
    hint: str = _SPOT_HINT,
) -> tuple[Callable[[pd.DataFrame], np.ndarray], float]:
    """Return ``link_one`` (``trackpy.link`` on one table: a track id per row) and its reach.

    The reach is the largest distance of one link along y or x, in pixels.
    """
    import trackpy
    from trackpy.linking import SubnetOversizeException

    trackpy.quiet()
    sr = _per_axis(float(search_range), spacing, len(pos_cols))
    stop: Any = adaptive_stop
    if adaptive_stop is not None and isinstance(sr, tuple):
        stop = np.asarray(sr) * (float(adaptive_stop) / float(search_range))

    def link_one(table: pd.DataFrame) -> np.ndarray:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The inplace keyword", module="trackpy")
                linked = trackpy.link(
                    table[["t", *pos_cols]],
                    sr,
                    pos_columns=pos_cols,
                    t_column="t",
                    memory=int(memory),
                    adaptive_stop=stop,
                    adaptive_step=float(adaptive_step),
                )
        except SubnetOversizeException as exc:
            raise TrackingError(
                f"{op}: too many possible links between crowded detections with "
                f"search_range={search_range} ({exc}); {hint}"
            ) from exc
        particle = np.empty(len(table), np.int64)
        particle[linked.index.to_numpy()] = linked["particle"].to_numpy()
        return particle

    reach = max(sr[-2:]) if isinstance(sr, tuple) else float(sr)
    return link_one, reach


def _keep_long(particle: np.ndarray, min_length: int) -> np.ndarray | None:
    """Rows of trajectories with at least ``min_length`` detections (None: all)."""
    if min_length <= 1:
        return None
    _, inverse, counts = np.unique(particle, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= min_length
    return None if keep.all() else keep


def _carried(det: pd.DataFrame) -> list[str]:
    return [c for c in det.columns if c not in _DERIVED]


def _tracks_from(
    det: pd.DataFrame,
    particle: np.ndarray,
    min_length: int,
    spacing: tuple[float, ...] | None,
    frame_interval: float | None,
    consume: bool = False,
) -> pd.DataFrame:
    keep = _keep_long(particle, int(min_length))
    extra = _carried(det)
    if keep is not None:
        det = det.loc[keep]
        particle = particle[keep]
    return build_tracks(
        det,
        particle,
        extra=extra,
        spacing=spacing,
        frame_interval=frame_interval,
        consume=consume,
    )


@register_op("track.link_spots", category="track", spatial=False)
def link_spots(
    spots: Spots,
    *,
    search_range: Annotated[float, {"min": 0.1, "max": 1000.0, "step": 0.5}] = 6.0,
    memory: Annotated[int, {"min": 0, "max": 100}] = 0,
    adaptive_stop: Annotated[float | None, {"min": 0.0}] = None,
    adaptive_step: Annotated[float, {"min": 0.01, "max": 0.99, "step": 0.01}] = 0.95,
    min_length: Annotated[int, {"min": 1}] = 1,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Tracks:
    """Link spots into tracks over time (trackpy).

    Parameters
    ----------
    spots : Spots
        Spots table with ``t``, ``(z)``, ``y``, ``x`` (e.g. from locate spots).
    search_range : float
        Largest distance (pixels) a spot moves between two frames.
    memory : int
        Frames a spot may disappear for and still continue its track.
    adaptive_stop : float, optional
        Smallest search range (pixels) to retry with where spots are crowded.
        Empty = no retry: crowded spots give an error saying what to change.
    adaptive_step : float
        Factor by which the search range shrinks on each retry.
    min_length : int
        Drop tracks with fewer detections than this.
    axes : str
        Axes of the movie the spots come from (filled by the pipeline).
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline).

    Returns
    -------
    Tracks
        ``track_id, t, (z), y, x`` then the spot columns, ``speed`` and track
        features (see :func:`napari_fbias.ops.track_features.build_tracks`).

    Raises
    ------
    TrackingError
        When spots are too crowded for ``search_range`` (trackpy's
        ``SubnetOversizeException``), with what to change.
    """
    return _link_spots(
        spots,
        search_range=search_range,
        memory=memory,
        adaptive_stop=adaptive_stop,
        adaptive_step=adaptive_step,
        min_length=min_length,
        axes=axes,
        spacing=spacing,
    )


def _link_spots(
    spots: pd.DataFrame,
    *,
    search_range: float = 6.0,
    memory: int = 0,
    adaptive_stop: float | None = None,
    adaptive_step: float = 0.95,
    min_length: int = 1,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
    consume: bool = False,
) -> pd.DataFrame:
    """:func:`link_spots`, with ``consume`` for a caller whose spots table is its own.

    With ``consume`` the table is emptied as the tracks table is built
    (:func:`~napari_fbias.ops.track_features.build_tracks`).
    """
    op = "track.link_spots"
    _check_link_params(search_range, memory, adaptive_stop, adaptive_step, op)
    det, pos_cols = _detections(spots, op)
    frame_interval, sp = _split_spacing(spacing, axes, pos_cols, op)
    if len(det) == 0:
        return empty_tracks(pos_cols, _carried(det), spacing=sp, frame_interval=frame_interval)
    particle = _link(
        det,
        pos_cols,
        search_range=search_range,
        memory=memory,
        adaptive_stop=adaptive_stop,
        adaptive_step=adaptive_step,
        spacing=sp,
        op=op,
    )
    return _tracks_from(det, particle, min_length, sp, frame_interval, consume=consume)


@register_op(
    "track.track_spots",
    category="track",
    spatial=False,
    memory=(16, 0),
)
def track_spots(
    image: Image,
    *,
    diameter: Annotated[int | None, {"min": 3, "max": 99, "step": 2}] = None,
    minmass: Annotated[float | None, {"min": 0.0}] = None,
    separation: Annotated[float | None, {"min": 0.0}] = None,
    percentile: Annotated[float, {"min": 0.0, "max": 100.0}] = 64.0,
    search_range: Annotated[float, {"min": 0.1, "max": 1000.0, "step": 0.5}] = 6.0,
    memory: Annotated[int, {"min": 0, "max": 100}] = 2,
    adaptive_stop: Annotated[float | None, {"min": 0.0}] = None,
    min_length: Annotated[int, {"min": 1}] = 1,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Tracks:
    """Detect spots and link them into tracks (trackpy), in one step.

    Parameters
    ----------
    image : Image
        Movie ``(t, y, x)`` or ``(t, z, y, x)``.
    diameter : int, optional
        Spot size in pixels: an odd number a bit larger than the spots;
        empty = automatic, from the spot size measured on the movie.
    minmass : float, optional
        Minimum total brightness of a spot; empty = automatic, from the noise.
    separation : float, optional
        Minimum distance between two spots, in pixels (default: diameter + 1).
    percentile : float
        A spot's peak must be brighter than this percentile of the frame.
    search_range : float
        Largest distance (pixels) a spot moves between two frames.
    memory : int
        Frames a spot may disappear (blink) for and still continue its track.
    adaptive_stop : float, optional
        Smallest search range (pixels) to retry with where spots are crowded.
        Empty = no retry: crowded spots give an error saying what to change.
    min_length : int
        Drop tracks with fewer detections than this.
    axes : str
        Axes of the movie, e.g. ``"tyx"`` (filled by the pipeline).
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline).

    Returns
    -------
    Tracks
        As from link spots.
    """
    spots = locate_spots(
        image,
        diameter=diameter,
        minmass=minmass,
        separation=separation,
        percentile=percentile,
        axes=axes,
        spacing=spacing,
    )
    return _link_spots(
        spots,
        search_range=search_range,
        memory=memory,
        adaptive_stop=adaptive_stop,
        min_length=min_length,
        axes=axes,
        spacing=spacing,
        consume=True,  # the spots table is this step's own: emptied as the tracks are built
    )


keep_old_default("track.track_spots", diameter=7)


# --- label-based tracking --------------------------------------------------------------


def _label_frame(frame: np.ndarray, t: int, op: str) -> np.ndarray:
    if frame.dtype.kind not in "iu":
        hint = " (a yes/no mask: label it first)" if frame.dtype == bool else ""
        raise ValueError(f"{op}: labels must hold integer object ids; got {frame.dtype}{hint}")
    if frame.dtype.kind == "i" and frame.size and frame.min() < 0:
        raise ValueError(f"{op}: frame t={t} of the labels has negative object ids")
    return frame


def _objects(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object ids (sorted), areas (pixels) and centroids (n, ndim) of one labels frame."""
    ids, inverse, counts = np.unique(frame.ravel(), return_inverse=True, return_counts=True)
    cents = []
    for ax, n in enumerate(frame.shape):
        shape = [1] * frame.ndim
        shape[ax] = n
        coord = np.broadcast_to(np.arange(n, dtype=np.float64).reshape(shape), frame.shape)
        cents.append(np.bincount(inverse, weights=coord.ravel()) / counts)
    centroids = np.stack(cents, axis=1)
    fg = ids > 0
    return ids[fg].astype(np.int64), counts[fg].astype(np.int64), centroids[fg]


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(label in a, label in b, overlapping pixels)`` of two labels frames."""
    both = (a > 0) & (b > 0)
    la = a[both].astype(np.int64)
    lb = b[both].astype(np.int64)
    if la.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    base = int(lb.max()) + 1
    keys, inter = np.unique(la * base + lb, return_counts=True)
    return keys // base, keys % base, inter


def _match_overlap(
    prev: np.ndarray,
    prev_area: dict[int, int],
    cand_prev: dict[int, int],
    cur: np.ndarray,
    cur_area: dict[int, int],
    free_cur: set[int],
    min_overlap: float,
) -> list[tuple[int, int]]:
    """Match candidate labels of ``prev`` to free ones of ``cur`` (Hungarian, max total IoU)."""
    from scipy.optimize import linear_sum_assignment

    pa, pb, inter = _overlaps(prev, cur)
    rows: dict[int, int] = {}
    cols: dict[int, int] = {}
    entries: list[tuple[int, int, float]] = []
    for a, b, n in zip(pa.tolist(), pb.tolist(), inter.tolist(), strict=True):
        if a not in cand_prev or b not in free_cur:
            continue
        iou = n / (prev_area[a] + cur_area[b] - n)
        if iou >= min_overlap:
            entries.append((a, b, iou))
    if not entries:
        return []
    for a in sorted({e[0] for e in entries}):
        rows[a] = len(rows)
    for b in sorted({e[1] for e in entries}):
        cols[b] = len(cols)
    gain = np.zeros((len(rows), len(cols)))
    for a, b, iou in entries:
        gain[rows[a], cols[b]] = iou
    r, c = linear_sum_assignment(gain, maximize=True)
    row_label = list(rows)
    col_label = list(cols)
    return [(row_label[i], col_label[j]) for i, j in zip(r, c, strict=True) if gain[i, j] > 0]


#: Least fraction of an object inside an object of the previous frame for it to be a
#: daughter of that object (division detection).
DAUGHTER_INSIDE = 0.5


def _daughters(
    prev: np.ndarray,
    cur: np.ndarray,
    cur_area: dict[int, int],
    pairs: list[tuple[int, int]],
    free: set[int],
) -> dict[int, list[int]]:
    """Divisions between two consecutive frames: mother label -> its extra daughters.

    A mother is an object of ``prev`` that continues into ``cur`` (a matched
    pair) and also holds at least :data:`DAUGHTER_INSIDE` of another, still
    free object of ``cur``: that object is its second daughter.
    """
    matched = {a for a, _ in pairs}
    best: dict[int, tuple[float, int]] = {}  # free object -> (fraction inside, mother)
    for a, b, n in zip(*_overlaps(prev, cur), strict=True):
        a, b = int(a), int(b)
        if a in matched and b in free:
            frac = int(n) / cur_area[b]
            if frac >= DAUGHTER_INSIDE and frac > best.get(b, (0.0, 0))[0]:
                best[b] = (frac, a)
    out: dict[int, list[int]] = {}
    for b, (_, a) in sorted(best.items()):
        out.setdefault(a, []).append(b)
    return out


def _link_by_overlap(
    frames: Iterable[np.ndarray],
    min_overlap: float,
    memory: int,
    op: str,
    divisions: bool = False,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray, dict[int, int]]:
    """Objects of every frame, the track key of each (frame by frame, ids sorted), and parents.

    ``frames`` gives the labels frames in order (:func:`.track_chunks.iter_frames`:
    numpy in memory, a lazy movie a few frames at a time); only the current
    frame and the ``memory + 1`` before it are kept. With ``divisions``, an
    object of the previous frame that continues and also holds a second,
    unmatched object (:func:`_daughters`) divides: its track
    ends, both objects start new tracks, and ``parents`` maps each daughter's
    track key to the mother's.
    """
    objects: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    keys: list[np.ndarray] = []
    ends_at: dict[int, dict[int, int]] = {}  # frame -> {label at that frame: track key}
    cache: dict[int, np.ndarray] = {}
    parents: dict[int, int] = {}
    next_key = 0
    for t, frame in enumerate(frames):
        cur = _label_frame(frame, t, op)
        ids, areas, cents = _objects(cur)
        objects.append((ids, areas, cents))
        cur_area = dict(zip(ids.tolist(), areas.tolist(), strict=True))
        free = set(cur_area)
        assigned: dict[int, int] = {}
        for back in range(1, memory + 2):
            tp = t - back
            if tp < 0 or not free:
                break
            cand = ends_at.get(tp)
            if not cand:
                continue
            p_ids, p_areas, _ = objects[tp]
            prev_area = dict(zip(p_ids.tolist(), p_areas.tolist(), strict=True))
            pairs = _match_overlap(cache[tp], prev_area, cand, cur, cur_area, free, min_overlap)
            for a, b in pairs:
                assigned[b] = cand.pop(a)
                free.discard(b)
            if divisions and back == 1:
                split = _daughters(cache[tp], cur, cur_area, pairs, free)
                for a, b in pairs:
                    if a in split:
                        mother = assigned[b]
                        for daughter in [b, *split[a]]:
                            assigned[daughter] = next_key
                            parents[next_key] = mother
                            free.discard(daughter)
                            next_key += 1
        frame_keys = np.empty(len(ids), np.int64)
        for i, b in enumerate(ids.tolist()):
            if b not in assigned:
                assigned[b] = next_key
                next_key += 1
            frame_keys[i] = assigned[b]
        keys.append(frame_keys)
        ends_at[t] = dict(zip(ids.tolist(), frame_keys.tolist(), strict=True))
        cache[t] = cur
        for old in [f for f in cache if f < t - memory]:
            del cache[old]
            ends_at.pop(old, None)
    return objects, (np.concatenate(keys) if keys else np.empty(0, np.int64)), parents


@register_op(
    "track.track_labels",
    category="track",
    spatial=False,
    memory=(20, 0),
    chunked=track_labels_chunks,
)
def track_labels(
    labels: Labels,
    *,
    method: Literal["overlap", "centroid"] = "overlap",
    min_overlap: Annotated[float, {"min": 0.01, "max": 1.0, "step": 0.05}] = 0.2,
    search_range: Annotated[float, {"min": 0.1, "max": 1000.0, "step": 0.5}] = 15.0,
    memory: Annotated[int, {"min": 0, "max": 100}] = 0,
    min_length: Annotated[int, {"min": 1}] = 1,
    divisions: bool = False,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Tracks:
    """Link segmented objects over time into tracks.

    Parameters
    ----------
    labels : Labels
        Labels movie ``(t, y, x)`` or ``(t, z, y, x)`` (0 = background). A
        lazy (dask) movie is read a few frames at a time, never whole
        (:mod:`napari_fbias.ops.track_chunks`): at most one frame being read
        plus the ``memory + 1`` frames before it are in memory, so one frame
        (not the movie) must fit.
    method : {'overlap', 'centroid'}
        How objects are matched between frames: by overlap or by centroid distance.
        ``overlap``: an object continues the track of the object it overlaps
        most in the previous frame (best total overlap, one-to-one);
        ``centroid``: nearest centroids within search_range (trackpy).
    min_overlap : float
        Overlap method: least intersection-over-union (0-1) linking two objects.
    search_range : float
        Centroid method: largest move (pixels) of an object between two frames.
    memory : int
        Frames an object may be missing for and still continue its track.
    min_length : int
        Drop tracks with fewer detections than this.
    divisions : bool
        Overlap method: detect cell divisions. An object that continues into
        the next frame and also holds half or more of another new object
        divides: its track ends and both objects start daughter tracks, whose
        ``parent_track_id`` names it (written to the CTC and GEFF outputs).
    axes : str
        Axes of the labels, e.g. ``"tyx"`` (filled by the pipeline).
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline).

    Returns
    -------
    Tracks
        ``track_id, t, (z), y, x`` (object centroid, pixels), ``label`` (the
        object's id in that frame: use :func:`relabel_by_track` to colour the
        labels by track), ``area`` (pixels), ``area_physical`` with spacing,
        then ``speed`` and track features; with ``divisions``, also
        ``parent_track_id`` (0: no mother in the table).
    """
    op = "track.track_labels"
    if method not in ("overlap", "centroid"):
        raise ValueError(f"{op}: method must be 'overlap' or 'centroid'; got {method!r}")
    if not 0 < min_overlap <= 1:
        raise ValueError(f"{op}: min_overlap must be in (0, 1]; got {min_overlap}")
    _check_link_params(search_range, memory, None, 0.95, op)
    has_t, n_sp = _movie_layout(np.ndim(labels), axes, op, "labels")
    if math.prod(np.shape(labels)) == 0:
        raise ValueError(f"{op}: the labels are empty (shape {tuple(np.shape(labels))})")
    pos_cols = ["z", "y", "x"][-n_sp:]
    frame_interval, sp = _split_spacing(spacing, axes, pos_cols, op)
    n_t = int(np.shape(labels)[0]) if has_t else 1
    if divisions and method != "overlap":
        raise ValueError(f"{op}: divisions are detected with method='overlap' only")
    frames = iter_frames(labels, has_t)
    parents: dict[int, int] = {}
    if method == "overlap":
        objects, particle, parents = _link_by_overlap(
            frames, float(min_overlap), int(memory), op, divisions=bool(divisions)
        )
    else:
        objects = [_objects(_label_frame(f, t, op)) for t, f in enumerate(frames)]
    n_obj = [len(o[0]) for o in objects]
    columns: dict[str, Any] = {"t": np.repeat(np.arange(n_t, dtype=np.int64), n_obj)}
    cents = np.concatenate([o[2] for o in objects]) if sum(n_obj) else np.empty((0, n_sp))
    for k, c in enumerate(pos_cols):
        columns[c] = cents[:, k]
    columns["label"] = np.concatenate([o[0] for o in objects])
    columns["area"] = np.concatenate([o[1] for o in objects])
    if sp is not None:
        columns["area_physical"] = columns["area"] * float(np.prod(sp))
    det = pd.DataFrame(columns)
    if len(det) == 0:
        return empty_tracks(pos_cols, _carried(det), spacing=sp, frame_interval=frame_interval)
    if method == "centroid":
        particle = _link(
            det,
            pos_cols,
            search_range=search_range,
            memory=memory,
            adaptive_stop=None,
            adaptive_step=0.95,
            spacing=sp,
            op=op,
            hint="lower search_range or use method='overlap'",
        )
    tracks = _tracks_from(det, particle, min_length, sp, frame_interval)
    if divisions:
        tracks = _with_parents(tracks, det, particle, parents)
    return tracks


def _with_parents(
    tracks: pd.DataFrame, det: pd.DataFrame, particle: np.ndarray, parents: dict[int, int]
) -> pd.DataFrame:
    """Add ``parent_track_id``: the track id of each track's mother (0: none, or dropped)."""
    frame_label = zip(det["t"].tolist(), det["label"].tolist(), strict=True)
    key_of = dict(zip(frame_label, particle.tolist(), strict=True))
    rows = zip(tracks["t"].tolist(), tracks["label"].tolist(), strict=True)
    keys = [key_of[k] for k in rows]
    track_of_key = dict(zip(keys, tracks["track_id"].tolist(), strict=True))
    mother = [track_of_key.get(parents.get(k, -1), 0) for k in keys]
    out = tracks.copy()
    out["parent_track_id"] = np.asarray(mother, dtype=np.int64)
    out.attrs = dict(tracks.attrs)
    return out


def relabel_by_track(labels: Any, tracks: pd.DataFrame) -> np.ndarray:
    """Recolour a labels movie so that each object carries its track id.

    Parameters
    ----------
    labels : array-like
        The labels movie the tracks were made from (``(t, y, x)`` or
        ``(t, z, y, x)``; a single frame is taken as t = 0).
    tracks : pandas.DataFrame
        Tracks with ``track_id``, ``t`` and ``label`` columns (from
        ``track.track_labels``).

    Returns
    -------
    numpy.ndarray
        ``int32`` array of the same shape: each object's pixels hold its
        ``track_id``; objects that are in no track become background (0).

    Raises
    ------
    ValueError
        If the tracks have no ``label`` column or do not fit the labels.
    """
    op = "relabel_by_track"
    for col in ("track_id", "t", "label"):
        if col not in tracks.columns:
            raise ValueError(
                f"{op}: the tracks have no {col!r} column; relabelling needs tracks made from "
                "labels (track.track_labels)"
            )
    arr = np.asarray(labels)
    n_sp = 3 if "z" in tracks.columns else 2
    if arr.ndim == n_sp:
        movie = arr[np.newaxis]
    elif arr.ndim == n_sp + 1:
        movie = arr
    else:
        raise ValueError(
            f"{op}: labels with {arr.ndim} dimensions do not fit {n_sp}D tracks; expected "
            f"{n_sp + 1} dimensions (t first)"
        )
    if movie.dtype.kind not in "iu":
        raise ValueError(f"{op}: labels must hold integer object ids; got {movie.dtype}")
    out = np.zeros(movie.shape, np.int32)
    t_all = tracks["t"].to_numpy().astype(np.int64)
    if len(t_all) and (t_all.min() < 0 or t_all.max() >= movie.shape[0]):
        raise ValueError(
            f"{op}: the tracks reach frame {int(t_all.max())} but the labels have "
            f"{movie.shape[0]} frame(s)"
        )
    lab_all = tracks["label"].to_numpy().astype(np.int64)
    tid_all = tracks["track_id"].to_numpy().astype(np.int64)
    for t in np.unique(t_all).tolist():
        sel = t_all == t
        frame = movie[t]
        top = int(frame.max()) if frame.size else 0
        lut = np.zeros(max(top, int(lab_all[sel].max())) + 1, np.int32)
        lut[lab_all[sel]] = tid_all[sel]
        out[t] = lut[frame]
    return out if arr.ndim == n_sp + 1 else out[0]
