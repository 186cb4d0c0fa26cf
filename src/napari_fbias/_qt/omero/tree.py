"""The OMERO tree: Projects > Datasets > Images and Screens > Plates > Wells > fields.

:class:`OmeroTree` shows :class:`~napari_fbias.io.omero.browse.Node` values
(a ``QTreeWidget``: magicgui has no tree). It never talks to a server: when
an item is expanded for the first time it emits :attr:`OmeroTree.expand_requested`
with the node, and the browser fetches the children off the GUI thread and
hands them back with :meth:`OmeroTree.add_children`; thumbnails come the
same way (:meth:`OmeroTree.set_thumbnail`). A filter box hides the loaded
items whose name (and whose descendants' names) do not match.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.omero.browse_model import THUMBNAIL_SIZE
from napari_fbias.io.omero.browse import ORPHANED_IMAGES, Node

__all__ = ["NODE_ROLE", "OmeroTree", "array_icon", "node_key"]

#: Item data role holding the item's Node.
NODE_ROLE = int(Qt.ItemDataRole.UserRole)
#: Item data role: True once the children were fetched.
LOADED_ROLE = NODE_ROLE + 1
#: Text of the placeholder child shown until the children are fetched.
LOADING_TEXT = "loading..."

NodeKey = tuple[str, int, Any]


def node_key(node: Node) -> NodeKey:
    """Identify a tree position: kind, id and parent (an image may sit in several datasets)."""
    return (node.kind, int(node.id), node.parent)


def array_icon(rgb: np.ndarray) -> QIcon:
    """Return an icon showing an RGB or RGBA uint8 array (a thumbnail)."""
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    arr = np.ascontiguousarray(arr[..., :4].astype(np.uint8, copy=False))
    h, w, n = arr.shape
    fmt = QImage.Format.Format_RGBA8888 if n == 4 else QImage.Format.Format_RGB888
    image = QImage(arr.data, w, h, n * w, fmt).copy()  # copy: Qt must not keep numpy's memory
    return QIcon(QPixmap.fromImage(image))


class OmeroTree(QWidget):
    """A filter box over a lazy tree of OMERO nodes.

    Signals
    -------
    expand_requested : Node
        An item was expanded whose children were not fetched yet.
    open_requested : list of Node
        Images were double-clicked (one) or :meth:`selected_images` asked.
    """

    expand_requested = Signal(object)
    open_requested = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter loaded items by name")
        self.filter.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Name", "Items"])
        self.tree.setColumnCount(2)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setIconSize(self.tree.iconSize().expandedTo(_size(THUMBNAIL_SIZE // 2)))
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, self.tree.header().ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.tree.itemExpanded.connect(self._on_expanded)
        self.tree.itemDoubleClicked.connect(self._on_double_clicked)
        self.filter.textChanged.connect(self.apply_filter)

    # --- content ---------------------------------------------------------------------------
    def clear(self) -> None:
        """Remove every item."""
        self.tree.clear()

    def set_roots(self, nodes: Sequence[Node]) -> None:
        """Show ``nodes`` as the top of the tree (replacing everything)."""
        self.tree.clear()
        for node in nodes:
            self.tree.addTopLevelItem(self._make_item(node))
        self.apply_filter(self.filter.text())

    def add_children(self, parent: Node, nodes: Sequence[Node]) -> list[QTreeWidgetItem]:
        """Put the fetched children of ``parent`` under its item(s); return the new items."""
        new = []
        for item in self.items_for(parent):
            item.takeChildren()
            for node in nodes:
                child = self._make_item(node)
                item.addChild(child)
                new.append(child)
            item.setData(0, LOADED_ROLE, True)
            if not nodes:
                item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicator)
        self.apply_filter(self.filter.text())
        return new

    def mark_failed(self, parent: Node) -> None:
        """Let ``parent`` be expanded again (its children could not be fetched)."""
        for item in self.items_for(parent):
            item.setData(0, LOADED_ROLE, False)
            item.setExpanded(False)

    def set_thumbnail(self, image_id: int, rgb: np.ndarray | None) -> int:
        """Show a thumbnail on every item of ``Image:image_id``; return how many items."""
        if rgb is None:
            return 0
        icon = array_icon(rgb)
        items = [
            it
            for it in self.iter_items()
            if (n := self.node(it)) and n.is_image and n.id == image_id
        ]
        for it in items:
            it.setIcon(0, icon)
        return len(items)

    def _make_item(self, node: Node) -> QTreeWidgetItem:
        item = QTreeWidgetItem(
            [node.name, "" if node.child_count is None else str(node.child_count)]
        )
        item.setData(0, NODE_ROLE, node)
        item.setData(0, LOADED_ROLE, not node.has_children)
        tip = f"{node.kind}:{node.id}" if node.kind != ORPHANED_IMAGES else node.name
        if node.owner:
            tip += f", owner {node.owner}"
        if node.uri:
            tip += f"\n{node.uri}"
        item.setToolTip(0, tip)
        style = self.style()
        if node.is_image:
            item.setIcon(0, style.standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        else:
            item.setIcon(0, style.standardIcon(QStyle.StandardPixmap.SP_DirIcon))
        if node.has_children:
            item.addChild(QTreeWidgetItem([LOADING_TEXT]))
        return item

    # --- reading ---------------------------------------------------------------------------
    @staticmethod
    def node(item: QTreeWidgetItem | None) -> Node | None:
        """Return the Node of an item (None for the placeholder)."""
        if item is None:
            return None
        value = item.data(0, NODE_ROLE)
        return value if isinstance(value, Node) else None

    def iter_items(self) -> Iterator[QTreeWidgetItem]:
        """Every item with a node, depth first."""
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop(0)
            if self.node(item) is None:
                continue
            yield item
            stack[0:0] = [item.child(i) for i in range(item.childCount())]

    def items_for(self, node: Node) -> list[QTreeWidgetItem]:
        """Return the items showing ``node`` (same kind, id and parent)."""
        key = node_key(node)
        return [it for it in self.iter_items() if node_key(self.node(it)) == key]  # type: ignore[arg-type]

    def find(self, kind: str, name: str) -> QTreeWidgetItem | None:
        """Return the first loaded item of ``kind`` called ``name`` (None if none)."""
        for item in self.iter_items():
            n = self.node(item)
            if n is not None and n.kind == kind and n.name == name:
                return item
        return None

    def is_loaded(self, item: QTreeWidgetItem) -> bool:
        """Tell whether the children of ``item`` were fetched."""
        return bool(item.data(0, LOADED_ROLE))

    def selected_images(self) -> list[Node]:
        """Return the selected image nodes, in tree order."""
        selected = set(map(id, self.tree.selectedItems()))
        return [
            n
            for it in self.iter_items()
            if id(it) in selected and (n := self.node(it)) is not None and n.is_image
        ]

    # --- filtering --------------------------------------------------------------------------
    def apply_filter(self, text: str) -> None:
        """Show only loaded items whose name, or a descendant's name, contains ``text``."""
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            self._filter(self.tree.topLevelItem(i), needle)

    def _filter(self, item: QTreeWidgetItem, needle: str) -> bool:
        node = self.node(item)
        if node is None:  # placeholder: follows its parent
            return False
        shown_child = False
        for i in range(item.childCount()):
            shown_child |= self._filter(item.child(i), needle)
        visible = not needle or needle in node.name.lower() or shown_child
        item.setHidden(not visible)
        return visible

    # --- events -----------------------------------------------------------------------------
    def _on_expanded(self, item: QTreeWidgetItem) -> None:
        node = self.node(item)
        if node is None or self.is_loaded(item):
            return
        item.setData(0, LOADED_ROLE, True)  # one request per item
        self.expand_requested.emit(node)

    def _on_double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        node = self.node(item)
        if node is not None and node.is_image:
            self.open_requested.emit([node])


def _size(n: int) -> Any:
    from qtpy.QtCore import QSize

    return QSize(n, n)
