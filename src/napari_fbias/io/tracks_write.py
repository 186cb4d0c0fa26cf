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

A tracks table on disk (:class:`~napari_fbias.io.column_table.ColumnTable`,
rows sorted by ``track_id, t`` like every tracks table) is written without
ever being read whole: the CSV piece by piece, the CTC pieces of tracks from
a scan of its ``track_id`` and ``t`` columns (a row's label is looked up from
the pieces' first rows), and the discs one frame at a time
(:class:`~napari_fbias.io.ctc_masks.DiscMasksOnDisk`). The files are the same
bytes as those of the same rows in a DataFrame.

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
from napari_fbias.io.column_table import ColumnTable
from napari_fbias.io.ctc_masks import (
    DiscMasks,
    DiscMasksOnDisk,
    LabelMasks,
    PieceLabels,
    write_masks,
)
from napari_fbias.io.tables import write_table_csv

__all__ = ["NAPARI_TRACK_COLUMNS", "ctc_track_table", "write_ctc", "write_tracks_csv"]

#: The napari Tracks columns, first in every tracks table and file.
NAPARI_TRACK_COLUMNS: tuple[str, ...] = ("track_id", "t", "z", "y", "x")
_UINT16_MAX = np.iinfo(np.uint16).max
#: Rows of a table on disk read at a time (512 KiB a column of 8 bytes).
READ_ROWS = 65_536


def _check_tracks(tracks: Any, what: str) -> list[str]:
    if not isinstance(tracks, (pd.DataFrame, ColumnTable)):
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
    tracks : pandas.DataFrame or ColumnTable
        Tracks table with ``track_id, t, (z), y, x`` (other columns follow);
        a table on disk is written piece by piece.
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
    return write_table_csv(tracks, path, overwrite=overwrite, columns=cols)


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


def _not_sorted(what: str, row: int) -> ValueError:
    return ValueError(
        f"{what}: the tracks table on disk is not sorted by track_id, t (at row {row}); a "
        "table on disk is written as it is sorted"
    )


def piece_steps(
    prev: tuple[int, int] | None, tid: np.ndarray, t: np.ndarray, rows: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """Compare each row of a piece of a tracks table on disk with the row before it.

    ``prev`` is the ``(track_id, t)`` of the row before the piece (None at the
    start); ``rows`` the piece's row numbers (for the error).

    Returns
    -------
    same, step, pt, duplicate
        Whether each row continues the track of the row before, its frame
        step from it, the frames with the previous row's first, and the
        index of the first row in the same frame as the row before (None).

    Raises
    ------
    ValueError
        A row is not sorted by ``track_id, t`` after the one before it.
    """
    ptid = np.r_[prev[0] if prev else tid[0] - 1, tid]
    pt = np.r_[prev[1] if prev else 0, t]
    same = ptid[1:] == ptid[:-1]
    step = pt[1:] - pt[:-1]
    bad = np.flatnonzero((ptid[1:] < ptid[:-1]) | (same & (step < 0)))
    if bad.size:
        raise _not_sorted(what, int(rows[bad[0]]))
    dup = np.flatnonzero(same & (step == 0))
    return same, step, pt, (int(dup[0]) if dup.size else None)


def ctc_track_table_on_disk(
    tracks: ColumnTable, leave_out: np.ndarray | None = None, *, rows: int | None = None
) -> tuple[pd.DataFrame, PieceLabels]:
    """:func:`ctc_track_table` of a table on disk, from one scan of its columns.

    The rows must be sorted by ``track_id, t`` (as every tracks table is).
    What is held is a piece of ``rows`` rows of ``track_id``, ``t`` (and
    ``parent_track_id``) and the CTC tracks themselves -- at most 65 535 of
    them (beyond, the labels do not fit the masks and ``ValueError`` is raised
    once the whole table was checked, as :func:`ctc_track_table` would).

    Parameters
    ----------
    tracks : ColumnTable
        Tracks table on disk.
    leave_out : numpy.ndarray, optional
        Sorted row numbers to leave out (as if those rows were not in the table).
    rows : int, optional
        Rows read at a time (default :data:`READ_ROWS`).

    Returns
    -------
    table : pandas.DataFrame
        As :func:`ctc_track_table`.
    row_label : PieceLabels
        Gives the CTC label of rows (by their row number in ``tracks``).
    """
    what = "write_ctc"
    _check_tracks(tracks, what)
    n = len(tracks)
    rows = max(1, int(rows or READ_ROWS))
    has_parent = "parent_track_id" in tracks.columns
    cap = _UINT16_MAX + 1  # pieces kept: more cannot get labels that fit
    starts: list[np.ndarray] = []  # per piece: first row, track id, begin, first of its track
    tids: list[np.ndarray] = []
    begins: list[np.ndarray] = []
    firsts: list[np.ndarray] = []
    ends: list[np.ndarray] = []  # t of the last row of each piece (of the first ``cap``)
    n_pieces = 0
    n_extra = 0
    tid_min = t_min = tid_max = None
    duplicate: tuple[int, int] | None = None
    daughters: list[tuple[np.ndarray, np.ndarray]] = []  # (track id, parent) of first rows
    track_ids: list[np.ndarray] = []  # with parents: every track id, to find the parents
    prev: tuple[int, int] | None = None  # track id, t of the last row read
    for a in range(0, n, rows):
        b = min(n, a + rows)
        tid = tracks.column("track_id", a, b).astype(np.int64)
        t = tracks.column("t", a, b).astype(np.int64)
        row = np.arange(a, b, dtype=np.int64)
        par = tracks.column("parent_track_id", a, b) if has_parent else None
        if leave_out is not None and len(leave_out):
            keep = ~np.isin(row, leave_out, assume_unique=True)
            tid, t, row = tid[keep], t[keep], row[keep]
            par = par[keep] if par is not None else None
        if not len(tid):
            continue
        tid_min = int(tid.min()) if tid_min is None else min(tid_min, int(tid.min()))
        t_min = int(t.min()) if t_min is None else min(t_min, int(t.min()))
        tid_max = int(tid.max()) if tid_max is None else max(tid_max, int(tid.max()))
        same, step, pt, i = piece_steps(prev, tid, t, row, what)
        if duplicate is None and i is not None:
            duplicate = (int(tid[i]), int(t[i]))
        new_piece = ~same | (step > 1)
        k = np.flatnonzero(new_piece)
        if n_pieces < cap:  # the pieces that end here: each ends on the row before the next
            ends.append(pt[k if prev is not None else k[1:]][: cap - n_pieces])
        first = ~same[k]
        n_extra += int(np.count_nonzero(~first))
        if n_pieces < cap:
            take = k[: cap - n_pieces]
            starts.append(row[take])
            tids.append(tid[take])
            begins.append(t[take])
            firsts.append(first[: len(take)])
        n_pieces += len(k)
        if has_parent:
            assert par is not None
            starts_of_tracks = ~same
            p = par[starts_of_tracks]
            with np.errstate(invalid="ignore"):
                has = (p == p) & (p > 0)  # not NaN, not 0
            daughters.append((tid[starts_of_tracks][has], p[has].astype(np.int64)))
            track_ids.append(tid[starts_of_tracks])
        prev = (int(tid[-1]), int(t[-1]))
    if prev is not None:  # the last piece ends on the last row
        ends.append(np.asarray([prev[1]], np.int64))
    empty = np.empty(0, np.int64)
    if tid_min is None:
        table = pd.DataFrame({"label": empty, "begin": empty, "end": empty, "parent": empty})
        return table, PieceLabels(empty, empty)
    assert t_min is not None and tid_max is not None
    if tid_min < 1:
        raise ValueError(f"{what}: track ids must be >= 1; found {tid_min}")
    if t_min < 0:
        raise ValueError(f"{what}: frame numbers (t) must be >= 0; found {t_min}")
    if duplicate is not None:
        raise ValueError(f"{what}: track {duplicate[0]} has two detections at t={duplicate[1]}")
    if has_parent:
        known = np.concatenate(track_ids)
        for d_tid, d_par in daughters:
            missing = ~np.isin(d_par, known)
            if missing.any():
                i = int(np.flatnonzero(missing)[0])
                raise ValueError(
                    f"{what}: track {int(d_tid[i])} has parent track {int(d_par[i])}, which is "
                    "not in the table"
                )
        del known
    top = tid_max + n_extra if n_extra else tid_max
    if top > _UINT16_MAX:
        raise ValueError(
            f"{what}: {top} track labels do not fit the CTC's 16-bit masks (at most {_UINT16_MAX})"
        )
    st, ptid_all = np.concatenate(starts), np.concatenate(tids)
    first_of_track = np.concatenate(firsts)
    labels = np.where(first_of_track, ptid_all, 0)
    labels[~first_of_track] = tid_max + 1 + np.arange(int(np.count_nonzero(~first_of_track)))
    parents = np.zeros(len(st), np.int64)
    parents[1:] = np.where(~first_of_track[1:], labels[:-1], 0)
    if has_parent:
        # a daughter's first piece: its parent is the last piece of the mother track
        d_tid = np.concatenate([d for d, _ in daughters])
        d_par = np.concatenate([p for _, p in daughters])
        last_piece = np.searchsorted(ptid_all, d_par, side="right") - 1
        first_piece = np.searchsorted(ptid_all, d_tid, side="left")
        parents[first_piece] = labels[last_piece]
    table = pd.DataFrame(
        {
            "label": labels,
            "begin": np.concatenate(begins),
            "end": np.concatenate(ends),
            "parent": parents,
        }
    ).sort_values("label", kind="stable", ignore_index=True)
    return table, PieceLabels(st, labels)


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
    tracks : pandas.DataFrame or ColumnTable
        Tracks table (``track_id, t, (z), y, x`` and, with ``labels_t``, ``label``);
        a table on disk (sorted by ``track_id, t``) is read in pieces.
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
    masks: DiscMasks | DiscMasksOnDisk | LabelMasks
    if isinstance(tracks, ColumnTable):  # on disk: never read whole
        table, masks = _ctc_on_disk(labels_t, tracks, shape, radius, spacing)
    elif labels_t is None:
        _check_discs(shape, radius, what)
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


def _check_discs(shape: Sequence[int] | None, radius: float, what: str) -> None:
    """Check what drawing spots as discs needs: the movie's shape and a radius."""
    if shape is None:
        raise ValueError(
            f"{what}: without labels, give the movie shape (t, (z), y, x) so that spots "
            "can be drawn as discs"
        )
    if radius <= 0:
        raise ValueError(f"{what}: radius must be > 0 pixels; got {radius}")


def _ctc_on_disk(
    labels_t: Any,
    tracks: ColumnTable,
    shape: Sequence[int] | None,
    radius: float,
    spacing: Sequence[float] | None,
) -> tuple[pd.DataFrame, DiscMasksOnDisk | LabelMasks]:
    """Return the CTC tracks and masks of a table on disk, checked as :func:`write_ctc` does."""
    what = "write_ctc"
    if labels_t is None:
        _check_discs(shape, radius, what)
        table, row_label = ctc_track_table_on_disk(tracks)
        masks = DiscMasksOnDisk(shape, tracks, row_label, radius, spacing)
        if len(masks.dropped):  # labels of pieces may have changed: paint again
            dropped = masks.dropped
            table, row_label = ctc_track_table_on_disk(tracks, dropped)
            masks = DiscMasksOnDisk(shape, tracks, row_label, radius, spacing, dropped)
        return table, masks
    if "label" not in tracks.columns:
        raise ValueError(
            f"{what}: the tracks have no 'label' column, so they cannot be matched to the "
            "labels; pass labels_t=None and shape=... to draw the spots as discs"
        )
    table, row_label = ctc_track_table_on_disk(tracks)
    return table, LabelMasks(labels_t, tracks, row_label)
