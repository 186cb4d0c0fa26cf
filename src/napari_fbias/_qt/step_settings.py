"""Load a recorded step's settings back into the operation widgets.

The Session panel asks for it (*Load settings into the widget*); the
workspace passes the request (``Workspace.events.settings_requested``) to
every open operation widget, and each one that offers the step's operation
fills in its method, settings, input layers and plane. Widgets made for
the operation (Segment, Track, Measure) are asked first, *Any operation*
only when none of them is open; when no widget offering it is open, the one
made for it is docked first. Nothing runs and nothing is recorded: the
analyst changes what they like and presses Run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from napari_fbias.session.model import RecordedStep

__all__ = ["SettingsRequest", "load_step_settings", "widget_for_op"]

PLUGIN = "napari-fbias"
#: Widget (manifest display name) docked for an operation when none offering it is open.
ANY_OPERATION = "Any operation"


@dataclass(eq=False)
class SettingsRequest:
    """A recorded step whose settings go into the widgets; they add their names to ``loaded_into``.

    ``any_widget`` is False while only the widgets made for an operation are
    asked, True when the widget offering every operation may load it too.
    """

    step: RecordedStep
    approach: str
    any_widget: bool = False
    loaded_into: list[str] = field(default_factory=list)


def widget_for_op(op: str) -> str:
    """Return the manifest name of the widget made for ``op`` (``"Segment"``...)."""
    from napari_fbias._qt.segment_widget import segment_methods
    from napari_fbias._qt.track_widget import TRACK_METHODS

    if op in segment_methods():
        return "Segment"
    if op in TRACK_METHODS:
        return "Track"
    if op == "measure.regionprops":
        return "Measure"
    return ANY_OPERATION


def load_step_settings(viewer: Any, workspace: Any, step: RecordedStep, approach: str) -> list[str]:
    """Load ``step``'s settings into the open widgets offering its operation; return their names.

    When no open widget offers it, the widget made for it is docked and
    loaded. Raises ``KeyError`` for an operation that is not installed here.
    """
    from napari_fbias.ops.registry import get_op

    get_op(step.op)  # an unknown op raises here, before anything is docked
    request = SettingsRequest(step, approach)
    workspace.events.settings_requested.emit(request)
    if not request.loaded_into:
        request.any_widget = True
        workspace.events.settings_requested.emit(request)
    if not request.loaded_into:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, widget_for_op(step.op))
        if widget.load_settings(step):
            request.loaded_into.append(widget.title)
    return request.loaded_into
