"""The Open widget: an OME-Zarr (or TIFF) path or URL -> layers, with recent entries.

The image is opened lazily with :func:`napari_fbias.io.open.open_image` in a
worker thread (a remote store may be slow to answer) and shown with the same
layer data as our napari reader (:func:`napari_fbias._layers.image_to_layer_data`),
so that its layers carry their source, axes and pixel size.

Recent entries live in ``recent.json`` in the user config folder
(``$FBIAS_CONFIG_DIR``, else the platform's config folder for
``napari-fbias``): at most :data:`MAX_RECENT` locations, never credentials
(user names, passwords and secret query parameters are removed first).

OMERO: the "OMERO..." button opens the OMERO browser (``_qt/omero/``)
when it is installed; otherwise it stays disabled and says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton

from napari_fbias._qt.layer_axes import unwrap
from napari_fbias._qt.workers import start_worker
from napari_fbias.io.atomic import atomic_write_text
from napari_fbias.session.secrets import sanitize_uri, scrub_text

__all__ = [
    "CONFIG_DIR_ENV",
    "MAX_RECENT",
    "OpenWidget",
    "load_recent",
    "open_layer_data",
    "recent_file",
    "remember",
]

CONFIG_DIR_ENV = "FBIAS_CONFIG_DIR"
MAX_RECENT = 10
RECENT_NAME = "recent.json"
#: Module and class names of the OMERO browser widget, tried in this order.
OMERO_MODULE = "napari_fbias._qt.omero_widget"
OMERO_WIDGETS = ("OmeroWidget", "OmeroBrowserWidget", "OmeroBrowser")


def recent_file() -> Path:
    """Path of the recent-entries file (``$FBIAS_CONFIG_DIR/recent.json`` or the user config)."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser() / RECENT_NAME
    try:
        from platformdirs import user_config_dir
    except ImportError:  # pragma: no cover - platformdirs comes with napari
        return Path.home() / ".config" / "napari-fbias" / RECENT_NAME
    return Path(user_config_dir("napari-fbias", appauthor=False)) / RECENT_NAME


def load_recent() -> list[str]:
    """Return the recent locations, newest first (an unreadable file counts as empty)."""
    path = recent_file()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = doc.get("recent") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return []
    return [sanitize_uri(s) for s in items if isinstance(s, str) and s][:MAX_RECENT]


def remember(source: str) -> list[str]:
    """Put ``source`` (without credentials) first in the recent list and save it atomically."""
    clean = sanitize_uri(str(source).strip())
    items = [clean, *(s for s in load_recent() if s != clean)][:MAX_RECENT]
    path = recent_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"recent": items}, indent=1) + "\n")
    return items


def open_layer_data(source: str) -> list[tuple[Any, dict[str, Any], str]]:
    """Open ``source`` lazily and return its napari layer data (run in a worker thread)."""
    from napari_fbias._layers import image_to_layer_data
    from napari_fbias.io.errors import ExtraAxesError
    from napari_fbias.io.open import open_image

    try:
        return image_to_layer_data(open_image(source))
    except ExtraAxesError:  # an extra axis (angle...): a slider of the layers
        from napari_fbias._reader import read_ome_zarr_layers

        return read_ome_zarr_layers(source)


def omero_widget_class() -> Any:
    """Return the OMERO browser widget class, or None when it is not installed."""
    if importlib.util.find_spec(OMERO_MODULE) is None:
        return None
    module = importlib.import_module(OMERO_MODULE)
    for name in OMERO_WIDGETS:
        if hasattr(module, name):
            return getattr(module, name)
    return None


class OpenWidget(Container):
    """Open an OME-Zarr image (local folder or URL) or a TIFF file as layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = unwrap(viewer)
        self._worker: Any = None
        self._opening = ""
        self.source = LineEdit(
            name="source",
            label="path or URL",
            tooltip="An OME-Zarr folder, an http(s):// or s3:// OME-Zarr URL, or a TIFF file",
        )
        self.source.native.setPlaceholderText("/data/image.ome.zarr or https://.../image.zarr")
        self.recent = ComboBox(
            name="recent", label="recent", choices=self._recent_choices, nullable=True
        )
        self.browse_button = PushButton(name="browse", text="Browse folder...")
        self.open_button = PushButton(name="open", text="Open")
        self.omero_button = PushButton(name="omero", text="OMERO...")
        self.status = Label(value="")
        self.extend(
            [
                self.source,
                self.recent,
                Container(
                    layout="horizontal",
                    labels=False,
                    widgets=[self.browse_button, self.open_button],
                ),
                # --- OMERO: the browser (another widget) opens from here -------------
                self.omero_button,
                self.status,
            ]
        )
        self.recent.changed.connect(self._on_recent)
        self.browse_button.changed.connect(self._on_browse)
        self.open_button.changed.connect(self.open)
        self.source.native.returnPressed.connect(self.open)
        self.omero_button.changed.connect(self.open_omero)
        has_omero = omero_widget_class() is not None
        self.omero_button.enabled = has_omero
        self.omero_button.tooltip = (
            "Browse an OMERO server" if has_omero else "The OMERO browser is not installed yet"
        )

    def _recent_choices(self, widget: Any = None) -> list[str]:
        return load_recent()

    def _on_recent(self, value: str | None) -> None:
        if value:
            self.source.value = value

    def _on_browse(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self.native, "Open an OME-Zarr folder")
        if folder:
            self.source.value = folder
            self.open()

    @property
    def running(self) -> bool:
        """True while an image is being opened."""
        return self._worker is not None

    def open(self) -> Any:
        """Open the path or URL in the field; return the worker (None if nothing to open)."""
        from napari.utils.notifications import show_error

        source = str(self.source.value).strip()
        if self._worker is not None:
            return None
        if not source:
            show_error("Open: type a path or URL first")
            self.status.value = "Nothing to open"
            return None
        self._opening = source
        self.open_button.enabled = False
        self.status.value = f"Opening {sanitize_uri(source)}..."
        self._worker = start_worker(
            open_layer_data,
            source,
            desc="Opening image",
            returned=self._on_opened,
            errored=self._on_failed,
            finished=self._on_finished,
        )
        return self._worker

    def _on_opened(self, layers: list[tuple[Any, dict[str, Any], str]]) -> None:
        added: list[Any] = []
        try:
            for data, kwargs, layer_type in layers:
                out = getattr(self.viewer, f"add_{layer_type}")(data, **kwargs)
                added += out if isinstance(out, list) else [out]
        except Exception as exc:  # pixels unreadable (corrupt chunk, server gone): no half image
            for layer in added:
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
            self._on_failed(exc)
            return
        remember(self._opening)
        self.recent.reset_choices()
        names = ", ".join(layer.name for layer in added)
        self.status.value = f"Opened {sanitize_uri(self._opening)}: {names}"

    def _on_failed(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        where = sanitize_uri(self._opening)
        show_error(f"Could not open {where}: {scrub_text(str(exc))}")
        self.status.value = f"Could not open {where}"

    def _on_finished(self) -> None:
        self._worker = None
        self.open_button.enabled = True

    def open_omero(self) -> Any:
        """Dock the OMERO browser (when installed); return it."""
        cls = omero_widget_class()
        if cls is None:
            return None
        widget = cls(self.viewer)
        self.viewer.window.add_dock_widget(widget, name="OMERO", area="right")
        return widget
