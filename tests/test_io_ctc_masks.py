"""CTC masks of large frames are made and written tile by tile: the same pixels, less memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import tifffile

import napari_fbias.io.ctc_masks as ctc_masks
from napari_fbias.io.tracks_write import write_ctc


def crowded_spots(shape, n, seed):
    """Spots over the whole frame, many overlapping, some at the edges, tracked over frames."""
    rng = np.random.default_rng(seed)
    rows = []
    for tid in range(1, n + 1):
        p = rng.uniform(-2, np.array(shape[1:]) + 1)  # a few just past the edges
        for t in range(shape[0]):
            if rng.random() < 0.9:
                rows.append(
                    {"track_id": tid, "t": t, **dict(zip("zyx"[-len(p) :], p, strict=True))}
                )
            p = p + rng.normal(0, 1.5, p.shape)
    return pd.DataFrame(rows)


def read_masks(folder):
    return np.stack([tifffile.imread(p) for p in sorted(folder.glob("mask*.tif"))])


@pytest.mark.parametrize(
    ("shape", "spacing"), [((3, 150, 130), None), ((2, 6, 90, 70), (2.0, 0.5, 0.5))]
)
def test_tiled_discs_equal_whole_frames(tmp_path, monkeypatch, shape, spacing):
    tracks = crowded_spots(shape, 300, seed=1)
    whole = write_ctc(tmp_path / "whole", None, tracks, shape=shape, radius=4, spacing=spacing)
    monkeypatch.setattr(ctc_masks, "TILED_FRAME_PIXELS", 100)
    monkeypatch.setattr(ctc_masks, "TILE", 32)  # tiles cut many discs; edge tiles are partial
    tiled = write_ctc(tmp_path / "tiled", None, tracks, shape=shape, radius=4, spacing=spacing)
    a, b = read_masks(whole), read_masks(tiled)
    assert a.max() > 0 and (a > 0).mean() > 0.2  # discs overlap: painting order matters
    np.testing.assert_array_equal(b, a)
    assert (tiled / "res_track.txt").read_text() == (whole / "res_track.txt").read_text()
    with tifffile.TiffFile(tiled / "mask000.tif") as tf:
        assert tf.pages[0].is_tiled
    with tifffile.TiffFile(whole / "mask000.tif") as tf:
        assert not tf.pages[0].is_tiled


def test_tiled_labels_equal_whole_frames_and_check_objects(tmp_path, monkeypatch):
    from napari_fbias.ops.track import track_labels

    rng = np.random.default_rng(3)
    movie = np.zeros((3, 120, 100), np.int32)
    for t in range(3):
        for k in range(1, 40):
            y, x = rng.integers(0, 110), rng.integers(0, 90)
            movie[t, y : y + 8, x : x + 8] = k
    tracks = track_labels(movie, axes="tyx")
    whole = write_ctc(tmp_path / "whole", movie, tracks)
    monkeypatch.setattr(ctc_masks, "TILED_FRAME_PIXELS", 100)
    monkeypatch.setattr(ctc_masks, "TILE", 32)
    import dask.array as da

    tiled = write_ctc(tmp_path / "tiled", da.from_array(movie, chunks=(1, 50, 50)), tracks)
    np.testing.assert_array_equal(read_masks(tiled), read_masks(whole))
    # an object the tracks name that is in no tile of its frame: refused, nothing left
    with pytest.raises(ValueError, match="not in frame t=0"):
        write_ctc(tmp_path / "broken", movie, tracks.assign(label=77))
    assert not (tmp_path / "broken").exists()


def test_a_large_frame_is_not_held_whole(tmp_path, monkeypatch):
    shape = (1, 4096, 4096)  # 32 MiB as one uint16 frame
    tracks = crowded_spots(shape, 2000, seed=2)

    def peak(dest):
        tracemalloc.start()
        try:
            write_ctc(dest, None, tracks, shape=shape, radius=3)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole = peak(tmp_path / "whole")
    monkeypatch.setattr(ctc_masks, "TILED_FRAME_PIXELS", 1024 * 1024)
    tiled = peak(tmp_path / "tiled")
    assert whole > 32 * 2**20
    assert tiled < 8 * 2**20, tiled / 2**20
    np.testing.assert_array_equal(read_masks(tmp_path / "tiled"), read_masks(tmp_path / "whole"))
