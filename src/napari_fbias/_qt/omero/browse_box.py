"""The "Browse and open" part of the OMERO browser: the tree, Open, Refresh and a link field.

Children and thumbnails are fetched in workers when a node is expanded
(:mod:`.browse_model`); images open by double-click, the Open button, or a
pasted ``omero://`` URI or OMERO.web link: lazily (metadata only), shown
with the same layer data as our reader (multiscale for pyramids) and, when a
session is running, recorded in it by their URI (never credentials).
*Open plate* shows a selected Plate in the Plate widget: the same overview
and well/field picker as for OME-Zarr plates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout

from napari_fbias._qt.layer_axes import image_ref, layer_kind
from napari_fbias._qt.omero.box import OmeroBox
from napari_fbias._qt.omero.browse_model import children, open_images, thumbnails
from napari_fbias._qt.omero.jobs import connection_for
from napari_fbias._qt.omero.tree import OmeroTree
from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.omero.browse import Node, list_roots
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroError, OmeroUriError
from napari_fbias.io.omero.uri import OmeroRef, parse_omero_uris

__all__ = ["BrowseBox"]


class BrowseBox(OmeroBox):
    """The tree of the server's objects, and the ways to open images (see :class:`OmeroBox`).

    Signals
    -------
    opened
        Images were opened as layers.
    """

    opened = Signal()

    def __init__(self, *args: Any) -> None:
        super().__init__("Browse and open", *args)
        self.tree = OmeroTree()
        self.tree.expand_requested.connect(self.expand)
        self.tree.open_requested.connect(self.open_nodes)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the selected images as layers (or double-click one)")
        self.open_button.clicked.connect(self.open_selected)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.plate_button = QPushButton("Open plate")
        self.plate_button.setToolTip(
            "Show the selected plate's overview and pick a well and field (Plate widget)"
        )
        self.plate_button.clicked.connect(self.open_plate)
        self.uri = QLineEdit()
        self.uri.setPlaceholderText("omero://HOST/Image:ID or an OMERO.web link")
        self.uri.returnPressed.connect(self.open_uri)
        self.uri_button = QPushButton("Open link")
        self.uri_button.clicked.connect(self.open_uri)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.plate_button)
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.uri, 1)
        row.addWidget(self.uri_button)
        layout.addLayout(row)

    def enable(self, on: bool) -> None:
        """Let the tree and its buttons be used (only while connected)."""
        for w in (self.tree, self.open_button, self.plate_button, self.refresh_button):
            w.setEnabled(on)

    # --- browsing ------------------------------------------------------------------------
    def refresh(self) -> Any:
        """List the top of the tree again."""
        conn = self._connection()
        if conn is None:
            return None
        return self.jobs.start(
            list_roots, conn, done=self.tree.set_roots, action="listing the server"
        )

    def expand(self, node: Node) -> Any:
        """Fetch the children of ``node`` (in a worker), then the thumbnails of its images."""
        conn = self._connection()
        if conn is None:
            return None
        return self.jobs.start(
            children,
            conn,
            node,
            done=self._on_children,
            action=f"listing {node.name}",
            failed=lambda _exc: self.tree.mark_failed(node),
        )

    def _on_children(self, result: tuple[Node, list[Node]]) -> None:
        parent, nodes = result
        self.tree.add_children(parent, nodes)
        ids = list(dict.fromkeys(n.id for n in nodes if n.is_image))
        conn = self._connection()
        if ids and conn is not None:
            self.jobs.start(
                thumbnails,
                conn,
                ids,
                done=lambda _r: None,
                yielded=self._on_thumbnail,
                action=f"fetching the thumbnails of {parent.name}",
            )

    def _on_thumbnail(self, item: tuple[int, Any]) -> None:
        self.tree.set_thumbnail(*item)

    # --- opening -------------------------------------------------------------------------
    def open_selected(self) -> Any:
        """Open the images selected in the tree."""
        nodes = self.tree.selected_images()
        if not nodes:
            self.jobs.say("Select one or more images first")
            return None
        return self.open_nodes(nodes)

    def open_nodes(self, nodes: Sequence[Node]) -> Any:
        """Open image nodes as layers (lazily, in a worker)."""
        conn = self._connection()
        if conn is None:
            return None
        pairs = [(conn, OmeroRef(conn.host, conn.port, "Image", n.id)) for n in nodes if n.is_image]
        return self._open(pairs)

    def open_plate(self, node: Node | None = None) -> Any:
        """Show the selected Plate (or ``node``) in the Plate widget; return that widget."""
        from napari_fbias._qt.plate_widget import show_plate

        if not isinstance(node, Node):
            items = self.tree.tree.selectedItems()
            plates = [n for it in items if (n := self.tree.node(it)) and n.kind == "Plate"]
            node = plates[0] if plates else None
        if node is None or node.uri is None:
            self.jobs.say("Select a plate first")
            return None
        self.jobs.say(f"Showing {node.name} in the Plate widget")
        return show_plate(self.viewer, node.uri)

    def open_uri(self, text: str | None = None) -> Any:
        """Open ``omero://HOST/Image:ID`` or an OMERO.web link (default: the link field)."""
        from napari.utils.notifications import show_error

        text = (self.uri.text() if text is None or isinstance(text, bool) else text).strip()
        try:
            refs = parse_omero_uris(text)
            if len(refs) == 1 and refs[0].kind == "Plate":  # a plate: its overview and picker
                from napari_fbias._qt.plate_widget import show_plate

                return show_plate(self.viewer, refs[0].uri)
            not_images = [r for r in refs if r.kind != "Image"]
            if not_images:
                r = not_images[0]
                raise OmeroUriError(
                    f"{text} names {r.kind}:{r.id}, not an image; expand it in the tree and open "
                    "its images"
                )
            web = not text.lower().startswith("omero:")
            pairs = [(connection_for(r, self._connection(), web=web), r) for r in refs]
        except OmeroError as exc:
            self.jobs.say(str(exc))
            show_error(f"OMERO: {exc}")
            return None
        return self._open(pairs)

    def _open(self, pairs: list[tuple[OmeroConnection, OmeroRef]]) -> Any:
        if not pairs:
            return None
        what = ", ".join(f"Image:{r.id}" for _, r in pairs)
        self.jobs.say(f"Opening {what}...")
        return self.jobs.start(
            open_images, pairs, done=self._on_opened, action=f"opening {what}", progress=True
        )

    def _on_opened(self, results: list[tuple[MultiscaleImage, list]]) -> None:
        from napari_fbias._qt.open_widget import remember

        names = []
        for image, layer_data in results:
            added = []
            for data, kwargs, layer_type in layer_data:
                out = getattr(self.viewer, f"add_{layer_type}")(data, **kwargs)
                added += out if isinstance(out, list) else [out]
            self._record_image(added)
            remember(image.source)
            names.append(f"{image.name} ({image.source})")
        self.jobs.say("Opened " + "; ".join(names))
        self.opened.emit()

    def _record_image(self, layers: list[Any]) -> None:
        """Record the image of ``layers`` (by URI) in the running session, if one runs."""
        from napari.utils.notifications import show_warning

        rec = self.workspace.recorder
        images = [layer for layer in layers if layer_kind(layer) == "image"]
        if rec is None or not images:
            return
        shown: dict[str, dict[str, int]] = {}
        try:
            for layer in images:
                ref, sel = image_ref(layer, "image")
                shown[layer.name] = sel
            rec.add_image(ref, layers=shown)
        except ValueError as exc:  # e.g. two channels of the same name: say it, keep the layers
            show_warning(f"the session could not record {images[0].name!r}: {exc}")
