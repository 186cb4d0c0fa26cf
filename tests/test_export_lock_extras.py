"""A bundle whose pipeline needs an extra (cellpose) locks that extra's packages too."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from napari_fbias.session.export.bundle import _extras_needed
from napari_fbias.session.export.envlock import lock_text


def _exported(*ops: str) -> SimpleNamespace:
    steps = [SimpleNamespace(op=op) for op in ops]
    return SimpleNamespace(pipeline=SimpleNamespace(steps=steps))


def test_the_extras_a_bundle_needs_follow_its_operations() -> None:
    assert _extras_needed([_exported("segment.nuclei", "measure.regionprops")]) == ()
    both = [_exported("segment.nuclei"), _exported("cellpose.segment")]
    assert _extras_needed(both) == ("cellpose",)


def test_the_lock_of_a_cellpose_bundle_pins_cellpose() -> None:
    pytest.importorskip("cellpose")
    names = {line.split("==")[0].lower() for line in lock_text().splitlines() if "==" in line}
    assert "cellpose" not in names  # the headless core does not need it
    with_extra = lock_text(extras=("cellpose",))
    pinned = {line.split("==")[0].lower() for line in with_extra.splitlines() if "==" in line}
    assert "cellpose" in pinned and "torch" in pinned
