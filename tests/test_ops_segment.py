"""Classical segmentation operations and the default nuclei recipe."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from napari_fbias.io.samples import load_nuclei_2d
from napari_fbias.io.synth import CELLS_3D_VOXEL_SIZE_UM, make_cells_3d, make_nuclei_2d
from napari_fbias.ops import get_op, list_ops
from napari_fbias.ops.metrics import average_precision
from napari_fbias.ops.segment import (
    connected_components,
    expand_labels,
    fill_holes,
    local_threshold,
    nuclei,
    remove_small_objects,
    threshold,
    watershed_split,
)


def disc(shape, center, radius):
    yy, xx = np.indices(shape)
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def two_touching_discs(shape=(60, 80), r=12, gap=20):
    """Two discs of radius r whose centres are ``gap`` apart: they overlap into one blob."""
    cy = shape[0] // 2
    a = disc(shape, (cy, 25), r)
    b = disc(shape, (cy, 25 + gap), r)
    return a | b, a, b


def bimodal(seed=0, noise=5.0):
    """Two bright squares (and a tiny speck) on a noisy dark background."""
    rng = np.random.default_rng(seed)
    img = rng.normal(100, noise, (64, 64))
    img[10:20, 10:20] += 400
    img[40:55, 30:50] += 400
    img[60:62, 2:4] += 400  # 4-pixel speck
    return img.astype(np.float32)


def assert_labels(out, n):
    assert out.dtype == np.int32
    ids = np.unique(out)
    np.testing.assert_array_equal(ids, np.arange(n + 1))


# --- registry ----------------------------------------------------------------------------


def test_every_op_is_registered_with_the_intended_spec():
    names = {s.name for s in list_ops("segment")}
    assert {
        "segment.threshold",
        "segment.local_threshold",
        "segment.remove_small_objects",
        "segment.fill_holes",
        "segment.watershed_split",
        "segment.expand_labels",
        "segment.nuclei",
        "segment.connected_components",
    } <= names
    for name in names - {"cellpose.segment"}:
        spec = get_op(name)
        assert spec.output == "labels" and spec.spatial, name
    t = get_op("segment.threshold")
    assert t.param("method").choices == ("otsu", "li", "triangle", "yen", "manual")
    assert t.defaults() == {"method": "otsu", "value": 0.0, "min_size": 0}
    assert t.depth is None  # a global threshold cannot run on a halo
    lt = get_op("segment.local_threshold")
    assert lt.param("block_size").default == 51 and lt.param("block_size").minimum == 3
    ws = get_op("segment.watershed_split")
    assert [i.name for i in ws.inputs] == ["labels", "image"]
    assert [i.required for i in ws.inputs] == [True, False]
    assert ws.depth is None and ws.context == ("spacing",)
    ex = get_op("segment.expand_labels")
    assert ex.param("distance").default == 10.0 and ex.depth({"distance": 5}) >= 5
    rs = get_op("segment.remove_small_objects")
    assert rs.param("max_size").optional and rs.param("max_size").default is None


def test_nuclei_spec():
    spec = get_op("segment.nuclei")
    assert spec.params[:7] == tuple(
        spec.param(n)
        for n in (
            "smoothing_sigma",
            "threshold_method",
            "threshold_value",
            "min_size",
            "fill_holes",
            "split_touching",
            "min_distance",
        )
    )
    assert spec.defaults() == {
        "smoothing_sigma": 1.5,
        "threshold_method": "otsu",
        "threshold_value": 0.0,
        "min_size": 30,
        "fill_holes": True,
        "split_touching": True,
        "min_distance": 5,
        "refine_edges": True,
        "edge_level": 0.4,
    }
    assert (spec.param("edge_level").minimum, spec.param("edge_level").maximum) == (0.05, 0.95)
    assert spec.param("min_distance").minimum == 1
    assert spec.context == ("spacing",)
    assert spec.summary.startswith("Segment nuclei")
    assert spec.param("min_distance").help.startswith("Smallest distance in pixels")


# --- thresholds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "noise"), [("otsu", 5), ("li", 5), ("triangle", 5), ("yen", 0), ("otsu", 0)]
)
def test_threshold_finds_the_squares(method, noise):
    img = bimodal(noise=noise)
    out = threshold(img, method=method)
    assert_labels(out, 3)
    assert out[15, 15] == 1 and out[47, 40] == 2 and out[61, 3] == 3  # raster order
    assert np.count_nonzero(out == 2) == 15 * 20
    small = threshold(img, method=method, min_size=10)
    assert_labels(small, 2)
    assert small[61, 3] == 0


def test_threshold_manual_value():
    img = bimodal()
    assert_labels(threshold(img, method="manual", value=300), 3)
    assert not threshold(img, method="manual", value=10_000).any()


def test_threshold_flat_or_empty_gives_empty_labels():
    out = threshold(np.full((16, 16), 7, np.uint16))
    assert out.dtype == np.int32 and out.shape == (16, 16) and not out.any()


def test_threshold_bad_input():
    with pytest.raises(ValueError, match=r"segment.threshold expects a 2D.*got 4 dimension"):
        threshold(np.zeros((2, 2, 8, 8)))
    with pytest.raises(ValueError, match="only NaN"):
        threshold(np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="unknown threshold method 'magic'"):
        threshold(bimodal(), method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_size"):
        threshold(bimodal(), min_size=-1)


def test_threshold_3d():
    vol = np.zeros((10, 20, 20), np.float32)
    vol[2:5, 2:8, 2:8] = 10
    vol[6:9, 10:18, 10:18] = 10
    assert_labels(threshold(vol), 2)


def test_local_threshold_handles_uneven_illumination():
    yy, xx = np.mgrid[0:96, 0:96]
    img = (10 * xx).astype(np.float32)  # strong ramp 0..950
    centers = [(20, 10), (20, 80), (70, 45)]
    for cy, cx in centers:
        img[cy - 3 : cy + 4, cx - 3 : cx + 4] += 200
    # a global threshold finds the bright half of the ramp, not the three spots
    assert threshold(img).max() != 3
    out = local_threshold(img, block_size=21, offset=50)
    assert_labels(out, 3)
    for cy, cx in centers:
        assert out[cy, cx] > 0
    with pytest.raises(ValueError, match="block_size must be an odd"):
        local_threshold(img, block_size=20)


def test_connected_components_connectivity():
    mask = np.zeros((8, 8), bool)
    mask[1:3, 1:3] = True
    mask[3:5, 3:5] = True  # touches the first by a corner only
    mask[6, 7] = True
    assert_labels(connected_components(mask), 3)
    assert_labels(connected_components(mask, diagonal=True), 2)
    assert_labels(connected_components(mask, min_size=2), 2)
    assert_labels(connected_components(mask.astype(np.uint8) * 255), 3)


# --- clean-up ----------------------------------------------------------------------------


def test_remove_small_objects_keeps_order():
    lab = np.zeros((20, 20), np.uint16)
    lab[0:2, 0:2] = 5  # 4 px
    lab[5:10, 5:10] = 7  # 25 px
    lab[12:14, 12:20] = 9  # 16 px
    out = remove_small_objects(lab, min_size=10)
    assert_labels(out, 2)
    assert out[6, 6] == 1 and out[13, 15] == 2 and out[0, 0] == 0
    out = remove_small_objects(lab, min_size=0, max_size=20)
    assert_labels(out, 2)
    assert out[0, 0] == 1 and out[13, 15] == 2 and out[6, 6] == 0
    with pytest.raises(ValueError, match="max_size"):
        remove_small_objects(lab, min_size=10, max_size=5)


def test_labels_ops_never_return_their_input():
    lab = np.zeros((20, 20), np.int32)
    lab[2:12, 2:12] = 1  # 100 px: above the default min_size
    for func in (remove_small_objects, fill_holes, watershed_split, expand_labels):
        out = func(lab)
        assert not np.shares_memory(out, lab), func.__name__
        np.testing.assert_array_equal(out[2:12, 2:12], 1)


def test_labels_input_errors():
    with pytest.raises(ValueError, match="connected_components"):
        remove_small_objects(np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="negative"):
        remove_small_objects(-np.ones((8, 8), np.int16))
    with pytest.raises(ValueError, match="integer object ids"):
        fill_holes(np.ones((8, 8), np.float32))


def test_fill_holes():
    ring = disc((40, 40), (20, 20), 12) & ~disc((40, 40), (20, 20), 5)
    lab = ring.astype(np.int32) * 3
    out = fill_holes(lab)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, disc((40, 40), (20, 20), 12) * 3)  # same id
    kept = fill_holes(lab, max_hole_size=20)  # the hole has 81 pixels
    np.testing.assert_array_equal(kept, lab)


def test_fill_holes_shared_by_two_objects():
    lab = np.zeros((12, 12), np.int32)
    lab[2:10, 2:6] = 1
    lab[2:10, 6:10] = 2
    lab[4:8, 4:8] = 0  # a hole inside both halves
    out = fill_holes(lab)
    assert not (out[4:8, 4:8] == 0).any()
    np.testing.assert_array_equal(out[4:8, 4:6], 1)
    np.testing.assert_array_equal(out[4:8, 6:8], 2)


# --- watershed ---------------------------------------------------------------------------


def test_watershed_splits_two_touching_discs():
    blob, a, b = two_touching_discs()
    assert ndi.label(blob)[1] == 1
    out = watershed_split(blob.astype(np.uint8), min_distance=5)
    assert_labels(out, 2)
    # each half matches its disc (the overlap lens is shared)
    for truth in (a, b):
        best = np.bincount(out[truth]).argmax()
        iou = np.sum((out == best) & truth) / np.sum((out == best) | truth)
        assert iou > 0.85
    # split line: between the two centres
    assert out[30, 25] != out[30, 45]
    # a single disc stays whole
    single = watershed_split(disc((60, 60), (30, 30), 12).astype(np.int32))
    assert_labels(single, 1)


def test_watershed_h_maxima_and_image_landscape():
    blob, _, _ = two_touching_discs()
    assert_labels(watershed_split(blob.astype(np.int32), h=2.0), 2)
    # with an image: the split follows its dark valley, not the geometric neck
    img = np.full(blob.shape, 100.0, np.float32)
    img[:, 38:40] = 10.0
    out = watershed_split(blob.astype(np.int32), img)
    assert_labels(out, 2)
    assert out[30, 37] != out[30, 40]


def test_watershed_never_merges_input_objects():
    lab = np.zeros((20, 40), np.int32)
    lab[5:15, 2:20] = 1
    lab[5:15, 20:38] = 2  # touching object with its own id
    out = watershed_split(lab, min_distance=20)
    assert_labels(out, 2)
    assert (out[lab == 1] == out[5, 2]).all() and (out[lab == 2] == out[5, 37]).all()


def test_watershed_3d_anisotropic_and_deterministic():
    zz, yy, xx = np.indices((12, 40, 60))
    spacing = (2.0, 0.5, 0.5)
    # two touching spheres of radius 5 um, centres 8 um apart, sampled on anisotropic voxels
    blob = np.zeros(zz.shape, bool)
    for cx in (20, 36):
        blob |= ((zz - 6) * 2.0) ** 2 + ((yy - 20) * 0.5) ** 2 + ((xx - cx) * 0.5) ** 2 <= 25
    out = watershed_split(blob.astype(np.int32), min_distance=5, spacing=spacing)
    assert_labels(out, 2)
    assert out[6, 20, 20] != out[6, 20, 36]
    again = watershed_split(blob.astype(np.int32), min_distance=5, spacing=spacing)
    assert out.tobytes() == again.tobytes()


def test_watershed_input_errors():
    with pytest.raises(ValueError, match="differs from labels shape"):
        watershed_split(np.ones((8, 8), np.int32), np.ones((8, 9)))
    with pytest.raises(ValueError, match="min_distance"):
        watershed_split(np.ones((8, 8), np.int32), min_distance=0)


# --- expansion ---------------------------------------------------------------------------


def test_expand_labels_grows_without_overlap():
    lab = np.zeros((30, 30), np.uint8)
    lab[15, 10] = 1
    lab[15, 20] = 2
    out = expand_labels(lab, distance=3)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out == 1, disc((30, 30), (15, 10), 3))
    wide = expand_labels(lab, distance=8)
    assert wide[15, 14] == 1 and wide[15, 16] == 2  # meet half-way, never overlap
    # with a 2x coarser y pixel, distance 4 (physical) reaches 2 rows but 4 columns
    aniso = expand_labels(lab, distance=4, spacing=(2.0, 1.0))
    assert aniso[17, 10] == 1 and aniso[18, 10] == 0 and aniso[15, 14] == 1


# --- the nuclei recipe -------------------------------------------------------------------


def otsu_baseline(img):
    return ndi.label(img > threshold_otsu(img))[0]


def sample_and_seeds():
    image, gt = load_nuclei_2d()
    yield "sample", np.asarray(image.data), gt
    for seed in (21, 22):
        img, lab = make_nuclei_2d((256, 256), 20, seed)
        yield f"seed {seed}", img, lab


def test_nuclei_beats_otsu_baseline_clearly():
    for name, img, gt in sample_and_seeds():
        base = average_precision(gt, otsu_baseline(img))[0.5]
        ours = average_precision(gt, nuclei(img))[0.5]
        assert ours >= 0.8, name
        assert ours >= base + 0.2, (name, base, ours)


def test_nuclei_parts_each_help_on_the_sample():
    image, gt = load_nuclei_2d()
    img = np.asarray(image.data)
    full = average_precision(gt, nuclei(img))[0.5]
    assert average_precision(gt, nuclei(img, split_touching=False))[0.5] < full - 0.05
    assert average_precision(gt, nuclei(img, refine_edges=False))[0.5] < full - 0.05


def test_nuclei_3d_with_spacing():
    stack, gt = make_cells_3d((16, 64, 64), n_cells=4, seed=3)
    out = nuclei(stack[0], spacing=CELLS_3D_VOXEL_SIZE_UM)
    assert out.dtype == np.int32 and out.shape == gt.shape
    assert average_precision(gt, out)[0.5] >= 0.75


def test_nuclei_output_is_deterministic_and_sequential():
    img, _ = make_nuclei_2d((128, 128), 8, seed=5)
    a = nuclei(img)
    b = nuclei(img.copy())
    assert a.tobytes() == b.tobytes()
    assert_labels(a, int(a.max()))
    assert a.max() >= 6


def test_nuclei_empty_and_bad_input():
    assert not nuclei(np.full((32, 32), 100, np.uint16)).any()
    noise = np.random.default_rng(0).normal(100, 1, (64, 64)).astype(np.float32)
    # manual threshold above everything: no nuclei, no error
    assert not nuclei(noise, threshold_method="manual", threshold_value=1e6).any()
    assert not nuclei(noise, threshold_method="manual", threshold_value=-1e6).any()
    with pytest.raises(ValueError, match="edge_level"):
        nuclei(noise, edge_level=1.5)
    with pytest.raises(ValueError, match="got 1 dimension"):
        nuclei(np.zeros(10))
