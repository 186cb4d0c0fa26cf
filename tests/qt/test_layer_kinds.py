"""One map from a kind of data to napari layer types, for the pickers and the workspace alike."""

from __future__ import annotations

import typing
from typing import Any

import napari.layers
import numpy as np
import pytest

from napari_fbias._qt.layer_kinds import INPUT_LAYERS, OUTPUT_LAYER, input_layer_types
from napari_fbias._qt.op_widget import layer_choices
from napari_fbias._qt.workspace import WorkspaceError, get_workspace
from napari_fbias.ops.registry import list_ops
from napari_fbias.ops.types import KIND_OF_TYPE, DataKind

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

KINDS = set(typing.get_args(DataKind))


def test_every_kind_of_data_has_napari_layer_types() -> None:
    assert KINDS == set(KIND_OF_TYPE.values()) == set(INPUT_LAYERS) == set(OUTPUT_LAYER)
    for kind in KINDS:
        assert input_layer_types(kind), kind
        assert set(input_layer_types(kind)) <= napari.layers.NAMES, kind
        # a result can be read back by a step that takes its kind
        assert OUTPUT_LAYER[kind] in input_layer_types(kind), kind


def test_every_operation_input_has_layers_to_read() -> None:
    for spec in list_ops():
        for inp in spec.inputs:
            assert input_layer_types(inp.kind), f"{spec.name}: input {inp.name} ({inp.kind})"


def _one_layer_of_each_type(viewer: Any) -> list[Any]:
    plane = np.zeros((16, 16), dtype=np.uint8)
    return [
        viewer.add_image(plane, name="an image"),
        viewer.add_labels(plane, name="some labels"),
        viewer.add_points(np.array([[1.0, 1.0]]), name="some points"),
        viewer.add_tracks(np.array([[1, 0, 1.0, 1.0], [1, 1, 2.0, 2.0]]), name="some tracks"),
        viewer.add_shapes([np.array([[1, 1], [1, 5], [5, 5]])], shape_type="polygon"),
    ]


def test_the_pickers_offer_exactly_what_the_workspace_accepts(make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    layers = _one_layer_of_each_type(viewer)
    ws = get_workspace(viewer)
    tried = set()
    for spec in list_ops():
        first = spec.inputs[0]
        if first.kind in tried or len([i for i in spec.inputs if i.required]) != 1:
            continue
        tried.add(first.kind)
        offered = {name for name, _ in layer_choices(viewer, first.kind)}
        assert offered, first.kind
        for layer in layers:
            # axes that fit no layer: an accepted layer stops there, before any work starts
            with pytest.raises(WorkspaceError) as caught:
                ws.run_op(spec.name, {first.name: layer}, {}, axes="q")
            refused = f"needs {first.kind} data" in str(caught.value)
            assert refused == (layer.name not in offered), (spec.name, layer.name, caught.value)
    assert {"image", "labels", "spots"} <= tried
    assert ws.recorder is None or not ws.recorder.session.all_steps()
