"""Chunk-wise spot tracking's tables on disk: spots by frame, tracks column by column.

At 32768 x 32768 a movie's frames hold hundreds of thousands of spots: the
spots table and the tracks table of two million detections take hundreds of
MiB, more than a chunk-wise run's budget. ``track.track_spots`` chunk-wise
(:func:`~napari_fbias.ops.spot_chunks.track_spots_chunks`) therefore keeps
them on disk (:mod:`napari_fbias.io.column_table`) and holds a few 4- or
8-byte numbers per detection at a time:

1. :class:`SpotsOnDisk` appends each block's spots as they come (blocks come
   frame after frame), then sorts each frame by ``(z), y, x`` one column at a
   time: the table ``locate_spots`` makes in memory, sorted by ``t, (z), y, x``.
2. :func:`~napari_fbias.ops.link_tiles.link_sorted_in_tiles` links it a band
   of tiles at a time; each detection gets the row of its track's first
   detection.
3. :func:`tracks_on_disk` numbers the tracks by the rank of those rows (the
   table is sorted by ``t, (z), y, x``: the order of first appearance that
   :func:`~napari_fbias.ops.track_features.build_tracks` numbers by), drops
   the short ones, writes the columns in ``(track_id, t)`` order one at a
   time, then the speed and per-track features whole tracks at a time.

The result equals the in-memory ``track_spots``' table
(``tests/test_spot_tables.py``), except where two detections of one frame
have exactly the same position (the tracks' numbers may then swap).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from napari_fbias.io.column_table import PIECE_ROWS, ColumnTable, ColumnWriter
from napari_fbias.ops.track_features import physical_columns, track_columns, tracks_attrs

__all__ = ["FEATURE_ROWS", "SpotsOnDisk", "tracks_on_disk"]

#: Rows whose speed and track features are computed at a time (whole tracks; about 8 MiB).
FEATURE_ROWS = 32_768


class SpotsOnDisk:
    """A spots table written block by block to disk, then sorted frame by frame.

    Parameters
    ----------
    pos_cols, feature_cols : sequence of str
        The position and feature columns (a block lacking a feature gets NaN,
        as ``track._joined`` gives in memory).
    name : str
        A label for the scratch folder.
    """

    def __init__(self, pos_cols: Sequence[str], feature_cols: Sequence[str], name: str) -> None:
        self.pos_cols = list(pos_cols)
        self.columns = {"t": np.int64, **dict.fromkeys([*pos_cols, *feature_cols], np.float64)}
        self._writer = ColumnWriter(self.columns, name)
        self._name = name
        self._per_frame: list[int] = []

    def add(self, block: pd.DataFrame) -> None:
        """Append one block's spots (all of one frame, frames in order)."""
        if len(block) == 0:
            return
        t = int(block["t"].iloc[0])
        if t < len(self._per_frame) - 1:
            raise RuntimeError(f"spots of frame {t} came after those of a later frame")
        self._per_frame.extend([0] * (t + 1 - len(self._per_frame)))
        self._per_frame[t] += len(block)
        rows = {c: block[c].to_numpy() if c in block.columns else np.nan for c in self.columns}
        n = len(block)
        self._writer.append({c: np.broadcast_to(v, (n,)) for c, v in rows.items()})

    def sorted(self, n_t: int) -> tuple[ColumnTable, np.ndarray]:
        """Return the table sorted by ``t, (z), y, x`` and its frames' first rows (``n_t + 1``)."""
        counts = np.zeros(n_t, np.int64)
        counts[: len(self._per_frame)] = self._per_frame
        starts = np.concatenate([[0], np.cumsum(counts)])
        raw = self._writer.finish()
        frames = list(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True))
        orders = []
        for a, b in frames:
            keys = [raw.column(c, a, b) for c in self.pos_cols]
            orders.append(np.lexsort(keys[::-1]).astype(np.int32))  # stable, as in memory
            del keys
        out = ColumnWriter(self.columns, self._name)
        for c in self.columns:
            for (a, b), order in zip(frames, orders, strict=True):
                out.extend(c, raw.column(c, a, b)[order])
        del raw  # its folder goes with it
        return out.finish(), starts


def tracks_on_disk(
    spots: ColumnTable,
    first_row: np.ndarray,
    pos_cols: Sequence[str],
    extra: Sequence[str],
    *,
    min_length: int,
    spacing: Sequence[float] | None,
    frame_interval: float | None,
    name: str,
) -> ColumnTable | None:
    """Build the tracks table of linked spots on disk (module docstring, step 3).

    Parameters
    ----------
    spots : ColumnTable
        Spots sorted by ``t, (z), y, x``.
    first_row : numpy.ndarray
        For each row of ``spots``, the row of its track's first detection.
    pos_cols, extra : sequence of str
        Position columns, and the spot columns carried over.
    min_length : int
        Tracks with fewer detections are dropped.
    spacing, frame_interval
        As for :func:`~napari_fbias.ops.track_features.build_tracks`.
    name : str
        A label for the scratch folders.

    Returns
    -------
    ColumnTable or None
        The tracks table (``build_tracks``' columns, types and ``attrs``);
        None when no track is kept.
    """
    rows, track_id = _numbered(np.asarray(first_row), int(min_length))
    if rows.size == 0:
        return None
    gathered = {"track_id": np.int64, "t": np.int64, **spots.dtypes}
    gathered = {c: gathered[c] for c in ["track_id", "t", *pos_cols, *extra]}
    ordered = ColumnWriter(gathered, name)
    ordered.extend("track_id", track_id)
    del track_id
    for c in gathered:
        if c != "track_id":
            column = spots.column(c)
            for a in range(0, len(rows), PIECE_ROWS):
                ordered.extend(c, column[rows[a : a + PIECE_ROWS]])
            del column
    del rows
    return _with_features(ordered.finish(), pos_cols, extra, spacing, frame_interval, name)


def _numbered(first_row: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the kept detections in ``(track_id, t)`` order, and their track ids.

    A track's id is the rank of its first row among the kept tracks' (1 first).
    """
    n = len(first_row)
    index = np.int32 if n < np.iinfo(np.int32).max else np.int64  # 4 bytes a detection
    lengths = np.bincount(first_row, minlength=n)
    kept_first = lengths >= max(1, min_length)  # only first rows have a length
    del lengths
    rank = np.cumsum(kept_first, dtype=index)
    keep = kept_first[first_row]
    del kept_first
    rows = np.flatnonzero(keep).astype(index)
    del keep
    track_id = rank[first_row[rows]]
    del rank
    order = np.argsort(track_id, kind="stable")  # rows are in t order: (track_id, t)
    return rows[order], track_id[order]


def _with_features(
    ordered: ColumnTable,
    pos_cols: Sequence[str],
    extra: Sequence[str],
    spacing: Sequence[float] | None,
    frame_interval: float | None,
    name: str,
) -> ColumnTable:
    """Add ``speed``, the track features and physical columns, whole tracks at a time."""
    physical = spacing is not None or frame_interval is not None
    out: ColumnWriter | None = None
    for piece in _whole_tracks(ordered):
        tid = piece.pop("track_id")
        t = piece.pop("t")
        pos = {c: piece.pop(c) for c in pos_cols}
        cols = track_columns(tid, t, pos, {c: piece.pop(c) for c in extra})
        if physical:
            cols.update(
                physical_columns(tid, t, pos_cols, list(pos.values()), spacing, frame_interval)
            )
        if out is None:
            types = {c: v.dtype for c, v in cols.items()}
            out = ColumnWriter(types, name, tracks_attrs(pos_cols, spacing, frame_interval))
        out.append(cols)
    assert out is not None  # the table has rows
    return out.finish()


def _whole_tracks(table: ColumnTable, rows: int = FEATURE_ROWS) -> Iterator[dict[str, np.ndarray]]:
    """Yield the columns of ``table`` (sorted by track) in pieces that end with a track."""
    n = len(table)
    start = 0
    while start < n:
        stop = min(n, start + rows)
        if stop < n:
            tid = table.column("track_id", start, stop + 1)
            cut = np.flatnonzero(tid[1:] != tid[:-1])  # a track ends after row start + cut
            if cut.size == 0:  # one track longer than the piece: read more
                rows *= 2
                continue
            stop = start + int(cut[-1]) + 1
        yield _read(table, start, stop)
        start = stop


def _read(table: ColumnTable, start: int, stop: int) -> dict[str, np.ndarray]:
    return {c: table.column(c, start, stop) for c in table.columns}
