"""Which napari layer type holds each kind of data: the one map, for every widget.

An operation's data inputs and outputs have a kind (``image``, ``labels``,
``tracks``, ``spots``, ``table``: :data:`napari_fbias.ops.types.DataKind`).
:data:`INPUT_LAYERS` says which napari layer types can feed an input of each
kind (the layer pickers offer those, :meth:`Workspace.run_op
<napari_fbias._qt.workspace.Workspace.run_op>` refuses the others);
:data:`OUTPUT_LAYER` says which layer type shows a result of each kind (a
table is shown as the features of the labels layer it measured). No Qt, no
napari import: the layer types are napari's class names, lower case.
"""

from __future__ import annotations

__all__ = ["INPUT_LAYERS", "OUTPUT_LAYER", "input_layer_types"]

#: napari layer types that can feed an input of each kind of data.
INPUT_LAYERS: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "labels": ("labels",),
    "tracks": ("tracks",),
    "spots": ("points",),
    "table": ("labels", "points", "tracks"),  # their features (a measured labels layer...)
}
#: napari layer type that shows a result of each kind of data.
OUTPUT_LAYER: dict[str, str] = {
    "image": "image",
    "labels": "labels",
    "tracks": "tracks",
    "spots": "points",
    "table": "labels",
}


def input_layer_types(kind: str) -> tuple[str, ...]:
    """Return the napari layer types that can feed an input of ``kind`` (none if unknown)."""
    return INPUT_LAYERS.get(kind, ())
