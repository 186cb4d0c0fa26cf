"""Objects touching across block borders, paired as the blocks' border planes come.

Chunk-wise labelling (:func:`napari_fbias.ops.chunks.merge_labels`) numbers
each block on its own, then joins the ids that touch across a block border.
Each block reports its border planes (first and last plane along every
spatial axis); :class:`BorderPairs` pairs the two planes of a border as soon
as both blocks (and, with diagonal connectivity, the blocks beside them) have
reported, in whatever order the blocks are computed, and forgets a plane once
every border that reads it is paired. What it holds is the planes of the
blocks whose neighbours are not computed yet, not those of the whole image
(every block's planes of a 256 x 1024 x 1024 volume in 64 x 256 x 256 blocks
are 12.6 million pixels).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["BorderPairs", "face_pairs"]

Loc = tuple[int, ...]
#: A border plane: (block, spatial axis, side), side 0 the first plane, 1 the last.
Face = tuple[Loc, int, int]
#: A border: (block before it, spatial axis); the block after is one further on that axis.
Border = tuple[Loc, int]


def face_pairs(lo: np.ndarray, hi: np.ndarray, diagonal: bool) -> np.ndarray:
    """Pairs of ids touching across a border (``lo`` the last plane before, ``hi`` after)."""
    pairs = []
    shifts = list(np.ndindex(*(3,) * lo.ndim)) if diagonal else [(1,) * lo.ndim]
    for shift in shifts:
        src = []
        dst = []
        for s, n in zip(shift, lo.shape, strict=True):
            d = s - 1
            src.append(slice(max(0, d), n + min(0, d)))
            dst.append(slice(max(0, -d), n + min(0, -d)))
        a = lo[tuple(src)]
        b = hi[tuple(dst)]
        both = (a > 0) & (b > 0)
        if both.any():
            pairs.append(np.stack([a[both], b[both]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def _global_ids(face: np.ndarray, offset: int) -> np.ndarray:
    face = face.astype(np.int64)
    return np.where(face > 0, face + offset, 0)


class BorderPairs:
    """Collect the id pairs that touch across the borders of a block grid.

    Parameters
    ----------
    grid : sequence of int
        The block grid (loop axes first, each with its own independent frames).
    n_loop : int
        Leading non-spatial axes: blocks of different frames never touch.
    diagonal : bool
        Whether objects touching by a corner are one object.

    Call :meth:`add` once per block, in any order, with the block's id offset
    and its border planes; :meth:`edges` returns every pair once all blocks
    are added.
    """

    def __init__(self, grid: Sequence[int], n_loop: int, diagonal: bool) -> None:
        self.grid = tuple(int(g) for g in grid)
        self.n_loop = n_loop
        self.diagonal = diagonal
        self._planes: dict[Face, tuple[np.ndarray, int]] = {}
        self._uses: Counter[Face] = Counter()
        self._waiting: defaultdict[Loc, list[Border]] = defaultdict(list)
        self._missing: dict[Border, int] = {}
        self._pairs: list[np.ndarray] = []
        for loc in np.ndindex(*self.grid):
            for k in range(len(self.grid) - n_loop):
                nxt = self._moved(loc, k, 1)
                if nxt is None:
                    continue
                reads = self._reads(loc, nxt, k)
                self._uses.update(reads)
                blocks = {face[0] for face in reads}
                self._missing[(loc, k)] = len(blocks)
                for b in blocks:
                    self._waiting[b].append((loc, k))

    def _moved(self, loc: Loc, k: int, step: int) -> Loc | None:
        axis = self.n_loop + k
        to = loc[axis] + step
        if not 0 <= to < self.grid[axis]:
            return None
        return (*loc[:axis], to, *loc[axis + 1 :])

    def _beside(self, loc: Loc, k: int) -> list[tuple[tuple[int, ...], Loc]]:
        """``(side, block)`` of the blocks beside ``loc`` across the axes other than ``k``."""
        nd = len(self.grid) - self.n_loop
        others = [j for j in range(nd) if j != k]
        out = []
        for side in np.ndindex(*(3,) * len(others)):
            if all(s == 1 for s in side):
                continue
            nb: Loc | None = loc
            for j, s in zip(others, side, strict=True):
                nb = self._moved(nb, j, s - 1) if nb is not None else None
            if nb is not None:
                out.append((side, nb))
        return out

    def _reads(self, loc: Loc, nxt: Loc, k: int) -> list[Face]:
        """Return the planes the border between ``loc`` and ``nxt`` (along ``k``) is paired from."""
        reads = [(loc, k, 1), (nxt, k, 0)]
        if self.diagonal:
            reads += [(nb, k, 1) for _, nb in self._beside(loc, k)]
            reads += [(nb, k, 0) for _, nb in self._beside(nxt, k)]
        return reads

    def add(self, loc: Loc, offset: int, faces: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Add one block: ``faces[k]`` its (first, last) planes along spatial axis ``k``.

        ``offset`` is added to the block's non-zero ids to make them unique
        over the image. Borders whose blocks have all come are paired now.
        """
        for k, both in enumerate(faces):
            for side in (0, 1):
                if self._uses[(loc, k, side)]:
                    self._planes[(loc, k, side)] = (both[side], offset)
        for border in self._waiting.pop(loc, []):
            self._missing[border] -= 1
            if self._missing[border] == 0:
                del self._missing[border]
                self._pair(*border)

    def _plane(self, face: Face) -> np.ndarray:
        plane, offset = self._planes[face]
        return _global_ids(plane, offset)

    def _pair(self, loc: Loc, k: int) -> None:
        nxt = self._moved(loc, k, 1)
        assert nxt is not None
        if self.diagonal:
            lo, hi = self._extended(loc, nxt, k)
        else:
            lo, hi = self._plane((loc, k, 1)), self._plane((nxt, k, 0))
        pairs = face_pairs(lo, hi, self.diagonal)
        if pairs.size:
            self._pairs.append(pairs)
        for face in self._reads(loc, nxt, k):
            self._uses[face] -= 1
            if self._uses[face] == 0:
                del self._uses[face]
                del self._planes[face]

    def _extended(self, loc: Loc, nxt: Loc, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the two planes around one border, extended by a pixel into the blocks beside.

        With diagonal connectivity an object may touch one in a *diagonal*
        block across a corner; extending the planes of this block pair by the
        adjacent pixels of the blocks beside it catches those pairs.
        """
        lo = np.pad(self._plane((loc, k, 1)), 1)
        hi = np.pad(self._plane((nxt, k, 0)), 1)
        for plane, src_loc, side_of_face in ((lo, loc, 1), (hi, nxt, 0)):
            for side, nb in self._beside(src_loc, k):
                _paste_edge(plane, self._plane((nb, k, side_of_face)), side)
        return lo, hi

    def edges(self) -> np.ndarray:
        """Every pair of global ids that touch across a border, shape (n, 2)."""
        if self._missing:
            raise RuntimeError(f"{len(self._missing)} block borders still wait for blocks")
        if not self._pairs:
            return np.empty((0, 2), dtype=np.int64)
        return np.concatenate(self._pairs)

    @property
    def held_pixels(self) -> int:
        """Pixels of the border planes held now (waiting for a neighbour)."""
        return sum(p.size for p, _ in self._planes.values())


def _paste_edge(plane: np.ndarray, face: np.ndarray, side: tuple[int, ...]) -> None:
    """Paste the row of a neighbour's ``face`` that touches ``plane``'s core into its pad.

    ``side[j]`` is 0 for the block before along the j-th other axis (its last
    row goes to pad position 0), 2 for the one after (its first row goes to
    the last pad position), 1 for the same position (the whole extent).
    """
    src = []
    dst = []
    for j, s in enumerate(side):
        n_face = face.shape[j]
        n_core = plane.shape[j] - 2
        if s == 0:
            src.append(slice(n_face - 1, n_face))
            dst.append(slice(0, 1))
        elif s == 2:
            src.append(slice(0, 1))
            dst.append(slice(n_core + 1, n_core + 2))
        else:
            src.append(slice(0, n_face))
            dst.append(slice(1, n_core + 1))
    plane[tuple(dst)] = face[tuple(src)]
