"""Border planes are paired as blocks come, in any order, and forgotten once paired.

The chunk-wise labels themselves are compared with the in-memory ones in
``test_pipeline_chunked.py``; this checks what the pairing holds and that the
pairs do not depend on the order the blocks are computed in.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_fbias.ops.label_faces import BorderPairs


def _blocks(labels_shape, chunk, seed, ndim_loop=0):
    """Random objects labelled block by block: {loc: (local labels, offset)}."""
    rng = np.random.default_rng(seed)
    mask = rng.random(labels_shape) > 0.55
    grid = tuple(-(-n // chunk) for n in labels_shape)
    out = {}
    total = 0
    for loc in np.ndindex(*grid):
        sl = tuple(slice(i * chunk, (i + 1) * chunk) for i in loc)
        local, n = ndimage.label(mask[sl])
        out[loc] = (local.astype(np.int32), total)
        total += n
    return mask, grid, out


def _faces(local):
    return [(np.take(local, 0, axis=k), np.take(local, -1, axis=k)) for k in range(local.ndim)]


def _edge_set(grid, blocks, order, diagonal):
    pairs = BorderPairs(grid, 0, diagonal)
    held = []
    for loc in order:
        local, offset = blocks[loc]
        pairs.add(loc, offset, _faces(local))
        held.append(pairs.held_pixels)
    edges = pairs.edges()
    assert pairs.held_pixels == 0  # every plane forgotten once its borders are paired
    return {tuple(e) for e in edges.tolist()}, held


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize(("shape", "chunk"), [((41, 38), 6), ((12, 17, 15), 4)])
def test_pairs_do_not_depend_on_the_order_blocks_come_in(shape, chunk, diagonal):
    _, grid, blocks = _blocks(shape, chunk, seed=3)
    raster = list(np.ndindex(*grid))
    expected, _ = _edge_set(grid, blocks, raster, diagonal)
    assert expected  # objects cross borders
    shuffled = list(raster)
    np.random.default_rng(0).shuffle(shuffled)
    got, _ = _edge_set(grid, blocks, shuffled, diagonal)
    assert got == expected
    got, _ = _edge_set(grid, blocks, raster[::-1], diagonal)
    assert got == expected


@pytest.mark.parametrize("diagonal", [False, True])
def test_what_is_held_is_a_front_of_blocks_not_the_image(diagonal):
    _, grid, blocks = _blocks((12 * 8, 12 * 8, 12 * 8), 12, seed=5)
    every_plane = sum(sum(a.size + b.size for a, b in _faces(blk)) for blk, _ in blocks.values())
    _, held = _edge_set(grid, blocks, list(np.ndindex(*grid)), diagonal)
    # in raster order the planes waiting are one slab of blocks (8 x 8 of 64 x 8 x 8):
    # about an eighth of every block's planes (with diagonal, one row of blocks more)
    assert max(held) < every_plane / 4


def test_merged_ids_are_the_in_memory_objects():
    """Joining the pairs gives exactly the objects of labelling the whole image."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mask, grid, blocks = _blocks((50, 47), 7, seed=11)
    edges, _ = _edge_set(grid, blocks, list(np.ndindex(*grid)), diagonal=False)
    n = sum(int(b.max()) for b, _ in blocks.values()) + 1
    e = np.array(sorted(edges))
    graph = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), (n, n))
    _, comp = connected_components(graph, directed=False)
    merged = np.zeros(mask.shape, dtype=np.int64)
    for loc, (local, offset) in blocks.items():
        sl = tuple(slice(i * 7, (i + 1) * 7) for i in loc)
        merged[sl] = np.where(local > 0, comp[local + offset] + 1, 0)
    whole, n_whole = ndimage.label(mask)
    # the same partition of the pixels: a one-to-one map between the two numberings
    fg = whole > 0
    pairs = np.unique(np.stack([whole[fg], merged[fg]], axis=1), axis=0)
    assert len(pairs) == n_whole == len(np.unique(pairs[:, 1]))


def test_edges_refuses_while_blocks_are_missing():
    _, grid, blocks = _blocks((20, 20), 10, seed=1)
    pairs = BorderPairs(grid, 0, diagonal=False)
    local, offset = blocks[(0, 0)]
    pairs.add((0, 0), offset, _faces(local))
    with pytest.raises(RuntimeError, match="still wait"):
        pairs.edges()
