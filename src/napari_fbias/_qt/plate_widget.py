"""The Plate widget: a plate's overview, and one well's field at full resolution.

Type (or pick from a plate overview layer) the path or URL of an OME-Zarr
plate, also one wrapped by bioformats2raw, or an OMERO Plate
(``omero://HOST/Plate:ID``; the OMERO browser's *Open plate* fills it in),
and press *Read plate*: its
layout is read in a worker (:func:`~napari_fbias.io.ome_zarr_plate.read_plate`),
the wells and fields fill the choices, and *Show overview* tiles one field of
every well at a low resolution, lazily, with the wells outlined and named.
*Open field* opens the chosen well's field at full resolution as ordinary
layers (its source is the field's own path, ``plate.zarr/B/3/0``, or its
OMERO image, ``omero://HOST/Image:ID``), so that everything run on it is
recorded and rerun like any image. Both sources share one Qt-free model
(:class:`~napari_fbias.io.ome_zarr_plate.Plate`). ``fbias run
PIPELINE plate.zarr`` runs a pipeline over every field.
"""

from __future__ import annotations

from typing import Any

import napari
from magicgui.widgets import ComboBox, Container, LineEdit, PushButton, SpinBox

from napari_fbias._qt.fit_width import MessageLine, narrow_choices
from napari_fbias._qt.layer_axes import unwrap
from napari_fbias._qt.workers import start_worker
from napari_fbias.session.secrets import sanitize_uri

__all__ = ["PlateWidget", "show_plate"]

#: The Plate widget's display name in the plugin manifest (napari reuses an open one).
WIDGET_TITLE = "Plate"

LayerData = tuple[Any, dict[str, Any], str]


def _read(source: str) -> Any:
    from napari_fbias.io.ome_zarr_plate import read_plate

    return read_plate(source)


def _overview_layers(plate: Any, field: int) -> list[LayerData]:
    from napari_fbias._reader import plate_layer_data

    # the plate read, not its shown source: that one lacks the URL's credentials
    return plate_layer_data(plate, field=field)


def _field_layers(source: str, name: str) -> list[LayerData]:
    from napari_fbias._layers import image_to_layer_data
    from napari_fbias.io.open import open_image

    return image_to_layer_data(open_image(source).with_(name=name))


def show_plate(viewer: napari.viewer.Viewer, source: str) -> PlateWidget:
    """Show the Plate widget (the one docked, else a new one) and read the plate ``source``."""
    widget: Any = None
    try:
        _dock, widget = viewer.window.add_plugin_dock_widget("napari-fbias", WIDGET_TITLE)
    except Exception:  # the plugin is not registered with napari (a test, a script)
        widget = None
    if not isinstance(widget, PlateWidget):
        widget = PlateWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Plate")
    widget.source.value = source
    widget.read()
    return widget


class PlateWidget(Container):
    """Read an OME-Zarr plate, show its overview, open one well's field (a napari dock widget)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = unwrap(viewer)
        self.plate: Any = None
        self._worker: Any = None
        self.source = LineEdit(
            name="source",
            label="plate",
            tooltip="Path or URL of an OME-Zarr plate (also one wrapped by bioformats2raw), "
            "or an OMERO Plate: omero://HOST/Plate:ID",
        )
        self.source.native.setPlaceholderText("/data/screen.ome.zarr or https://.../plate.zarr")
        self.read_button = PushButton(name="read", text="Read plate")
        self.well = ComboBox(name="well", label="well", choices=self._well_names)
        self.field = SpinBox(name="field", label="field", min=0, max=0, value=0)
        self.overview_button = PushButton(name="overview", text="Show overview")
        self.open_button = PushButton(name="open_field", text="Open field")
        self.status = MessageLine(name="status")
        narrow_choices(self.well)
        self.extend(
            [
                self.source,
                self.read_button,
                self.well,
                self.field,
                Container(
                    layout="horizontal",
                    labels=False,
                    widgets=[self.overview_button, self.open_button],
                ),
                self.status,
            ]
        )
        self.read_button.changed.connect(self.read)
        self.source.native.returnPressed.connect(self.read)
        self.well.changed.connect(self._on_well)
        self.overview_button.changed.connect(self.show_overview)
        self.open_button.changed.connect(self.open_field)
        self.viewer.layers.selection.events.active.connect(self._on_active_layer)
        self._set_enabled()

    # --- state ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a plate is read or a field is opened."""
        return self._worker is not None

    def _set_enabled(self) -> None:
        idle = self._worker is None
        self.read_button.enabled = idle
        for w in (self.well, self.field, self.overview_button, self.open_button):
            w.enabled = idle and self.plate is not None

    def _start(self, func: Any, *args: Any, desc: str, returned: Any) -> Any:
        if self._worker is not None:
            return None
        self._worker = start_worker(
            func,
            *args,
            desc=desc,
            returned=returned,
            errored=self._on_failed,
            finished=self._on_finished,
        )
        self._set_enabled()
        return self._worker

    def _on_finished(self) -> None:
        self._worker = None
        self._set_enabled()

    def _on_failed(self, exc: BaseException) -> None:
        self.status.value = f"{type(exc).__name__}: {exc}"

    def _well_names(self, _widget: Any = None) -> list[str]:
        """Return the well names of the plate read (the well box asks again on napari resets)."""
        return [w.name for w in self.plate.wells] if self.plate is not None else []

    def _on_active_layer(self, event: Any = None) -> None:
        """Pick the plate of a selected plate overview layer."""
        layer = self.viewer.layers.selection.active
        plate = (getattr(layer, "metadata", None) or {}).get("plate")
        if not (isinstance(plate, dict) and plate.get("source")):
            return
        try:
            if not self.source.value:
                self.source.value = plate["source"]
        except RuntimeError:  # the widget was closed: stop listening
            self.viewer.layers.selection.events.active.disconnect(self._on_active_layer)

    # --- actions ----------------------------------------------------------------------------
    def read(self) -> Any:
        """Read the plate's layout in a worker; return the worker (None when busy or empty)."""
        source = str(self.source.value).strip()
        if not source:
            self.status.value = "Type the path or URL of an OME-Zarr plate (or omero://) first."
            return None
        self.status.value = f"Reading {sanitize_uri(source)}..."
        return self._start(_read, source, desc="Reading the plate", returned=self._on_read)

    def _on_read(self, plate: Any) -> None:
        self.plate = plate
        self.well.reset_choices()
        self._on_well()
        n_fields = sum(len(w.fields) for w in plate.wells)
        self.status.value = (
            f"Plate {plate.name!r}: {len(plate.rows)} x {len(plate.columns)}, "
            f"{len(plate.wells)} wells, {n_fields} fields."
        )

    def _on_well(self, *_args: Any) -> None:
        if self.plate is None or not self.well.value:
            return
        n = len(self.plate.well(self.well.value).fields)
        self.field.max = max(n - 1, 0)
        self.field.enabled = n > 1

    def show_overview(self) -> Any:
        """Add the overview of field ``field`` of every well (lazy); return the worker."""
        if self.plate is None:
            return None
        field = int(self.field.value)
        self.status.value = f"Tiling field {field} of every well..."
        return self._start(
            _overview_layers,
            self.plate,
            field,
            desc="Tiling the plate",
            returned=self._add_layers,
        )

    def open_field(self) -> Any:
        """Open the chosen well's field at full resolution; return the worker."""
        if self.plate is None or not self.well.value:
            return None
        try:
            (chosen,) = self.plate.fields(wells=[self.well.value], fields=[int(self.field.value)])
        except (KeyError, ValueError) as exc:
            self.status.value = str(exc.args[0] if exc.args else exc)
            return None
        self.status.value = f"Opening well {chosen.well.name}, field {chosen.index}..."
        name = f"{self.plate.name} {chosen.stem}"
        return self._start(
            _field_layers, chosen.source, name, desc="Opening the field", returned=self._add_layers
        )

    def _add_layers(self, layers: list[LayerData]) -> None:
        added = []
        for data, kwargs, layer_type in layers:
            out = getattr(self.viewer, f"add_{layer_type}")(data, **kwargs)
            added += out if isinstance(out, list) else [out]
        self.status.value = "Added " + ", ".join(layer.name for layer in added)
