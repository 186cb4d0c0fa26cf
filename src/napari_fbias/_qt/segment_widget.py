"""The Segment widget: the nuclei recipe, the classical thresholds and cellpose.

Choose an image layer (and one time point / channel / plane when it has
``t``/``c``/``z``), a method and its settings, press Run: a Labels layer
``"<approach>: <method>"`` appears and the step is recorded. Changing a
setting and running again replaces that layer and that step (tick "new
result" to keep the old one). Cellpose keeps the network output of the last
images, so re-running with another ``flow_threshold`` or
``cellprob_threshold`` only recomputes the masks.
"""

from __future__ import annotations

import napari

from napari_fbias._qt.op_widget import OpWidget
from napari_fbias.ops.registry import list_ops

__all__ = ["DEFAULT_METHOD", "SegmentWidget", "segment_methods"]

#: The method selected when the widget opens.
DEFAULT_METHOD = "segment.nuclei"
CELLPOSE = "cellpose.segment"


def segment_methods() -> list[str]:
    """Segmentation ops that take an image: the nuclei recipe first, cellpose last."""
    names = [
        s.name
        for s in list_ops("segment")
        if s.inputs and s.inputs[0].kind == "image" and s.output == "labels"
    ]
    first = [n for n in (DEFAULT_METHOD,) if n in names]
    last = [n for n in (CELLPOSE,) if n in names]
    return first + sorted(n for n in names if n not in first + last) + last


class SegmentWidget(OpWidget):
    """Segment an image layer into a Labels layer (recorded as a step)."""

    title = "Segment"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, segment_methods(), select_axes=("t", "c", "z"))
