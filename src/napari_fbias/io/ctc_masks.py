"""The mask images of the Cell Tracking Challenge format, written region by region.

A CTC result holds one ``uint16`` mask per frame where every object carries
its track's label (:mod:`napari_fbias.io.tracks_write`). The masks are made
one frame at a time, and a frame larger than :data:`TILED_FRAME_PIXELS` is
made and written tile by tile as a tiled TIFF (:data:`TILE` pixels a side):
what is held is one tile, not the movie (a 3 x 8192 x 8192 movie of spots
painted at once took 285 MiB). Smaller frames are written whole, as before.

Two sources of masks:

* :class:`DiscMasks` draws each detection of a spots table as a disc (a
  ball in 3D), in label order, then every centre pixel on top;
* :class:`LabelMasks` maps the objects of the labels movie the tracks came
  from to their track's label.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TILE", "TILED_FRAME_PIXELS", "DiscMasks", "LabelMasks", "write_masks"]

#: Frames with more pixels than this are written as tiled TIFFs, tile by tile.
TILED_FRAME_PIXELS = 4096 * 4096
#: Tile side (y, x) of the tiled masks.
TILE = 1024

Region = tuple[slice, ...]


def write_masks(folder: Path, masks: DiscMasks | LabelMasks) -> None:
    """Write ``mask000.tif``... (4 digits past 1000 frames) of every frame into ``folder``."""
    import tifffile

    n_t = masks.shape[0]
    width = 3 if n_t <= 1000 else 4
    frame = masks.shape[1:]
    for f in range(n_t):
        path = folder / f"mask{f:0{width}d}.tif"
        if math.prod(frame) <= TILED_FRAME_PIXELS:
            tifffile.imwrite(path, masks.region(f, tuple(slice(0, n) for n in frame)))
        else:
            tiles = _tiles(masks, f, frame)
            tifffile.imwrite(path, tiles, shape=frame, dtype=np.uint16, tile=(TILE, TILE))
        masks.frame_done(f)


def _tiles(masks: DiscMasks | LabelMasks, f: int, frame: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield the frame's tiles in the order a tiled TIFF stores them (planes, rows, columns)."""
    planes = range(frame[0]) if len(frame) == 3 else [None]
    for z in planes:
        for y in range(0, frame[-2], TILE):
            for x in range(0, frame[-1], TILE):
                yx = (slice(y, min(y + TILE, frame[-2])), slice(x, min(x + TILE, frame[-1])))
                if z is None:
                    yield masks.region(f, yx)
                else:
                    yield masks.region(f, (slice(z, z + 1), *yx))[0]


def _ball(radius: float, ndim: int, spacing: Sequence[float] | None) -> list[np.ndarray]:
    """Integer offsets of a disc/ball of ``radius`` pixels (along the finest axis)."""
    radii = [float(radius)] * ndim
    if spacing is not None:
        finest = min(spacing)
        radii = [radius * finest / s for s in spacing]
    grids = np.meshgrid(*[np.arange(-int(r), int(r) + 1) for r in radii], indexing="ij")
    inside = sum((g / max(r, 1e-9)) ** 2 for g, r in zip(grids, radii, strict=True)) <= 1.0
    return [g[inside] for g in grids]


class DiscMasks:
    """Spots drawn as discs of ``radius`` pixels, labelled ``row_label``.

    Discs are painted in label order, then every centre pixel on top, so each
    detection keeps at least its centre pixel -- unless two detections round
    to the same pixel of the same frame, in which case the later one is
    dropped (``keep``). Pixels of a disc past the frame's edge are drawn on
    the edge (clipped), as they always were.
    """

    def __init__(
        self,
        shape: Sequence[int],
        tracks: pd.DataFrame,
        row_label: np.ndarray,
        radius: float,
        spacing: Sequence[float] | None,
    ) -> None:
        pos_cols = ["z", "y", "x"] if "z" in tracks.columns else ["y", "x"]
        n_sp = len(pos_cols)
        if len(shape) != n_sp + 1:
            raise ValueError(
                f"write_ctc: shape {tuple(shape)} does not fit {n_sp}D tracks; "
                f"give (t, {', '.join(pos_cols)})"
            )
        self.shape = tuple(int(n) for n in shape)
        t = tracks["t"].to_numpy().astype(np.int64)
        if len(t) and t.max() >= self.shape[0]:
            raise ValueError(
                f"write_ctc: tracks reach frame {int(t.max())} but shape has {self.shape[0]}"
            )
        centre = (
            np.stack(
                [
                    np.clip(np.rint(tracks[c].to_numpy(dtype=np.float64)), 0, n - 1).astype(
                        np.int64
                    )
                    for c, n in zip(pos_cols, self.shape[1:], strict=True)
                ],
                axis=1,
            )
            if len(t)
            else np.empty((0, n_sp), np.int64)
        )
        order = np.lexsort((row_label,))
        key = np.ravel_multi_index((t, *centre.T), self.shape) if len(t) else np.empty(0, np.int64)
        _, first = np.unique(key[order], return_index=True)
        self.keep = np.zeros(len(t), bool)
        self.keep[order[first]] = True
        painted = order[self.keep[order]]  # painting order: label order, kept rows
        self._t = t[painted]
        self._centre = centre[painted]
        self._label = np.asarray(row_label)[painted].astype(np.uint16)
        self._offsets = _ball(radius, n_sp, None if spacing is None else list(spacing))
        self._reach = [int(np.abs(o).max()) if o.size else 0 for o in self._offsets]
        self._frame: tuple[int, np.ndarray, np.ndarray, int] | None = None

    def region(self, f: int, region: Region) -> np.ndarray:
        """Return the mask of frame ``f`` in ``region`` (one slice per spatial axis)."""
        out = np.zeros(tuple(s.stop - s.start for s in region), np.uint16)
        rows = self._rows_near(f, region)
        if rows.size == 0:
            return out
        c = self._centre[rows]
        near = np.ones(rows.size, bool)
        for k, s in enumerate(region):
            near &= (c[:, k] >= s.start - self._reach[k]) & (c[:, k] < s.stop + self._reach[k])
        rows, c = rows[near], c[near]
        if rows.size:
            # every disc pixel, in painting order; the last painted wins a pixel
            pix = [
                np.clip(c[:, k, None] + off[None, :], 0, n - 1).ravel()
                for k, (off, n) in enumerate(zip(self._offsets, self.shape[1:], strict=True))
            ]
            labels = np.repeat(self._label[rows], len(self._offsets[0]))
            _paint_last_wins(out, region, pix, labels)
            inside = np.ones(rows.size, bool)
            for k, s in enumerate(region):
                inside &= (c[:, k] >= s.start) & (c[:, k] < s.stop)
            local = tuple(c[inside, k] - s.start for k, s in enumerate(region))
            out[local] = self._label[rows[inside]]
        return out

    def _rows_near(self, f: int, region: Region) -> np.ndarray:
        """Rows (in painting order) of frame ``f`` whose disc centre is near ``region`` in y, x.

        The frame's rows are binned by the :data:`TILE` cell of their centre
        once, so a tile looks at the cells around it, not at every spot.
        """
        if self._frame is None or self._frame[0] != f:
            rows = np.flatnonzero(self._t == f)
            cy, cx = (self._centre[rows, k] // TILE for k in (-2, -1))
            n_x = self.shape[-1] // TILE + 1
            cell = cy * n_x + cx
            order = np.argsort(cell, kind="stable")
            self._frame = (f, rows[order], cell[order], n_x)
        _, rows, cell, n_x = self._frame
        yx = list(zip(region[-2:], self._reach[-2:], strict=True))
        lo = [max(0, (s.start - r) // TILE) for s, r in yx]
        hi = [(s.stop - 1 + r) // TILE for s, r in yx]
        hi[1] = min(hi[1], n_x - 1)  # cells of one row of cells, not the next row's
        parts = []
        for cy in range(lo[0], hi[0] + 1):
            first = np.searchsorted(cell, cy * n_x + lo[1], side="left")
            last = np.searchsorted(cell, cy * n_x + hi[1], side="right")
            parts.append(rows[first:last])
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)

    def frame_done(self, f: int) -> None:
        """Forget the frame's binned rows."""
        self._frame = None


def _paint_last_wins(
    out: np.ndarray, region: Region, pix: list[np.ndarray], labels: np.ndarray
) -> None:
    """Set ``out`` at the pixels ``pix`` (frame coordinates) inside ``region``; later ones win."""
    inside = np.ones(labels.size, bool)
    for p, s in zip(pix, region, strict=True):
        inside &= (p >= s.start) & (p < s.stop)
    local = [p[inside] - s.start for p, s in zip(pix, region, strict=True)]
    keys = np.ravel_multi_index(local, out.shape) if local[0].size else np.empty(0, np.int64)
    values = labels[inside]
    # the last occurrence of each pixel: the first one in the reversed order
    uniq, first = np.unique(keys[::-1], return_index=True)
    out.ravel()[uniq] = values[::-1][first]


class LabelMasks:
    """The objects of ``labels_t`` (t first) relabelled with their track's label.

    Objects of a frame that no track holds become background. Raises
    ``ValueError`` when the labels do not fit the tracks (checked up front,
    and per frame once its tiles are made: an object of the tracks missing
    from its frame, two tracks on one object).
    """

    def __init__(self, labels_t: Any, tracks: pd.DataFrame, row_label: np.ndarray) -> None:
        what = "write_ctc"
        movie = labels_t if hasattr(labels_t, "shape") and hasattr(labels_t, "dtype") else None
        movie = np.asarray(labels_t) if movie is None else movie
        n_sp = 3 if "z" in tracks.columns else 2
        if movie.ndim != n_sp + 1:
            raise ValueError(
                f"{what}: labels with {movie.ndim} dimensions do not fit {n_sp}D tracks; expected "
                f"(t, {'z, ' if n_sp == 3 else ''}y, x)"
            )
        if np.dtype(movie.dtype).kind not in "iu":
            raise ValueError(f"{what}: labels must hold integer object ids; got {movie.dtype}")
        t = tracks["t"].to_numpy().astype(np.int64)
        lab = tracks["label"].to_numpy().astype(np.int64)
        if len(t) and (t.min() < 0 or t.max() >= movie.shape[0]):
            raise ValueError(
                f"{what}: the tracks reach frame {int(t.max())} but the labels have "
                f"{movie.shape[0]} frame(s)"
            )
        if len(lab) and lab.min() < 1:
            raise ValueError(
                f"{what}: the 'label' column must hold object ids >= 1 (0 is background)"
            )
        self.shape = tuple(int(n) for n in movie.shape)
        self._movie = movie
        self._luts: dict[int, np.ndarray] = {}
        self._seen: dict[int, np.ndarray] = {}
        self._wanted: dict[int, np.ndarray] = {}
        for f in range(self.shape[0]):
            sel = t == f
            ids = lab[sel]
            lut = np.zeros(int(ids.max()) + 1 if ids.size else 1, np.uint16)
            lut[ids] = np.asarray(row_label)[sel]
            self._luts[f] = lut
            self._wanted[f] = ids

    def region(self, f: int, region: Region) -> np.ndarray:
        """Return the mask of frame ``f`` in ``region`` (one slice per spatial axis)."""
        part = np.asarray(self._movie[(f, *region)])
        lut = self._luts[f]
        inside = (part >= 0) & (part < lut.size)
        seen = self._seen.setdefault(f, np.zeros(lut.size, bool))
        values = part[inside].astype(np.int64)
        seen[values] = True
        out = np.zeros(part.shape, np.uint16)
        out[inside] = lut[values]
        return out

    def frame_done(self, f: int) -> None:
        """Check that every object the tracks name in frame ``f`` was in it."""
        ids = self._wanted.pop(f)
        seen = self._seen.pop(f, np.zeros(self._luts[f].size, bool))
        gone = ids[~seen[ids]]
        if gone.size:
            raise ValueError(
                f"write_ctc: object {int(gone.min())} of the tracks is not in frame t={f} "
                "of the labels"
            )
        if np.unique(ids).size != ids.size:
            raise ValueError(f"write_ctc: two tracks claim the same object in frame t={f}")
        del self._luts[f]
