"""Showing another analyst's result here: recompute their steps, bit for bit, or say why not."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_fbias.io.open import open_image
from napari_fbias.pipeline.provenance import array_sha256
from napari_fbias.session import SessionRecorder, open_session
from napari_fbias.session.recompute import CannotRecomputeError, recompute_approach, value_digest


def _image(path, seed=0):
    rng = np.random.default_rng(seed)
    data = (rng.random((64, 64)) * 1000).astype(np.uint16)
    data[20:40, 20:40] += 3000
    tifffile.imwrite(path, data)
    return path


def _record(tmp_path):
    src = _image(tmp_path / "cells.tif")
    img = open_image(str(src))
    rec = SessionRecorder.start("show", user_name="Ann", folder=tmp_path / "s")
    name = rec.add_image(img, checksum="sha256:" + array_sha256(np.asarray(img.data)))
    rec.add_approach("classical", "Marie")
    rec.record_step("preprocess.gaussian", {"sigma": 1.0}, {"image": name}, "A: smooth")
    rec.record_step("segment.threshold", {}, {"image": "A: smooth"}, "A: mask")
    return rec, src


def test_another_analysts_steps_recompute_to_the_same_pixels(tmp_path):
    from napari_fbias.ops.registry import get_op
    from napari_fbias.pipeline.model import Step
    from napari_fbias.pipeline.runner import compute_step
    from napari_fbias.pipeline.values import Value

    rec, src = _record(tmp_path)
    other = open_session(rec.link, analysts=["Jon"])  # Jon's napari, joining
    got = recompute_approach(other.session, "A")
    assert list(got) == ["gaussian", "threshold"]
    img = open_image(str(src))
    v = Value(np.asarray(img.data), "image", "yx", tuple(img.scale), None)
    smooth = compute_step(
        get_op("preprocess.gaussian"), Step("g", "preprocess.gaussian", {}, {"sigma": 1.0}), [v]
    )
    assert value_digest(got["gaussian"]) == value_digest(smooth)
    assert got["threshold"].data.max() >= 1
    other.close()
    rec.close()


def test_other_pixels_or_an_unreadable_source_are_said_clearly(tmp_path):
    rec, src = _record(tmp_path)
    _image(src, seed=1)  # the file changed since it was recorded
    with pytest.raises(CannotRecomputeError, match="other pixels here than when it was recorded"):
        recompute_approach(rec.session, "A")
    src.unlink()
    with pytest.raises(CannotRecomputeError, match=r"cannot be read here from .*cells\.tif"):
        recompute_approach(rec.session, "A")
    rec.close()
