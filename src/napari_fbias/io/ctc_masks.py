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

A tracks table on disk (:class:`~napari_fbias.io.column_table.ColumnTable`)
is never read whole: :class:`DiscMasksOnDisk` reads the rows of a few frames
at a time (a scan of its ``t`` column, then the positions of those rows),
and :class:`LabelMasks` builds its per-frame lookup tables piece by piece.
A row's label comes from :class:`PieceLabels` (the first row and label of
each gap-free piece of a track), not from an array with one label per row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "TILE",
    "TILED_FRAME_PIXELS",
    "DiscMasks",
    "DiscMasksOnDisk",
    "LabelMasks",
    "PieceLabels",
    "write_masks",
]

#: Frames with more pixels than this are written as tiled TIFFs, tile by tile.
TILED_FRAME_PIXELS = 4096 * 4096
#: Tile side (y, x) of the tiled masks.
TILE = 1024
#: Rows of a table on disk read at a time (512 KiB a column of 8 bytes).
READ_ROWS = 65_536
#: Rows of a table on disk whose frames :class:`DiscMasksOnDisk` holds at a time (more
#: when one frame has more).
FRAME_BATCH_ROWS = 1 << 18

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
        pos_cols = _positions(tracks)
        n_sp = len(pos_cols)
        _check_shape(shape, pos_cols)
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
            rows = self._frame_rows(f)
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

    def _frame_rows(self, f: int) -> np.ndarray:
        """Rows (in painting order) of frame ``f``."""
        return np.flatnonzero(self._t == f)

    def frame_done(self, f: int) -> None:
        """Forget the frame's binned rows."""
        self._frame = None


class PieceLabels:
    """The CTC label of rows of a sorted tracks table, from its gap-free pieces.

    ``starts`` are the (sorted) row numbers where each piece begins and
    ``labels`` their labels; calling it with row numbers returns their labels.
    """

    def __init__(self, starts: np.ndarray, labels: np.ndarray) -> None:
        self.starts = np.asarray(starts, np.int64)
        self.labels = np.asarray(labels, np.int64)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Return the labels of ``rows`` (row numbers of the table)."""
        if not len(self.starts):
            return np.zeros(len(rows), np.int64)
        return self.labels[np.searchsorted(self.starts, rows, side="right") - 1]


def _positions(tracks: Any) -> list[str]:
    return ["z", "y", "x"] if "z" in tracks.columns else ["y", "x"]


def _check_shape(shape: Sequence[int], pos_cols: list[str]) -> None:
    """Check that the movie's ``shape`` is ``(t, *pos_cols)``."""
    if len(shape) != len(pos_cols) + 1:
        raise ValueError(
            f"write_ctc: shape {tuple(shape)} does not fit {len(pos_cols)}D tracks; "
            f"give (t, {', '.join(pos_cols)})"
        )


class DiscMasksOnDisk(DiscMasks):
    """:class:`DiscMasks` of a tracks table on disk, read a few frames at a time.

    The same pixels as :class:`DiscMasks` of the same rows in memory. Made, it
    has read every frame once to find the rows that share a centre pixel with
    an earlier one (``dropped``, row numbers: leave them out and make it
    again, as :func:`~napari_fbias.io.tracks_write.write_ctc` does); with
    ``leave_out`` (the rows left out) it skips that. Painting reads each
    frame's rows again: what is held is the rows of the frames of one batch
    (:data:`FRAME_BATCH_ROWS`), their centres and labels.
    """

    def __init__(
        self,
        shape: Sequence[int],
        tracks: Any,
        row_label: PieceLabels,
        radius: float,
        spacing: Sequence[float] | None,
        leave_out: np.ndarray | None = None,
    ) -> None:
        pos_cols = _positions(tracks)
        n_sp = len(pos_cols)
        _check_shape(shape, pos_cols)
        self.shape = tuple(int(n) for n in shape)
        self._tracks = tracks
        self._pos_cols = pos_cols
        self._row_label = row_label
        self._leave_out = None if leave_out is None or not len(leave_out) else leave_out
        t_max = -1
        counts = np.zeros(self.shape[0], np.int64)
        for _, t in self._t_pieces():
            if len(t):
                t_max = max(t_max, int(t.max()))
                if t_max >= self.shape[0]:
                    break
                counts += np.bincount(t[t >= 0], minlength=self.shape[0])
        if t_max >= self.shape[0]:
            raise ValueError(f"write_ctc: tracks reach frame {t_max} but shape has {self.shape[0]}")
        self._counts = counts
        self._offsets = _ball(radius, n_sp, None if spacing is None else list(spacing))
        self._reach = [int(np.abs(o).max()) if o.size else 0 for o in self._offsets]
        self._frame = None
        self._held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        dropped: list[np.ndarray] = []
        if leave_out is None:
            f = 0
            while f < self.shape[0]:
                stop = self._batch_end(f)
                dropped += self._load(f, stop)
                if f > 0 or stop < self.shape[0] or any(len(d) for d in dropped):
                    self._held.clear()  # kept only when every frame fits one batch
                f = stop
        self.dropped = np.sort(np.concatenate(dropped)) if dropped else np.empty(0, np.int64)

    def _t_pieces(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row numbers, t) of the rows not left out, piece by piece."""
        n = len(self._tracks)
        for a in range(0, n, READ_ROWS):
            b = min(n, a + READ_ROWS)
            t = self._tracks.column("t", a, b).astype(np.int64)
            rows = np.arange(a, b, dtype=np.int64)
            if self._leave_out is not None:
                keep = ~np.isin(rows, self._leave_out, assume_unique=True)
                rows, t = rows[keep], t[keep]
            yield rows, t

    def _batch_end(self, f: int) -> int:
        """Return the frame after the batch of frames that starts at ``f``."""
        total = int(self._counts[f])
        stop = f + 1
        while stop < self.shape[0] and total + self._counts[stop] <= FRAME_BATCH_ROWS:
            total += int(self._counts[stop])
            stop += 1
        return stop

    def _load(self, start: int, stop: int) -> list[np.ndarray]:
        """Read the rows of frames ``start:stop`` into ``_held``; return the rows dropped."""
        parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        dims = self.shape[1:]
        for rows, t in self._t_pieces():
            sel = (t >= start) & (t < stop)
            if not sel.any():
                continue
            a, b = int(rows[0]), int(rows[-1]) + 1
            local = rows[sel] - a
            centre = np.stack(
                [
                    np.clip(
                        np.rint(self._tracks.column(c, a, b)[local].astype(np.float64)), 0, n - 1
                    ).astype(np.int64)
                    for c, n in zip(self._pos_cols, dims, strict=True)
                ],
                axis=1,
            )
            tf = t[sel]
            for f in np.unique(tf).tolist():
                in_f = tf == f
                parts.setdefault(f, []).append((rows[sel][in_f], centre[in_f]))
        dropped = []
        for f in range(start, stop):
            got = parts.pop(f, [])
            rows = np.concatenate([r for r, _ in got]) if got else np.empty(0, np.int64)
            centre = (
                np.concatenate([c for _, c in got]) if got else np.empty((0, len(dims)), np.int64)
            )
            del got
            label = self._row_label(rows)
            order = np.argsort(label, kind="stable")  # label order, then row order
            rows, centre, label = rows[order], centre[order], label[order]
            key = np.ravel_multi_index(tuple(centre.T), dims) if len(rows) else rows
            _, first = np.unique(key, return_index=True)
            keep = np.zeros(len(rows), bool)
            keep[first] = True
            dropped.append(rows[~keep])
            self._held[f] = (centre[keep], label[keep].astype(np.uint16))
        return dropped

    def _frame_rows(self, f: int) -> np.ndarray:
        if f not in self._held:
            self._held.clear()
            self._load(f, self._batch_end(f))
        self._centre, self._label = self._held[f]
        return np.arange(len(self._label), dtype=np.int64)

    def frame_done(self, f: int) -> None:
        """Forget the frame's rows."""
        self._frame = None
        self._held.pop(f, None)


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

    def __init__(self, labels_t: Any, tracks: Any, row_label: Any) -> None:
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
        # a table in memory is one piece; a table on disk is read twice, piece by piece
        t_min = lab_min = None
        t_max = -1
        for t, lab, _ in _label_pieces(tracks, None):
            if len(t):
                t_min = int(t.min()) if t_min is None else min(t_min, int(t.min()))
                t_max = max(t_max, int(t.max()))
                lab_min = int(lab.min()) if lab_min is None else min(lab_min, int(lab.min()))
        if t_min is not None and (t_min < 0 or t_max >= movie.shape[0]):
            raise ValueError(
                f"{what}: the tracks reach frame {t_max} but the labels have "
                f"{movie.shape[0]} frame(s)"
            )
        if lab_min is not None and lab_min < 1:
            raise ValueError(
                f"{what}: the 'label' column must hold object ids >= 1 (0 is background)"
            )
        self.shape = tuple(int(n) for n in movie.shape)
        self._movie = movie
        top = np.zeros(self.shape[0], np.int64)  # the largest object id named in each frame
        for t, lab, _ in _label_pieces(tracks, None):
            np.maximum.at(top, t, lab)
        self._luts = {f: np.zeros(int(top[f]) + 1, np.uint16) for f in range(self.shape[0])}
        self._wanted = {f: np.zeros(int(top[f]) + 1, bool) for f in range(self.shape[0])}
        self._twice: set[int] = set()  # frames where two rows name one object
        self._seen: dict[int, np.ndarray] = {}
        for t, lab, rl in _label_pieces(tracks, row_label):
            for f in np.unique(t).tolist():
                sel = t == f
                ids = lab[sel]
                wanted = self._wanted[f]
                if wanted[ids].any() or np.unique(ids).size != ids.size:
                    self._twice.add(f)
                wanted[ids] = True
                self._luts[f][ids] = rl[sel]

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
        wanted = self._wanted.pop(f)
        seen = self._seen.pop(f, np.zeros(self._luts[f].size, bool))
        gone = np.flatnonzero(wanted & ~seen)
        if gone.size:
            raise ValueError(
                f"write_ctc: object {int(gone.min())} of the tracks is not in frame t={f} "
                "of the labels"
            )
        if f in self._twice:
            raise ValueError(f"write_ctc: two tracks claim the same object in frame t={f}")
        del self._luts[f]


def _label_pieces(
    tracks: Any, row_label: Any
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield ``(t, label, CTC label)`` of the rows: a DataFrame whole, a table on disk in pieces.

    ``row_label``: an array (one label per row) or a :class:`PieceLabels`; None
    to read only ``t`` and ``label``.
    """
    if isinstance(tracks, pd.DataFrame):
        t = tracks["t"].to_numpy().astype(np.int64)
        lab = tracks["label"].to_numpy().astype(np.int64)
        yield t, lab, None if row_label is None else np.asarray(row_label)
        return
    n = len(tracks)
    for a in range(0, n, READ_ROWS):
        b = min(n, a + READ_ROWS)
        t = tracks.column("t", a, b).astype(np.int64)
        lab = tracks.column("label", a, b).astype(np.int64)
        rl = None if row_label is None else row_label(np.arange(a, b, dtype=np.int64))
        yield t, lab, rl
