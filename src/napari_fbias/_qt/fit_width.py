"""Widgets that never make a panel (and so the napari window) wider than the screen.

A ``QLabel`` asks for the width of its longest line and a ``QComboBox`` for
the width of its longest item; in a dock widget either becomes the minimum
width of the whole window, so one long error message or layer name can
squeeze the canvas to nothing. :class:`MessageLine` shows a message wrapped
and shortened, with the full text on demand ("Details"); :func:`narrow_choices`
lets combo boxes shrink and elide long items.
"""

from __future__ import annotations

import re
from typing import Any

from magicgui.widgets import Container, Label, PushButton, TextEdit
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QComboBox, QFrame, QScrollArea, QSizePolicy, QWidget

__all__ = [
    "MessageLine",
    "breakable",
    "fit_height",
    "narrow_choices",
    "scrolled",
    "short_message",
    "wrap_label",
]

#: Characters shown before a message is shortened (the rest is in "Details").
SHORT_LIMIT = 240
#: Longest run of characters without a place to break a line.
_RUN = 30
_BREAK_AFTER = re.compile(r"([/\\_.,:;=&?-])(?=\S)")
_LONG_RUN = re.compile(rf"(\S{{{_RUN}}})(?=\S)")
_ZWSP = "\u200b"


def short_message(text: str, limit: int = SHORT_LIMIT) -> str:
    """Return the first line of ``text`` cut to ``limit`` characters (at a space) with "…"."""
    first = text.strip().split("\n", 1)[0]
    if len(first) <= limit and first == text.strip():
        return first
    if len(first) > limit:
        cut = first[:limit]
        space = cut.rfind(" ")
        first = cut[:space] if space > limit // 2 else cut
    return first.rstrip(" ,;:") + " \u2026"


def breakable(text: str) -> str:
    """Return ``text`` with invisible break points in paths and long words, for wrapping."""
    text = _BREAK_AFTER.sub(rf"\1{_ZWSP}", text)
    return _LONG_RUN.sub(rf"\1{_ZWSP}", text)


class _FitHeight(QObject):
    """Keeps a wrapped label as tall as its lines at its current width.

    Box layouts give a word-wrapped label the height of its size hint (the
    lines at its preferred width), which cuts lines off in a narrow panel.
    """

    def eventFilter(self, obj: Any, event: Any) -> bool:
        """Refit the label when its width changes (Qt API)."""
        if event.type() == QEvent.Type.Resize:
            fit_height(obj)
        return False


def fit_height(native: Any) -> None:
    """Give a word-wrapped ``QLabel`` the height its text needs at its width."""
    need = native.heightForWidth(native.width()) if native.text() else 0
    if need >= 0 and native.minimumHeight() != need:
        native.setMinimumHeight(need)


def wrap_label(native: Any) -> None:
    """Make a ``QLabel`` wrap its text and never ask for more width than it is given."""
    native.setWordWrap(True)
    native.setMinimumWidth(0)
    policy = native.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    native.setSizePolicy(policy)
    native.installEventFilter(_FitHeight(native))


def narrow_choices(container: Any) -> None:
    """Let every combo box under ``container`` (a magicgui widget) shrink; long items elide."""
    for combo in container.native.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)


class MessageLine(Container):
    """A status message: wrapped, shortened when long, the full text under "Details".

    ``value`` is the full message; setting it shows its first line (at most
    :data:`SHORT_LIMIT` characters) and, when that is not all of it, a
    "Details" button that shows the whole text in a read-only box. A new
    message is scrolled into view when the panel scrolls.

    Parameters
    ----------
    name : str
        Name of the widget in its container.
    """

    def __init__(self, name: str = "status") -> None:
        self.text = Label(name="text", value="")
        self.details_button = PushButton(name="details_button", text="Details")
        self.details = TextEdit(name="details", value="")
        super().__init__(
            name=name,
            labels=False,
            widgets=[self.text, self.details_button, self.details],
        )
        self.margins = (0, 0, 0, 0)
        wrap_label(self.text.native)
        self.text.native.setTextFormat(Qt.TextFormat.PlainText)
        self.details.read_only = True
        self.details.native.setMaximumHeight(140)
        self.details_button.native.setSizePolicy(
            QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed
        )
        self.details_button.tooltip = "Show the whole message"
        self.details_button.changed.connect(self.toggle_details)
        self._value = ""
        self._shortened = False
        self._expanded = False
        self._show("")

    @property
    def value(self) -> str:
        """The full message ("" when none)."""
        return self._value

    @value.setter
    def value(self, text: str) -> None:
        self._show(str(text or ""))

    @property
    def shortened(self) -> bool:
        """True when the line shows only part of the message."""
        return self._shortened

    @property
    def expanded(self) -> bool:
        """True while the whole message is shown below the line."""
        return self._expanded

    def toggle_details(self) -> None:
        """Show or hide the whole message."""
        self._expanded = not self._expanded
        self.details.visible = self._expanded
        self.details_button.text = "Hide details" if self._expanded else "Details"
        QTimer.singleShot(0, self.reveal)

    def reveal(self) -> None:
        """Scroll the panel around the message (if any) so that the message shows."""
        try:
            parent = self.native.parentWidget()
            while parent is not None and not isinstance(parent, QScrollArea):
                parent = parent.parentWidget()
            if parent is not None and self._value:
                parent.ensureWidgetVisible(self.native, 0, 0)
        except RuntimeError:  # the panel is gone
            return

    def _show(self, text: str) -> None:
        self._value = text
        short = short_message(text) if text else ""
        self.text.value = breakable(short)
        fit_height(self.text.native)
        self.text.visible = bool(text)
        self.details.value = text
        self.details.visible = self._expanded = False
        self.details_button.text = "Details"
        self._shortened = bool(text) and short != text.strip()
        self.details_button.visible = self._shortened
        if text:
            QTimer.singleShot(0, self.reveal)


def scrolled(page: QWidget) -> QScrollArea:
    """Put ``page`` in a frameless, resizable scroll area, so a panel fits a short dock."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(page)
    return area
