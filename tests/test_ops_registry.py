"""The operation registry: built-in modules, optional extras, chunk-wise strategies."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_fbias.io.image import from_array
from napari_fbias.ops import chunk_stitch, chunks, registry, segment
from napari_fbias.ops.registry import get_op, register_op
from napari_fbias.ops.types import Image, Labels
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline


def test_a_missing_builtin_module_is_a_clear_packaging_error(monkeypatch):
    get_op("segment.threshold")  # load the real ones first
    monkeypatch.setattr(registry, "BUILTIN_MODULES", ("napari_fbias.ops.no_such_module",))
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(ImportError, match="installed incompletely.*no_such_module.*Reinstall"):
        get_op("segment.threshold")
    assert registry._loaded is False, "the next use tries again"


def test_without_cellpose_the_op_names_the_extra_to_install(monkeypatch):
    from napari_fbias.ops.cellpose_models import cellpose_models

    monkeypatch.setitem(sys.modules, "cellpose", None)
    monkeypatch.delitem(sys.modules, "cellpose.models", raising=False)
    assert get_op("cellpose.segment").name == "cellpose.segment"  # registered all the same
    with pytest.raises(ImportError, match=r"napari-fbias\[cellpose\]") as exc:
        cellpose_models()
    assert exc.value.extra == "cellpose"


def test_the_segmentation_ops_declare_their_strategies_beside_them():
    assert get_op("segment.threshold").chunked is chunks.threshold_chunks
    assert get_op("segment.connected_components").chunked is chunks.components_chunks
    assert get_op("segment.remove_small_objects").chunked is chunks.remove_small_chunks
    nuclei = get_op("segment.nuclei").chunked  # bound to the recipe's own code after the threshold
    assert nuclei.func is chunk_stitch.nuclei_chunks
    assert nuclei.keywords["after_threshold"] is segment.nuclei_from_threshold
    assert get_op("segment.watershed_split").chunked is chunk_stitch.watershed_split_chunks
    assert get_op("segment.local_threshold").chunked is None  # needs its neighbourhood: refused


CALLS: list[tuple[int, ...]] = []


def _halves(call, data, n_loop, params):
    """A strategy of a test op: the op on each block, and a note of every call."""

    def block(b: np.ndarray) -> np.ndarray:
        CALLS.append(b.shape)
        return call(b.reshape(b.shape[n_loop:]), **params).reshape(b.shape)

    return data.map_blocks(block, dtype=np.int32, meta=np.empty((0,) * data.ndim, np.int32))


@register_op("testing.halves", category="testing", spatial=False, chunked=_halves)
def halves(image: Image, *, level: float = 0.5) -> Labels:
    """Label the pixels above ``level`` times the image's maximum (test op with a strategy)."""
    return (np.asarray(image) > level * 255).astype(np.int32)


def test_a_strategy_declared_with_the_op_runs_it_chunk_wise():
    CALLS.clear()
    p = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "halves",
            "inputs": {"image": {"kind": "image"}},
            "steps": [{"id": "h", "op": "testing.halves", "inputs": {"image": "image"}}],
            "outputs": {"h": {"from": "h"}},
        }
    )
    img = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 256
    res = run_pipeline(p, from_array(img.astype(np.uint8), axes="yx"), chunked=True, chunks=32)
    assert res.record["steps"][0]["mode"] == "chunked"
    np.testing.assert_array_equal(np.asarray(res["h"]), (img > 127).astype(np.int32))
    assert sorted(CALLS) == [(32, 32)] * 4
