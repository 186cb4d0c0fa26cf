"""Writing tracks: CSV (napari Tracks columns) and the Cell Tracking Challenge format.

Both writers are atomic (everything is written to a temporary sibling that is
renamed into place once complete) and refuse to replace an existing output
unless asked to.

The Cell Tracking Challenge (CTC) *result* format is a folder with

* ``mask000.tif``, ``mask001.tif``, ... -- one ``uint16`` image per frame
  (``mask0000.tif``... when there are more than 1000 frames), 2D or 3D, where
  every object carries the label of its track and 0 is background (made
  frame by frame, frames above 4096 x 4096 pixels tile by tile as tiled
  TIFFs: :mod:`napari_fbias.io.ctc_masks`);
* ``res_track.txt`` -- one line ``L B E P`` per track: label, first frame,
  last frame (zero-based, inclusive) and parent label (0 = none; a daughter
  of a division, whose table row has ``parent_track_id``, names the last
  piece of its mother's track).

A CTC track is present in *every* frame from ``B`` to ``E``. A track of ours
that skips frames (a spot bridged over a blink with ``memory``) is therefore
written as consecutive CTC tracks: the first keeps the ``track_id`` as its
label, each piece after a gap gets a new label (above the largest
``track_id``) whose parent is the piece before it -- which is how the CTC
represents a gap in a track.

Nothing here imports Qt, napari or the ops.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.io.atomic import atomic_dir
from napari_fbias.io.ctc_masks import DiscMasks, LabelMasks, write_masks
from napari_fbias.io.tables import write_table_csv

__all__ = ["NAPARI_TRACK_COLUMNS", "ctc_track_table", "write_ctc", "write_tracks_csv"]

#: The napari Tracks columns, first in every tracks table and file.
NAPARI_TRACK_COLUMNS: tuple[str, ...] = ("track_id", "t", "z", "y", "x")
_UINT16_MAX = np.iinfo(np.uint16).max


def _check_tracks(tracks: Any, what: str) -> list[str]:
    if not isinstance(tracks, pd.DataFrame):
        raise ValueError(f"{what}: tracks must be a table (pandas DataFrame); got {type(tracks)}")
    missing = [c for c in ("track_id", "t", "y", "x") if c not in tracks.columns]
    if missing:
        raise ValueError(
            f"{what}: the tracks table has no column(s) {', '.join(missing)}; expected napari "
            "Tracks columns track_id, t, (z), y, x"
        )
    return [c for c in NAPARI_TRACK_COLUMNS if c in tracks.columns]


def write_tracks_csv(
    path: str | os.PathLike[str], tracks: pd.DataFrame, *, overwrite: bool = False
) -> Path:
    """Write a tracks table as CSV, napari Tracks columns first.

    Parameters
    ----------
    path : path-like
        Destination ``.csv`` file; its folder must exist.
    tracks : pandas.DataFrame
        Tracks table with ``track_id, t, (z), y, x`` (other columns follow).
    overwrite : bool
        Replace an existing file (default: refuse).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If the table lacks the napari Tracks columns.
    """
    first = _check_tracks(tracks, "write_tracks_csv")
    cols = first + [c for c in tracks.columns if c not in first]
    return write_table_csv(tracks[cols], path, overwrite=overwrite)


def ctc_track_table(tracks: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Split tracks into gap-free CTC tracks.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Tracks table (``track_id`` >= 1, ``t`` >= 0; any row order).

    Returns
    -------
    table : pandas.DataFrame
        Columns ``label, begin, end, parent`` (the lines of ``res_track.txt``),
        sorted by label.
    row_label : numpy.ndarray
        The CTC label of each row of ``tracks`` (in the table's row order).

    Raises
    ------
    ValueError
        If track ids are not positive, a track has two rows in one frame, or
        there are more labels than ``uint16`` masks can hold.
    """
    what = "write_ctc"
    _check_tracks(tracks, what)
    tid = tracks["track_id"].to_numpy().astype(np.int64)
    t = tracks["t"].to_numpy().astype(np.int64)
    row_label = np.zeros(len(tid), np.int64)
    if len(tid) == 0:
        empty = np.empty(0, np.int64)
        return pd.DataFrame(
            {"label": empty, "begin": empty, "end": empty, "parent": empty}
        ), row_label
    if tid.min() < 1:
        raise ValueError(f"{what}: track ids must be >= 1; found {int(tid.min())}")
    if t.min() < 0:
        raise ValueError(f"{what}: frame numbers (t) must be >= 0; found {int(t.min())}")
    order = np.lexsort((t, tid))
    st, tt = tid[order], t[order]
    same = st[1:] == st[:-1]
    if np.any(same & (tt[1:] == tt[:-1])):
        i = int(np.flatnonzero(same & (tt[1:] == tt[:-1]))[0])
        raise ValueError(f"{what}: track {st[i]} has two detections at t={tt[i]}")
    new_piece = np.r_[True, ~same | (tt[1:] - tt[:-1] > 1)]
    starts = np.flatnonzero(new_piece)
    ends = np.r_[starts[1:], len(st)] - 1
    first_of_track = np.r_[True, st[starts[1:]] != st[starts[:-1]]]
    labels = np.where(first_of_track, st[starts], 0)
    n_extra = int(np.count_nonzero(~first_of_track))
    labels[~first_of_track] = int(tid.max()) + 1 + np.arange(n_extra)
    parents = np.zeros(len(starts), np.int64)
    parents[1:] = np.where(~first_of_track[1:], labels[:-1], 0)
    if "parent_track_id" in tracks.columns:  # divisions: a daughter's first piece
        parent_of = tracks["parent_track_id"].to_numpy()[order]
        last_piece = dict(zip(st[starts].tolist(), labels.tolist(), strict=True))  # last wins
        for k in np.flatnonzero(first_of_track):
            p = parent_of[starts[k]]
            if p == p and int(p) > 0:  # not NaN, not 0
                if int(p) not in last_piece:
                    raise ValueError(
                        f"{what}: track {st[starts[k]]} has parent track {int(p)}, which is "
                        "not in the table"
                    )
                parents[k] = last_piece[int(p)]
    if labels.max() > _UINT16_MAX:
        raise ValueError(
            f"{what}: {int(labels.max())} track labels do not fit the CTC's 16-bit masks "
            f"(at most {_UINT16_MAX})"
        )
    piece_of_row = np.cumsum(new_piece) - 1
    row_label[order] = labels[piece_of_row]
    table = pd.DataFrame(
        {"label": labels, "begin": tt[starts], "end": tt[ends], "parent": parents}
    ).sort_values("label", kind="stable", ignore_index=True)
    return table, row_label


def write_ctc(
    dest_dir: str | os.PathLike[str],
    labels_t: Any | None,
    tracks: pd.DataFrame,
    *,
    shape: Sequence[int] | None = None,
    radius: float = 3.0,
    spacing: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write tracks in the Cell Tracking Challenge result format.

    Parameters
    ----------
    dest_dir : path-like
        The result folder to create (e.g. ``01_RES``); its parent must exist.
    labels_t : array-like or None
        Labels movie ``(t, y, x)`` or ``(t, z, y, x)`` the tracks were made from
        (tracks with a ``label`` column, from ``track.track_labels``). None for
        spot tracks: each detection is then drawn as a disc (ball in 3D).
    tracks : pandas.DataFrame
        Tracks table (``track_id, t, (z), y, x`` and, with ``labels_t``, ``label``).
    shape : sequence of int, optional
        Movie shape ``(t, (z), y, x)`` for the discs (needed when ``labels_t``
        is None).
    radius : float
        Disc radius in pixels (along the finest axis).
    spacing : sequence of float, optional
        Pixel size along ``(z), y, x``: makes the discs round in physical space.
    overwrite : bool
        Replace an existing ``dest_dir`` (default: refuse).

    Returns
    -------
    pathlib.Path
        The result folder.

    Raises
    ------
    OutputExistsError
        If ``dest_dir`` exists and ``overwrite`` is False.
    ValueError
        If tracks and labels do not fit together (missing ``label`` column, an
        object of the tracks missing from its frame, shapes that differ...).
    """
    what = "write_ctc"
    _check_tracks(tracks, what)
    masks: DiscMasks | LabelMasks
    if labels_t is None:
        if shape is None:
            raise ValueError(
                f"{what}: without labels, give the movie shape (t, (z), y, x) so that spots "
                "can be drawn as discs"
            )
        if radius <= 0:
            raise ValueError(f"{what}: radius must be > 0 pixels; got {radius}")
        _, row_label = ctc_track_table(tracks)
        masks = DiscMasks(shape, tracks, row_label, radius, spacing)
        table, _ = ctc_track_table(tracks)
        if not masks.keep.all():  # labels of pieces may have changed: paint again
            tracks = tracks.loc[masks.keep]
            table, row_label = ctc_track_table(tracks)
            masks = DiscMasks(shape, tracks, row_label, radius, spacing)
    else:
        if "label" not in tracks.columns:
            raise ValueError(
                f"{what}: the tracks have no 'label' column, so they cannot be matched to the "
                "labels; pass labels_t=None and shape=... to draw the spots as discs"
            )
        table, row_label = ctc_track_table(tracks)
        masks = LabelMasks(labels_t, tracks, row_label)
    lines = "".join(f"{r.label} {r.begin} {r.end} {r.parent}\n" for r in table.itertuples())
    with atomic_dir(dest_dir, overwrite=overwrite) as tmp:
        write_masks(tmp, masks)
        (tmp / "res_track.txt").write_text(lines, encoding="ascii")
    return Path(dest_dir)
