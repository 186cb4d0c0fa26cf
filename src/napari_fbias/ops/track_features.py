"""Tracks tables: building them from linked detections, per-track features, MSD.

A *tracks table* (:data:`napari_fbias.ops.types.Tracks`) has one row per
detection, the napari Tracks columns first -- ``track_id, t, (z), y, x`` --
sorted by ``(track_id, t)``, positions in pixels. Track ids start at 1 and are
numbered by first appearance (frame, then z, y, x), so the same detections
always get the same ids whatever order they came in. Tracks may skip frames
(a spot missing for a frame or two and bridged by ``memory``).

Nothing here imports Qt or napari.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FEATURE_COLUMNS",
    "build_tracks",
    "empty_tracks",
    "msd",
    "position_columns",
    "track_features",
]

#: Per-track features broadcast to every row of a tracks table (pixel units).
FEATURE_COLUMNS: tuple[str, ...] = ("track_length", "displacement", "mean_speed", "straightness")


def position_columns(df: pd.DataFrame) -> list[str]:
    """Spatial position columns of a spots or tracks table: ``z, y, x`` or ``y, x``."""
    return ["z", "y", "x"] if "z" in df.columns else ["y", "x"]


def _physical_columns(pos_cols: Sequence[str]) -> list[str]:
    return [f"{c}_physical" for c in pos_cols] + [
        "t_physical",
        "speed_physical",
        "displacement_physical",
        "mean_speed_physical",
    ]


def empty_tracks(
    pos_cols: Sequence[str],
    extra: Sequence[str] = (),
    *,
    spacing: Sequence[float] | None = None,
    frame_interval: float | None = None,
) -> pd.DataFrame:
    """Return a tracks table with no rows and the columns a full one would have.

    Parameters
    ----------
    pos_cols : sequence of str
        ``("y", "x")`` or ``("z", "y", "x")``.
    extra : sequence of str
        Per-detection columns carried over from the input (float).
    spacing, frame_interval
        As for :func:`build_tracks`; physical columns appear when either is set.
    """
    cols: dict[str, Any] = {"track_id": np.empty(0, np.int64), "t": np.empty(0, np.int64)}
    for c in (*pos_cols, *extra, "speed", *FEATURE_COLUMNS):
        cols[c] = np.empty(0, np.int64 if c == "track_length" else np.float64)
    if spacing is not None or frame_interval is not None:
        for c in _physical_columns(pos_cols):
            cols[c] = np.empty(0, np.float64)
    df = pd.DataFrame(cols)
    df.attrs.update(tracks_attrs(pos_cols, spacing, frame_interval))
    return df


def tracks_attrs(
    pos_cols: Sequence[str], spacing: Sequence[float] | None, frame_interval: float | None
) -> dict[str, Any]:
    return {
        "spacing": (
            {c: float(s) for c, s in zip(pos_cols, spacing, strict=True)}
            if spacing is not None
            else None
        ),
        "frame_interval": float(frame_interval) if frame_interval is not None else None,
        "units": {
            "position": "pixel",
            "speed": "pixel/frame",
            "position_physical": "spacing unit",
            "speed_physical": "spacing unit/frame_interval unit",
        },
    }


def build_tracks(
    det: pd.DataFrame,
    particle: np.ndarray,
    *,
    extra: Sequence[str] = (),
    spacing: Sequence[float] | None = None,
    frame_interval: float | None = None,
    consume: bool = False,
) -> pd.DataFrame:
    """Turn linked detections into a tracks table.

    Parameters
    ----------
    det : pandas.DataFrame
        Detections with columns ``t``, ``(z)``, ``y``, ``x`` and the ``extra`` ones.
    particle : numpy.ndarray
        Trajectory id of each row of ``det`` (any integers, e.g. trackpy's
        ``particle``); renumbered here.
    extra : sequence of str
        Columns of ``det`` to carry over, after the positions.
    spacing : sequence of float, optional
        Physical size of a pixel along each position column (``z, y, x`` or
        ``y, x``); adds ``*_physical`` columns.
    frame_interval : float, optional
        Time between frames; adds ``t_physical`` and makes ``speed_physical``
        per unit of time (per frame when None).
    consume : bool
        Take the columns out of ``det`` as they are copied, so that ``det``
        and the tracks table are not both held whole: for a caller that made
        ``det`` and needs it no more (``det`` is left without them).

    Returns
    -------
    pandas.DataFrame
        ``track_id, t, (z), y, x``, the ``extra`` columns, ``speed`` (pixels per
        frame from the previous detection of the track, NaN on a track's first
        row), the per-track :data:`FEATURE_COLUMNS` broadcast to each row
        (``track_length``: number of detections; ``displacement``: start-to-end
        distance in pixels; ``mean_speed``: path length / frames spanned;
        ``straightness``: displacement / path length, NaN for a track that does
        not move) and, with ``spacing`` or ``frame_interval``, the physical
        columns ``z/y/x_physical``, ``t_physical``, ``speed_physical``,
        ``displacement_physical``, ``mean_speed_physical``. ``df.attrs`` holds
        ``spacing``, ``frame_interval`` and ``units``.
    """
    pos_cols = position_columns(det)
    if len(det) == 0:
        return empty_tracks(pos_cols, extra, spacing=spacing, frame_interval=frame_interval)
    t = det["t"].to_numpy().astype(np.int64, copy=False)
    pos = [det[c].to_numpy(dtype=np.float64) for c in pos_cols]
    if consume:
        for c in ("t", *pos_cols):
            del det[c]  # the arrays above hold them
    particle = np.asarray(particle)
    # number tracks by first appearance: frame, then z, y, x of the first detection
    uniq, inverse = np.unique(particle, return_inverse=True)
    first_t = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first_t, inverse, t)
    # the first detection of a track is its row with the smallest t (ties: first row)
    is_first = t == first_t[inverse]
    first_row = np.full(len(uniq), len(t))
    np.minimum.at(first_row, inverse[is_first], np.flatnonzero(is_first))
    keys = [p[first_row] for p in reversed(pos)] + [first_t]
    new_id = np.empty(len(uniq), np.int64)
    new_id[np.lexsort(keys)] = np.arange(1, len(uniq) + 1)
    track_id = new_id[inverse]
    order = np.lexsort((t, track_id))
    track_id = track_id[order]
    t = t[order]
    pos = [p[order] for p in pos]

    extras = {c: (det.pop(c) if consume else det[c]).to_numpy()[order] for c in extra}
    out = track_columns(track_id, t, dict(zip(pos_cols, pos, strict=True)), extras)
    if spacing is not None or frame_interval is not None:
        out.update(physical_columns(track_id, t, pos_cols, pos, spacing, frame_interval))
    df = pd.DataFrame(out, copy=False)  # the arrays are this table's own: no second copy
    df.attrs.update(tracks_attrs(pos_cols, spacing, frame_interval))
    return df


def track_columns(
    track_id: np.ndarray,
    t: np.ndarray,
    pos: dict[str, np.ndarray],
    extras: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Columns of a tracks table (pixel units) from rows sorted by ``(track_id, t)``.

    ``track_id, t``, the positions, the ``extras``, ``speed`` and the
    :data:`FEATURE_COLUMNS`. Every value is per track: rows given a whole
    track at a time (a table on disk, piece by piece) give the same values.
    """
    out: dict[str, np.ndarray] = {"track_id": track_id, "t": t, **pos, **extras}
    core = _track_core(track_id, t, np.stack(list(pos.values()), axis=1), None, 1.0)
    out["speed"] = core["speed"]
    counts = np.diff(np.append(core["starts"], len(t)))
    out["track_length"] = np.repeat(counts, counts)
    for c in ("displacement", "mean_speed", "straightness"):
        out[c] = np.repeat(core[c], counts)
    return out


def physical_columns(
    track_id: np.ndarray,
    t: np.ndarray,
    pos_cols: Sequence[str],
    pos: Sequence[np.ndarray],
    spacing: Sequence[float] | None,
    frame_interval: float | None,
) -> dict[str, np.ndarray]:
    """Return the ``*_physical`` columns of rows sorted by ``(track_id, t)`` (whole tracks)."""
    out: dict[str, np.ndarray] = {}
    scale = np.asarray(spacing if spacing is not None else [1.0] * len(pos_cols), float)
    fi = float(frame_interval) if frame_interval is not None else 1.0
    for c, p, s in zip(pos_cols, pos, scale, strict=True):
        out[f"{c}_physical"] = p * s
    out["t_physical"] = t * fi
    phys = _track_core(track_id, t, np.stack(pos, axis=1), scale, fi)
    counts = np.diff(np.append(phys["starts"], len(t)))
    out["speed_physical"] = phys["speed"]
    out["displacement_physical"] = np.repeat(phys["displacement"], counts)
    out["mean_speed_physical"] = np.repeat(phys["mean_speed"], counts)
    return out


def _track_core(
    track_id: np.ndarray,
    t: np.ndarray,
    pos: np.ndarray,
    scale: np.ndarray | None,
    frame_interval: float,
) -> dict[str, np.ndarray]:
    """Per-row speed and per-track statistics of a table sorted by (track_id, t)."""
    n = len(track_id)
    if scale is not None:
        pos = pos * scale
    same = track_id[1:] == track_id[:-1]
    step = np.full(n, np.nan)
    dt = np.ones(n)
    if n > 1:
        d = np.sqrt(np.sum(np.diff(pos, axis=0) ** 2, axis=1))
        step[1:] = np.where(same, d, np.nan)
        dt[1:] = np.where(same, np.diff(t), 1)
    speed = step / (dt * frame_interval)
    starts = np.flatnonzero(np.r_[True, ~same]) if n else np.empty(0, np.int64)
    ends = np.r_[starts[1:], n] - 1
    path = np.add.reduceat(np.nan_to_num(step), starts) if n else np.empty(0)
    displacement = np.sqrt(np.sum((pos[ends] - pos[starts]) ** 2, axis=1))
    duration = (t[ends] - t[starts]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_speed = np.where(duration > 0, path / (duration * frame_interval), np.nan)
        straightness = np.where(path > 0, displacement / path, np.nan)
    max_speed = np.fmax.reduceat(speed, starts) if n else np.empty(0)
    return {
        "speed": speed,
        "starts": starts,
        "ends": ends,
        "path_length": path,
        "displacement": displacement,
        "duration": duration,
        "mean_speed": mean_speed,
        "straightness": straightness,
        "max_speed": max_speed,
    }


def _sorted_view(tracks: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in ("track_id", "t", "y", "x") if c not in tracks.columns]
    if missing:
        raise ValueError(
            f"{what}: the tracks table has no column(s) {', '.join(missing)}; expected napari "
            "Tracks columns track_id, t, (z), y, x"
        )
    pos_cols = position_columns(tracks)
    tid = tracks["track_id"].to_numpy().astype(np.int64, copy=False)
    t = tracks["t"].to_numpy().astype(np.int64, copy=False)
    pos = np.stack([tracks[c].to_numpy(dtype=np.float64) for c in pos_cols], axis=1)
    if len(tid) > 1 and not (
        np.all(np.diff(tid) >= 0) and np.all((np.diff(tid) > 0) | (np.diff(t) > 0))
    ):
        order = np.lexsort((t, tid))
        tid, t, pos = tid[order], t[order], pos[order]
    dup = (np.diff(tid) == 0) & (np.diff(t) == 0)
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(
            f"{what}: track {tid[i]} has two detections at t={t[i]}; a track has at most one "
            "position per frame"
        )
    return tid, t, pos


def _check_spacing(spacing: Sequence[float] | None, ndim: int, what: str) -> np.ndarray | None:
    if spacing is None:
        return None
    scale = np.asarray(spacing, dtype=np.float64).ravel()
    if scale.size != ndim or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        axes = "z, y, x" if ndim == 3 else "y, x"
        raise ValueError(
            f"{what}: spacing must be {ndim} positive numbers (pixel size along {axes}); "
            f"got {tuple(spacing)}"
        )
    return scale


def _check_interval(frame_interval: float, what: str) -> float:
    fi = float(frame_interval)
    if not np.isfinite(fi) or fi <= 0:
        raise ValueError(f"{what}: frame_interval must be a positive number, got {frame_interval}")
    return fi


def track_features(
    tracks: pd.DataFrame,
    spacing: Sequence[float] | None = None,
    frame_interval: float = 1.0,
) -> pd.DataFrame:
    """Summarise each track of a tracks table in one row.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Tracks table (``track_id, t, (z), y, x`` in pixels; any row order).
    spacing : sequence of float, optional
        Pixel size along ``z, y, x`` (or ``y, x``); adds physical columns.
    frame_interval : float
        Time between two frames; speeds are per this unit of time (per frame
        with the default 1.0).

    Returns
    -------
    pandas.DataFrame
        One row per track, sorted by ``track_id``: ``track_id``, ``t_start``,
        ``t_end``, ``n_points`` (detections), ``duration`` (frames spanned,
        ``t_end - t_start``), ``duration_time`` (``duration * frame_interval``),
        ``path_length`` (pixels, sum of the steps), ``displacement`` (pixels,
        first to last position), ``straightness`` (displacement / path length;
        NaN when the track does not move), ``mean_speed`` (path length / duration
        time; NaN for a single-point track), ``max_speed`` (largest step speed).
        With ``spacing``: ``path_length_physical``, ``displacement_physical``,
        ``mean_speed_physical``, ``max_speed_physical``.

    Raises
    ------
    ValueError
        If columns are missing, a track has two positions in one frame, or the
        spacing / frame interval is invalid.
    """
    what = "track_features"
    fi = _check_interval(frame_interval, what)
    tid, t, pos = _sorted_view(tracks, what)
    scale = _check_spacing(spacing, pos.shape[1], what)
    core = _track_core(tid, t, pos, None, fi)
    starts, ends = core["starts"], core["ends"]
    out: dict[str, Any] = {
        "track_id": tid[starts],
        "t_start": t[starts],
        "t_end": t[ends],
        "n_points": np.diff(np.append(starts, len(t))).astype(np.int64),
        "duration": (t[ends] - t[starts]).astype(np.int64),
        "duration_time": core["duration"] * fi,
    }
    for c in ("path_length", "displacement", "straightness", "mean_speed", "max_speed"):
        out[c] = core[c]
    if scale is not None:
        phys = _track_core(tid, t, pos, scale, fi)
        for c in ("path_length", "displacement", "mean_speed", "max_speed"):
            out[f"{c}_physical"] = phys[c]
    return pd.DataFrame(out)


def msd(
    tracks: pd.DataFrame,
    max_lag: int = 10,
    *,
    spacing: Sequence[float] | None = None,
    frame_interval: float = 1.0,
    per_track: bool = False,
) -> pd.DataFrame:
    """Mean squared displacement of a tracks table, computed directly.

    Every pair of detections of the same track ``lag`` frames apart counts
    once (frames a track skipped just give fewer pairs). Per track this is
    ``trackpy.imsd``; the ensemble MSD pools all pairs of all tracks (trackpy's
    ``emsd`` weights tracks by an estimate of independent measurements
    instead, so it differs slightly).

    Parameters
    ----------
    tracks : pandas.DataFrame
        Tracks table (``track_id, t, (z), y, x`` in pixels).
    max_lag : int
        Largest lag, in frames (>= 1).
    spacing : sequence of float, optional
        Pixel size along ``z, y, x`` (or ``y, x``): the MSD is then in
        squared physical units, else in squared pixels.
    frame_interval : float
        Time between frames, for the ``lag_time`` column.
    per_track : bool
        Return one MSD curve per track (column ``track_id`` first) instead of
        the ensemble average.

    Returns
    -------
    pandas.DataFrame
        Columns ``(track_id,) lag, lag_time, msd, n_pairs``; lags without any
        pair are left out.
    """
    what = "msd"
    if int(max_lag) != max_lag or max_lag < 1:
        raise ValueError(f"{what}: max_lag must be a whole number of frames >= 1, got {max_lag}")
    fi = _check_interval(frame_interval, what)
    tid, t, pos = _sorted_view(tracks, what)
    scale = _check_spacing(spacing, pos.shape[1], what)
    if scale is not None:
        pos = pos * scale
    span = int(t.max() - t.min() + 1) if len(t) else 1
    key = (tid - (tid.min() if len(tid) else 0)) * (span + int(max_lag) + 1) + (
        t - (t.min() if len(t) else 0)
    )
    rows: list[pd.DataFrame] = []
    for lag in range(1, int(max_lag) + 1):
        j = np.searchsorted(key, key + lag)
        j_ok = np.minimum(j, len(key) - 1)
        hit = (j < len(key)) & (key[j_ok] == key + lag)
        if not hit.any():
            continue
        sq = np.sum((pos[j_ok[hit]] - pos[hit]) ** 2, axis=1)
        if per_track:
            ids, inv = np.unique(tid[hit], return_inverse=True)
            n = np.bincount(inv)
            rows.append(
                pd.DataFrame(
                    {
                        "track_id": ids,
                        "lag": lag,
                        "lag_time": lag * fi,
                        "msd": np.bincount(inv, weights=sq) / n,
                        "n_pairs": n.astype(np.int64),
                    }
                )
            )
        else:
            rows.append(
                pd.DataFrame(
                    {
                        "lag": [lag],
                        "lag_time": [lag * fi],
                        "msd": [float(sq.mean())],
                        "n_pairs": [int(hit.sum())],
                    }
                )
            )
    cols = ["track_id"] if per_track else []
    cols += ["lag", "lag_time", "msd", "n_pairs"]
    if not rows:
        return pd.DataFrame({c: np.empty(0, np.float64) for c in cols}).astype(
            {"lag": np.int64, "n_pairs": np.int64, **({"track_id": np.int64} if per_track else {})}
        )
    out = pd.concat(rows, ignore_index=True)
    if per_track:
        out = out.sort_values(["track_id", "lag"], kind="stable", ignore_index=True)
    return out[cols]
