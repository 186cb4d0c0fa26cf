"""The object-size estimate, on images the recipes were not tuned on (issue 15's first piece)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk, ellipsoid

from napari_fbias.ops.object_size import object_diameter, object_size
from napari_fbias.pipeline import Pipeline


def discs(d: float, n: int | None = None, *, slope: float = 0.0, seed: int = 0) -> np.ndarray:
    """Bright discs of diameter ``d`` (+-15 %), blurred and noisy, on a sloping background.

    Default ``n`` covers about a quarter of the image (neighbours touch and overlap).
    """
    rng = np.random.default_rng(seed)
    shape = (512, 512)
    img = np.zeros(shape)
    n = n or max(3, int(0.25 * shape[0] * shape[1] / (np.pi * (d / 2) ** 2)))
    for _ in range(n):
        r = d / 2 * rng.uniform(0.85, 1.15)
        centre = rng.uniform(r, shape[0] - r), rng.uniform(r, shape[1] - r)
        rr, cc = disk(centre, r, shape=shape)
        img[rr, cc] = rng.uniform(0.6, 1.0)
    img = ndi.gaussian_filter(img, 1.0)
    img += slope * np.linspace(0, 1, shape[1])[np.newaxis, :]
    img += rng.normal(0, 0.05, shape)
    return (img * 1000 + 200).astype(np.uint16)


@pytest.mark.parametrize("d", [6, 8, 12, 16, 24, 32, 40, 48, 60])
@pytest.mark.parametrize("slope", [0.0, 2.0], ids=["even", "uneven"])
def test_the_estimate_lands_within_a_quarter_of_the_true_diameter(d: int, slope: float) -> None:
    for n in (None, 40):  # crowded (a quarter of the image), and sparse
        found, details = object_diameter(discs(d, n, slope=slope, seed=d))
        assert abs(found / d - 1) <= 0.25, (d, n, slope, found, details)


def test_an_anisotropic_volume_is_measured_in_physical_space() -> None:
    rng = np.random.default_rng(3)
    z_step = 3.0  # z is sampled 3x more coarsely than y and x
    vol = np.zeros((40, 128, 128))
    ball = ellipsoid(12 / z_step / 2, 6, 6)[1:-1, 1:-1, 1:-1]  # 12 px across in y, x
    for _ in range(30):
        z, y, x = (rng.integers(0, s - b) for s, b in zip(vol.shape, ball.shape, strict=True))
        vol[z : z + ball.shape[0], y : y + ball.shape[1], x : x + ball.shape[2]] += ball
    vol = ndi.gaussian_filter(np.clip(vol, 0, 1), 0.7) + rng.normal(0, 0.03, vol.shape)
    found, _ = object_diameter(vol, spacing=(z_step, 1.0, 1.0))
    assert abs(found / 12 - 1) <= 0.25, found


def test_the_operation_runs_in_a_pipeline_with_physical_units() -> None:
    pipeline = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "size",
            "inputs": {"image": {"kind": "image", "axes": "yx"}},
            "steps": [{"id": "size", "op": "measure.object_size", "inputs": {"image": "image"}}],
            "outputs": {"size": {"from": "size"}},
        }
    )
    table = object_size(discs(20, seed=1), spacing=(0.5, 0.5))
    assert list(table.columns) == ["diameter", "diameter_physical", "sigma", "covered"]
    assert table["diameter_physical"][0] == pytest.approx(table["diameter"][0] * 0.5)
    results = pipeline.run(discs(20, seed=1))
    assert abs(results["size"]["diameter"][0] / 20 - 1) <= 0.25


def test_no_contrast_and_wrong_dimensions_are_refused() -> None:
    with pytest.raises(ValueError, match="no contrast"):
        object_diameter(np.full((64, 64), 7, np.uint16))
    with pytest.raises(ValueError, match="2D or 3D"):
        object_diameter(np.zeros((2, 2, 2, 2)))
