"""Writing tracks as GEFF, the graph exchange format for tracking (read by napari-geff, ultrack...).

A GEFF is a zarr group: one node per detection (``t``, ``(z)``, ``y``, ``x``
and the table's other numeric columns as node properties, ``track_id`` as the
tracklet), one edge from each detection to the next of its track, and one
edge from the last detection of a mother track to the first detection of
each daughter (a division: rows with ``parent_track_id``). The metadata are
the spec's own model (``geff-spec``); the arrays are written with zarr (v2, as
the reference ``geff`` package writes them; the tests read and validate every
output with that package), atomically, in the table's column order (the same
table gives the same bytes), in chunks of :data:`CHUNK_ROWS` rows, and never
over an existing output unless asked to. A tracks table on disk
(:class:`~napari_fbias.io.column_table.ColumnTable`, rows sorted by
``track_id, t``) is written chunk by chunk, one column at a time: the same
bytes as the same rows in a DataFrame, without reading the table whole.
The ``geff`` package itself is not a dependency: it pins ``numcodecs`` below
what zarr 3 needs, behind a version marker that older pips cannot read.

Nothing here imports Qt, napari or the ops.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.io.atomic import atomic_dir
from napari_fbias.io.column_table import ColumnTable
from napari_fbias.io.tracks_write import NAPARI_TRACK_COLUMNS, piece_steps

__all__ = ["track_graph", "write_geff"]

#: Columns kept out of the node properties (identifiers, not measurements).
_NOT_PROPS = frozenset({"parent_track_id", "label"})
#: Rows of a chunk of the GEFF arrays (512 KiB of 8-byte values; zarr held 12 such at once).
CHUNK_ROWS = 65_536
#: Rows of ``track_id`` and ``t`` of a table on disk read at a time to find its edges.
READ_ROWS = 65_536


def track_graph(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Return ``(node_ids, edges, props)`` of a tracks table.

    Node ids are the row positions of the table (0..n-1); ``edges`` is an
    ``(m, 2)`` array of (source, target) node ids: consecutive detections of
    a track (gaps bridged), then mother -> daughter for each division;
    ``props`` maps column name -> values (numeric columns only).

    Raises
    ------
    ValueError
        When the table lacks ``track_id``, ``t``, ``y``, ``x``, a track has two
        detections in one frame, or a daughter names a mother not in the table.
    """
    missing = [c for c in ("track_id", "t", "y", "x") if c not in tracks.columns]
    if missing:
        raise ValueError(f"write_geff: the tracks table has no column(s) {', '.join(missing)}")
    n = len(tracks)
    tid = tracks["track_id"].to_numpy().astype(np.int64)
    t = tracks["t"].to_numpy().astype(np.int64)
    order = np.lexsort((t, tid))
    same = tid[order][1:] == tid[order][:-1]
    if np.any(same & (t[order][1:] == t[order][:-1])):
        i = int(np.flatnonzero(same & (t[order][1:] == t[order][:-1]))[0])
        raise ValueError(f"write_geff: track {tid[order][i]} has two detections at t={t[order][i]}")
    edges = [np.stack([order[:-1][same], order[1:][same]], axis=1)]
    if "parent_track_id" in tracks.columns and n:
        first = {
            int(k): int(order[i]) for i, k in enumerate(tid[order]) if i == 0 or not same[i - 1]
        }
        last = {int(tid[order][i]): int(order[i]) for i in range(n)}  # the last one wins
        parents = tracks["parent_track_id"].to_numpy()
        division = []
        for track, node in first.items():
            p = parents[node]
            if p == p and int(p) > 0:
                if int(p) not in last:
                    raise ValueError(
                        f"write_geff: track {track} has parent track {int(p)}, not in the table"
                    )
                division.append((last[int(p)], node))
        if division:
            edges.append(np.asarray(division, dtype=np.int64))
    edge_ids = np.concatenate(edges).astype(np.int64) if n else np.empty((0, 2), np.int64)
    props = {
        str(c): tracks[c].to_numpy()
        for c in tracks.columns
        if c not in _NOT_PROPS and pd.api.types.is_numeric_dtype(tracks[c])
    }
    return np.arange(n, dtype=np.int64), edge_ids.reshape(-1, 2), props


def write_geff(
    dest: str | os.PathLike[str],
    tracks: pd.DataFrame,
    *,
    spacing: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    time_unit: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a tracks table as a GEFF zarr group at ``dest`` (e.g. ``tracks.geff``).

    Parameters
    ----------
    dest : path-like
        The GEFF folder to create; its parent must exist.
    tracks : pandas.DataFrame
        Tracks table (``track_id, t, (z), y, x`` in pixels, other numeric
        columns become node properties; ``parent_track_id`` gives divisions).
    spacing : sequence of float, optional
        Pixel size along ``(z), y, x``: written as the axes' scale, so readers
        can place the nodes in physical space.
    units : sequence of str or None, optional
        Units along ``(z), y, x`` (``"micrometer"``...).
    time_unit : str, optional
        Unit of ``t`` (default: frames).
    overwrite : bool
        Replace an existing ``dest`` (default: refuse).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    OutputExistsError
        If ``dest`` exists and ``overwrite`` is False.
    ValueError
        For a table that is not tracks (see :func:`track_graph`), or
        ``spacing``/``units`` that do not fit its spatial axes.
    """
    import zarr
    from geff_spec import Axis, GeffMetadata, PropMetadata

    on_disk = isinstance(tracks, ColumnTable)
    if on_disk:  # read column by column, chunk by chunk
        n_in_track, division = _graph_on_disk(tracks)
        n = len(tracks)
        dtypes = {
            c: np.dtype(d)
            for c, d in tracks.dtypes.items()
            if c not in _NOT_PROPS and pd.api.types.is_numeric_dtype(d)
        }
    else:
        node_ids, edge_ids, props = track_graph(tracks)
        n = len(node_ids)
        dtypes = {c: v.dtype for c, v in props.items()}
    spatial = [c for c in NAPARI_TRACK_COLUMNS[2:] if c in tracks.columns]
    for what, given in (("spacing", spacing), ("units", units)):
        if given is not None and len(given) != len(spatial):
            raise ValueError(
                f"write_geff: {what} has {len(given)} values for the {len(spatial)} spatial "
                f"axes {', '.join(spatial)}"
            )
    names = ["t", *spatial]
    scales = [1.0, *(float(x) for x in (spacing or [1.0] * len(spatial)))]
    unit_of = [time_unit or "frame", *(units or [None] * len(spatial))]
    types = ["time", *(["space"] * len(spatial))]

    def blocks(name: str) -> Iterator[np.ndarray]:
        for a in range(0, n, CHUNK_ROWS):
            if on_disk:
                yield tracks.column(name, a, a + CHUNK_ROWS)
            else:
                yield props[name][a : a + CHUNK_ROWS]

    ranges: dict[str, tuple[float | None, float | None]] = {}
    with atomic_dir(dest, overwrite=overwrite) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        nodes, edges = root.create_group("nodes"), root.create_group("edges")
        ids = _array(nodes, "ids", n, np.dtype(np.int64))
        for a in range(0, n, CHUNK_ROWS):
            ids[a : min(n, a + CHUNK_ROWS)] = np.arange(a, min(n, a + CHUNK_ROWS), dtype=np.int64)
        if on_disk:
            out = _Rows(_array(edges, "ids", n_in_track + len(division), np.dtype(np.int64), 2))
            for pair in _edges_in_tracks(tracks):
                out.add(pair)
            out.add(division)
            out.close()
        else:
            out = _Rows(_array(edges, "ids", len(edge_ids), np.dtype(np.int64), 2))
            out.add(edge_ids)
            out.close()
        node_props = nodes.create_group("props")
        for name, dtype in dtypes.items():
            arr = _array(node_props.create_group(name), "values", n, dtype)
            lo = hi = None
            for a, block in zip(range(0, n, CHUNK_ROWS), blocks(name), strict=True):
                arr[a : a + len(block)] = np.ascontiguousarray(block)
                if name in names:
                    values = np.asarray(block, dtype=np.float64)
                    seen = values[np.isfinite(values)]
                    if seen.size:
                        b_lo, b_hi = float(seen.min()), float(seen.max())
                        lo = b_lo if lo is None else min(lo, b_lo)
                        hi = b_hi if hi is None else max(hi, b_hi)
            ranges[name] = (lo, hi)
        axes = []
        for name, kind, unit, scale in zip(names, types, unit_of, scales, strict=True):
            lo, hi = ranges[name]
            axes.append(Axis(name=name, type=kind, unit=unit, scale=scale, min=lo, max=hi))
        # the table's column order, not a set's: the same table gives the same bytes in any process
        metadata = GeffMetadata(
            directed=True,
            axes=axes,
            node_props_metadata={
                name: PropMetadata(identifier=name, dtype=str(dtype))
                for name, dtype in dtypes.items()
            },
            edge_props_metadata={},
            track_node_props={"tracklet": "track_id"},
        )
        root.attrs["geff"] = metadata.model_dump(mode="json")
    return Path(dest)


def _array(group: Any, name: str, n: int, dtype: np.dtype, width: int | None = None) -> Any:
    """Create an array of ``n`` rows (of ``width`` values) in chunks of :data:`CHUNK_ROWS` rows."""
    shape = (n,) if width is None else (n, width)
    chunks = (min(max(n, 1), CHUNK_ROWS), *shape[1:])
    return group.create_array(name, shape=shape, dtype=dtype, chunks=chunks)


class _Rows:
    """Write rows to an array in order, a whole chunk at a time."""

    def __init__(self, arr: Any) -> None:
        self.arr = arr
        self.at = 0
        self.parts: list[np.ndarray] = []
        self.held = 0

    def add(self, rows: np.ndarray) -> None:
        self.parts.append(np.asarray(rows))
        self.held += len(rows)
        if self.held >= CHUNK_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.parts:
            return
        rows = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
        whole = len(rows) if final else len(rows) // CHUNK_ROWS * CHUNK_ROWS
        if whole:
            self.arr[self.at : self.at + whole] = rows[:whole]
            self.at += whole
        self.parts = [rows[whole:]] if whole < len(rows) else []
        self.held = len(rows) - whole

    def close(self) -> None:
        self._flush(final=True)
        if self.at != self.arr.shape[0]:
            raise RuntimeError(f"wrote {self.at} rows of {self.arr.shape[0]}")  # a bug


def _id_pieces(
    tracks: ColumnTable, with_t: bool = True
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield ``(first row, track_id, t)`` of a table on disk, :data:`READ_ROWS` rows at a time."""
    for a in range(0, len(tracks), READ_ROWS):
        tid = tracks.column("track_id", a, a + READ_ROWS).astype(np.int64)
        t = tracks.column("t", a, a + READ_ROWS).astype(np.int64) if with_t else None
        yield a, tid, t


def _graph_on_disk(tracks: ColumnTable) -> tuple[int, np.ndarray]:
    """Check a table on disk as :func:`track_graph` does.

    Returns the number of edges within tracks and the division edges.
    """
    missing = [c for c in ("track_id", "t", "y", "x") if c not in tracks.columns]
    if missing:
        raise ValueError(f"write_geff: the tracks table has no column(s) {', '.join(missing)}")
    has_parent = "parent_track_id" in tracks.columns
    n_in_track = 0
    duplicate: tuple[int, int] | None = None
    daughters: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # track, first row, parent
    prev: tuple[int, int] | None = None
    for a, tid, t in _id_pieces(tracks):
        assert t is not None
        same, _, _, i = piece_steps(prev, tid, t, a + np.arange(len(tid)), "write_geff")
        if duplicate is None and i is not None:
            duplicate = (int(tid[i]), int(t[i]))
        n_in_track += int(np.count_nonzero(same))
        if has_parent:
            first = np.flatnonzero(~same)
            p = tracks.column("parent_track_id", a, a + len(tid))[first]
            with np.errstate(invalid="ignore"):
                has = (p == p) & (p > 0)  # not NaN, not 0
            daughters.append((tid[first][has], a + first[has], p[has].astype(np.int64)))
        prev = (int(tid[-1]), int(t[-1]))
    if duplicate is not None:
        raise ValueError(f"write_geff: track {duplicate[0]} has two detections at t={duplicate[1]}")
    if not daughters or not sum(len(d[0]) for d in daughters):
        return n_in_track, np.empty((0, 2), np.int64)
    d_tid, d_row, d_par = (np.concatenate([d[k] for d in daughters]) for k in range(3))
    needed = np.unique(d_par)
    last = np.full(len(needed), -1, np.int64)  # the last row of each mother track
    for a, tid, _ in _id_pieces(tracks, with_t=False):
        at = np.searchsorted(tid, needed, side="right") - 1
        here = (at >= 0) & (tid[np.maximum(at, 0)] == needed)
        last[here] = a + at[here]
    mother = last[np.searchsorted(needed, d_par)]
    if np.any(mother < 0):
        i = int(np.flatnonzero(mother < 0)[0])
        raise ValueError(
            f"write_geff: track {int(d_tid[i])} has parent track {int(d_par[i])}, not in the table"
        )
    return n_in_track, np.stack([mother, d_row], axis=1).astype(np.int64)


def _edges_in_tracks(tracks: ColumnTable) -> Iterator[np.ndarray]:
    """Yield the (row, next row) edges of consecutive detections of a track, piece by piece."""
    prev: int | None = None
    for a, tid, _ in _id_pieces(tracks, with_t=False):
        ptid = np.r_[prev if prev is not None else tid[0] - 1, tid]
        src = np.flatnonzero(ptid[1:] == ptid[:-1]) + a - 1  # the row before each such row
        yield np.stack([src, src + 1], axis=1)
        prev = int(tid[-1])
