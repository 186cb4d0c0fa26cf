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

import numpy as np
import pandas as pd

__all__ = ["HALO_RANGES", "TILE_DETECTIONS", "TiledLinks", "link_in_tiles"]

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
    wanted = math.ceil(per_frame / max(per_tile, 1))
    if wanted <= 1:
        return TiledLinks(np.asarray(link_one(det)), 1, 0)
    side = math.ceil(math.sqrt(wanted))
    y = det[pos_cols[-2]].to_numpy(dtype=np.float64)
    x = det[pos_cols[-1]].to_numpy(dtype=np.float64)
    edges = [_cuts(v, side) for v in (y, x)]
    cell_y = np.searchsorted(edges[0], y, side="right") - 1
    cell_x = np.searchsorted(edges[1], x, side="right") - 1
    halo = HALO_RANGES * float(reach)
    pred = np.full(n, -1, np.int64)  # chosen by the tile whose core holds the detection
    succ = np.full(n, -1, np.int64)  # chosen by the tile whose core holds the detection
    for i in range(side):
        for j in range(side):
            idx = np.flatnonzero(
                (y >= edges[0][i] - halo)
                & (y < edges[0][i + 1] + halo)
                & (x >= edges[1][j] - halo)
                & (x < edges[1][j + 1] + halo)
            )
            if idx.size == 0:
                continue
            sub = pd.DataFrame({"t": t[idx], **{c: det[c].to_numpy()[idx] for c in pos_cols}})
            particle = np.asarray(link_one(sub))
            order = np.lexsort((t[idx], particle))
            rows, part = idx[order], particle[order]
            linked = part[1:] == part[:-1]
            before, after = rows[:-1][linked], rows[1:][linked]
            mine = (cell_y[after] == i) & (cell_x[after] == j)
            pred[after[mine]] = before[mine]
            mine = (cell_y[before] == i) & (cell_x[before] == j)
            succ[before[mine]] = after[mine]
    has = pred >= 0
    agreed = np.zeros(n, bool)
    agreed[has] = succ[pred[has]] == np.flatnonzero(has)
    dropped = int(has.sum() - agreed.sum())
    pred[~agreed] = -1
    return TiledLinks(_chains(t, pred), side * side, dropped)


def _cuts(v: np.ndarray, side: int) -> np.ndarray:
    """Borders of ``side`` tiles along one axis: equal counts of detections, open ends."""
    cuts = np.quantile(v, np.linspace(0, 1, side + 1))
    cuts[0], cuts[-1] = -np.inf, np.inf
    return cuts


def _chains(t: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Track id of each detection: its predecessor's, or its own row for a track's start."""
    particle = np.arange(len(t), dtype=np.int64)
    order = np.argsort(t, kind="stable")
    bounds = np.flatnonzero(np.diff(t[order])) + 1
    for rows in np.split(order, bounds):  # predecessors lie in earlier frames
        p = pred[rows]
        linked = p >= 0
        particle[rows[linked]] = particle[p[linked]]
    return particle
