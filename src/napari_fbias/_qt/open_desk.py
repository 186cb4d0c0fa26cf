"""The Open desk dock: the whole consultation in one compact panel.

One dock holds the workflow of an open desk as tabs, in the order a
consultation goes:

* **Session**: start, join (shared session space) or reopen a session;
* **Open**: an OME-Zarr folder or URL, a TIFF file, OMERO; a plate's overview
  and one well's field;
* **Approaches**: who tries what, notes, the recorded steps (and loading a
  step's settings back into its widget);
* **Analyse**: Segment, Tune (settings from a few annotated objects), Track and
  Measure (sub-tabs);
* **Compare**: object counts per approach, show or hide an approach's
  layers, recompute another analyst's approach here;
* **Export**: the conclusion (solution, issues raised, next steps) and the
  delivery bundle with its report.

Above the tabs, whatever tab is shown: the session header, the approach
being recorded into (a choice), the last message and *Save session*.

The pages are the same widgets as the single docks (the Session panel's pages
and the Open, Segment, Track and Measure widgets), so everything they do is
recorded the same way; the single widgets stay in the Plugins menu for those
who prefer them. Every page scrolls and every message wraps
(:mod:`.fit_width`), and the dock is at most :data:`MAX_WIDTH` wide, so it
fits a 1366x768 laptop screen with the canvas keeping at least 40 % of the
window width.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QGroupBox, QTabWidget, QVBoxLayout, QWidget

from napari_fbias._qt.fit_width import scrolled
from napari_fbias._qt.measure_widget import MeasureWidget
from napari_fbias._qt.open_widget import OpenWidget
from napari_fbias._qt.plate_widget import PlateWidget
from napari_fbias._qt.segment_widget import SegmentWidget
from napari_fbias._qt.session_widget import SessionWidget
from napari_fbias._qt.track_widget import TrackWidget
from napari_fbias._qt.tune_widget import TuneWidget
from napari_fbias._qt.workspace import get_workspace

__all__ = ["MAX_WIDTH", "TABS", "OpenDeskWidget"]

#: The tabs, in the order of a consultation.
TABS = ("Session", "Open", "Approaches", "Analyse", "Compare", "Export")
#: Sub-tabs of Analyse.
ANALYSE = ("Segment", "Tune", "Track", "Measure")
#: Widest the dock may be (pixels): on a 1366 px screen the canvas keeps 40 %.
MAX_WIDTH = 440


class OpenDeskWidget(QWidget):
    """The Open desk dock (a napari dock widget): session, open, analyse, compare, export.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose workspace records the session.
    root : str or Path, optional
        Folder of session folders to list for reopening (as the Session panel).
    """

    def __init__(self, napari_viewer: Any, *, root: Any = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.workspace = get_workspace(napari_viewer)
        self.session = SessionWidget(
            napari_viewer, workspace=self.workspace, root=root, embedded=True
        )
        self.open = OpenWidget(napari_viewer)
        self.plate = PlateWidget(napari_viewer)
        self.segment = SegmentWidget(napari_viewer)
        self.track = TrackWidget(napari_viewer)
        self.measure = MeasureWidget(napari_viewer)
        self.tune = TuneWidget(napari_viewer)
        pages = self.session.page_widgets
        self.analyse = QTabWidget()
        self.analyse.setDocumentMode(True)
        for widget in (self.segment, self.track, self.measure):
            self.analyse.addTab(widget.native, widget.title)  # they scroll by themselves
        self.analyse.insertTab(1, scrolled(self.tune), self.tune.title)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        #: tab title -> page
        self.pages: dict[str, QWidget] = {
            "Session": scrolled(pages["Session"]),
            "Open": scrolled(_open_page(self.open.native, self.plate.native)),
            "Approaches": scrolled(pages["Approaches"]),
            "Analyse": self.analyse,
            "Compare": scrolled(pages["Compare"]),
            "Export": scrolled(_export_page(pages["Conclusion"], pages["Export"])),
        }
        for title in TABS:
            self.tabs.addTab(self.pages[title], title)
        self.tabs.setTabToolTip(TABS.index("Analyse"), "Segment, Tune, Track and Measure")
        self.tabs.setTabToolTip(
            TABS.index("Export"), "The conclusion of the session and the delivery bundle"
        )
        self.session.page_requested.connect(self.show_page)
        self.session.settings_loaded.connect(self._show_loaded)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.session)
        layout.addWidget(self.tabs, 1)
        self.setMaximumWidth(MAX_WIDTH)

    @property
    def op_widgets(self) -> dict[str, Any]:
        """The operation widgets of the dock by title ("Segment", "Track", "Measure")."""
        return {w.title: w for w in (self.segment, self.track, self.measure)}

    def show_page(self, title: str) -> None:
        """Bring ``title`` to the front: a tab, a sub-tab of Analyse, or "Conclusion"."""
        if title == "Tune":
            self.analyse.setCurrentIndex(ANALYSE.index("Tune"))
            title = "Analyse"
        elif title in ANALYSE:
            self.analyse.setCurrentWidget(self.op_widgets[title].native)
            title = "Analyse"
        elif title == "Conclusion":
            title = "Export"
        self.tabs.setCurrentWidget(self.pages[title])

    def _show_loaded(self, names: list[str]) -> None:
        """After *Load settings into the widget*, show the widget that received them."""
        for name in names:
            if name in ANALYSE:
                self.show_page(name)
                return


def _open_page(open_widget: QWidget, plate: QWidget) -> QWidget:
    """Build the Open tab: a path or URL (and OMERO), then a plate's wells and fields."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(open_widget)
    box = QGroupBox("Plate (HCS)")
    QVBoxLayout(box).addWidget(plate)
    layout.addWidget(box)
    layout.addStretch(1)
    return page


def _export_page(conclusion: QWidget, export: QWidget) -> QWidget:
    """Build the Export tab: the conclusion first, then the delivery bundle."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    box = QGroupBox("Conclusion")
    QVBoxLayout(box).addWidget(conclusion)
    layout.addWidget(box)
    layout.addWidget(export)  # a "Delivery bundle" group of its own
    layout.addStretch(1)
    return page
