"""Linking a detections table in spatial tiles, when its frames are too crowded for one run.

trackpy keeps a Python object of about 1 KiB for each detection of the
frames it is linking (the current frame and ``memory`` frames before it):
linking 655 000 spots a frame of a 32768 x 32768 movie at once would take
gigabytes. Linking is local (a detection moves less than ``search_range``
between frames), so when a frame holds more than :data:`TILE_DETECTIONS`
detections the table is linked in tiles over y and x: each tile links, with
trackpy as usual, the detections of its core and of a halo of
:data:`HALO_RANGES` search ranges around it, over all frames. Then:

* a detection's predecessor in its track is the one the tile whose core
  holds it chose;
* that link is kept only when the tile whose core holds the predecessor
  chose the same successor: the two tiles agree, or the link is dropped (a
  track ends there and another starts).

Within a tile, trackpy resolves each group of competing detections (a
"subnet") on its own, so a link is the one of the whole table's run whenever
the subnets around it lie inside the tile's halo, which is the case unless
detections are crowded into chains longer than the halo; the links dropped
are counted (:class:`TiledLinks`) and ``tests/test_ops_link_tiles.py``
measures the tracks against the whole table's run. A table with fewer
detections a frame is linked in one run, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HALO_RANGES",
    "TILE_DETECTIONS",
    "TiledLinks",
    "link_in_tiles",
    "link_sorted_in_tiles",
]

#: Detections of one frame above which the table is linked in spatial tiles.
TILE_DETECTIONS = 10_000
#: Halo around each tile, in search ranges (the reach of one link).
HALO_RANGES = 16


@dataclass(frozen=True)
class TiledLinks:
    """How a table was linked: ``tiles`` runs (1: whole), ``dropped`` links tiles disagreed on."""

    particle: np.ndarray
    tiles: int
    dropped: int


def link_in_tiles(
    det: pd.DataFrame,
    pos_cols: Sequence[str],
    link_one: Callable[[pd.DataFrame], np.ndarray],
    reach: float,
    *,
    per_tile: int | None = None,
) -> TiledLinks:
    """Link ``det`` (``t`` and ``pos_cols`` columns) whole, or in tiles (module docstring).

    Parameters
    ----------
    det : pandas.DataFrame
        Detections with a ``t`` column and positions in pixels.
    pos_cols : sequence of str
        Position columns, y and x last.
    link_one : callable
        Links a table of the same columns in one run; returns a track id for
        each of its rows (any numbers: only which rows share one counts).
    reach : float
        The largest distance (pixels, along y or x) of one link.
    per_tile : int, optional
        Detections of a frame per tile (default :data:`TILE_DETECTIONS`).

    Returns
    -------
    TiledLinks
        A track id per row of ``det``, the number of tiles and of the links
        dropped where two tiles disagreed.
    """
    per_tile = TILE_DETECTIONS if per_tile is None else int(per_tile)
    t = det["t"].to_numpy().astype(np.int64)
    n = len(t)
    per_frame = int(np.bincount(t).max()) if n else 0
    side = _side(per_frame, per_tile)
    if side == 1:
        return TiledLinks(np.asarray(link_one(det)), 1, 0)
    y = det[pos_cols[-2]].to_numpy(dtype=np.float64)
    x = det[pos_cols[-1]].to_numpy(dtype=np.float64)
    edges = [_cuts(v, side) for v in (y, x)]
    halo = HALO_RANGES * float(reach)
    links = _Links(n)
    for i in range(side):
        for j in range(side):
            idx = np.flatnonzero(
                (y >= edges[0][i] - halo)
                & (y < edges[0][i + 1] + halo)
                & (x >= edges[1][j] - halo)
                & (x < edges[1][j + 1] + halo)
            )
            sub = {"t": t[idx], **{c: det[c].to_numpy()[idx] for c in pos_cols}}
            links.add_tile(idx, sub, pos_cols, link_one, edges, (i, j))
    dropped = links.agree()
    return TiledLinks(_chains(_frames_of(t), links.pred), side * side, dropped)


def _frames_of(t: np.ndarray) -> list[np.ndarray]:
    """Rows of each frame, in time order."""
    order = np.argsort(t, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(t[order])) + 1)


def link_sorted_in_tiles(
    table: Any,
    pos_cols: Sequence[str],
    link_one: Callable[[pd.DataFrame], np.ndarray],
    reach: float,
    frame_starts: np.ndarray,
    *,
    per_tile: int | None = None,
) -> TiledLinks:
    """:func:`link_in_tiles` on a table on disk sorted by ``t``, read a band at a time.

    ``table`` is a :class:`~napari_fbias.io.column_table.ColumnTable`
    (``t``, ``pos_cols``) whose frame ``f`` is rows
    ``frame_starts[f]:frame_starts[f + 1]``. Each tile's rows are those
    :func:`link_in_tiles` would pick, in the same order, so the links are the
    same; what is held is one band of tiles' positions and 4-byte links per
    detection, not the table. The ``particle`` of the result is the row of
    each track's first detection (``TiledLinks.particle``), for either path.
    """
    per_tile = TILE_DETECTIONS if per_tile is None else int(per_tile)
    n = len(table)
    starts = np.asarray(frame_starts, np.int64)
    per_frame = int(np.diff(starts).max()) if n else 0
    side = _side(per_frame, per_tile)
    frames = [range(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    if side == 1:
        particle = np.asarray(link_one(table.frame(columns=["t", *pos_cols])))
        return TiledLinks(_first_rows(particle), 1, 0)
    edges = []
    for c in pos_cols[-2:]:
        v = table.column(c)
        edges.append(_cuts(v, side))
        del v
    halo = HALO_RANGES * float(reach)
    links = _Links(n)
    for i in range(side):
        band = _band(table, pos_cols, frames, edges[0][i] - halo, edges[0][i + 1] + halo)
        bx = band[pos_cols[-1]]
        for j in range(side):
            keep = np.flatnonzero((bx >= edges[1][j] - halo) & (bx < edges[1][j + 1] + halo))
            sub = {c: v[keep] for c, v in band.items() if c != "row"}
            links.add_tile(band["row"][keep], sub, pos_cols, link_one, edges, (i, j))
        del band, bx
    dropped = links.agree()
    return TiledLinks(_chains(frames, links.pred), side * side, dropped)


def _band(
    table: Any, pos_cols: Sequence[str], frames: list[range], lo: float, hi: float
) -> dict[str, np.ndarray]:
    """Rows of ``table`` with ``lo <= y < hi`` (``row``, ``t`` and positions), frame by frame."""
    parts: dict[str, list[np.ndarray]] = {"row": [], "t": [], **{c: [] for c in pos_cols}}
    for rows in frames:
        a, b = rows.start, rows.stop
        y = table.column(pos_cols[-2], a, b)
        sel = np.flatnonzero((y >= lo) & (y < hi))
        parts["row"].append(a + sel)
        for c in ("t", *pos_cols):
            parts[c].append((y if c == pos_cols[-2] else table.column(c, a, b))[sel])
    return {c: np.concatenate(v) for c, v in parts.items()}


def _side(per_frame: int, per_tile: int) -> int:
    """Tiles a side for frames of ``per_frame`` detections (1: link whole)."""
    wanted = math.ceil(per_frame / max(per_tile, 1))
    return 1 if wanted <= 1 else math.ceil(math.sqrt(wanted))


def _index_type(n: int) -> type:
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


class _Links:
    """Each detection's predecessor and successor, chosen by the tile whose core holds it."""

    def __init__(self, n: int) -> None:
        self.pred = np.full(n, -1, _index_type(n))
        self.succ = np.full(n, -1, _index_type(n))

    def add_tile(
        self,
        idx: np.ndarray,
        sub: dict[str, np.ndarray],
        pos_cols: Sequence[str],
        link_one: Callable[[pd.DataFrame], np.ndarray],
        edges: list[np.ndarray],
        tile: tuple[int, int],
    ) -> None:
        """Link one tile's rows (``idx``, values ``sub``); keep the links of its core."""
        if idx.size == 0:
            return
        particle = np.asarray(link_one(pd.DataFrame(sub, columns=["t", *pos_cols], copy=False)))
        cell_y = np.searchsorted(edges[0], sub[pos_cols[-2]], side="right") - 1
        cell_x = np.searchsorted(edges[1], sub[pos_cols[-1]], side="right") - 1
        order = np.lexsort((sub["t"], particle))
        rows, part = idx[order], particle[order]
        mine_cell = (cell_y[order] == tile[0]) & (cell_x[order] == tile[1])
        linked = part[1:] == part[:-1]
        before, after = rows[:-1][linked], rows[1:][linked]
        mine = mine_cell[1:][linked]
        self.pred[after[mine]] = before[mine]
        mine = mine_cell[:-1][linked]
        self.succ[before[mine]] = after[mine]

    def agree(self, piece: int = 1 << 20) -> int:
        """Keep a link only where both tiles chose it; return the number dropped."""
        dropped = 0
        for a in range(0, len(self.pred), piece):
            p = self.pred[a : a + piece]
            has = np.flatnonzero(p >= 0)
            bad = has[self.succ[p[has]] != a + has]
            p[bad] = -1
            dropped += int(bad.size)
        return dropped


def _cuts(v: np.ndarray, side: int) -> np.ndarray:
    """Borders of ``side`` tiles along one axis: equal counts of detections, open ends."""
    cuts = np.quantile(v, np.linspace(0, 1, side + 1))
    cuts[0], cuts[-1] = -np.inf, np.inf
    return cuts


def _chains(frames: Sequence[Any], pred: np.ndarray) -> np.ndarray:
    """Row of each detection's track start: its predecessor's, or its own row.

    ``frames`` are the rows of each frame, in time order (predecessors lie
    in earlier frames).
    """
    particle = np.arange(len(pred), dtype=_index_type(len(pred)))
    for rows in frames:
        p = pred[rows] if not isinstance(rows, range) else pred[rows.start : rows.stop]
        linked = p >= 0
        if isinstance(rows, range):
            particle[rows.start : rows.stop][linked] = particle[p[linked]]
        else:
            particle[rows[linked]] = particle[p[linked]]
    return particle


def _first_rows(particle: np.ndarray) -> np.ndarray:
    """Row of each track's first detection, for track ids of rows sorted by ``t``."""
    uniq, inverse = np.unique(particle, return_inverse=True)
    first = np.full(len(uniq), len(particle), np.int64)
    np.minimum.at(first, inverse, np.arange(len(particle)))
    return first[inverse]
