"""The base of the OMERO browser's parts: a titled box that works for the browser.

A part reads the viewer and the workspace, starts its work with the
browser's :class:`~.jobs.OmeroJobs` and asks the browser for its connection;
it holds no connection of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QGroupBox

from napari_fbias._qt.omero.jobs import OmeroJobs
from napari_fbias.io.omero.connection import OmeroConnection

__all__ = ["OmeroBox"]


class OmeroBox(QGroupBox):
    """A part of the OMERO browser.

    Parameters
    ----------
    title : str
        Shown on the box.
    viewer : napari.viewer.Viewer
        The browser's viewer.
    workspace : Workspace
        The viewer's workspace (running session, tables).
    jobs : OmeroJobs
        The browser's workers.
    connection : callable
        Returns the browser's connection (None when logged out).
    """

    def __init__(
        self,
        title: str,
        viewer: Any,
        workspace: Any,
        jobs: OmeroJobs,
        connection: Callable[[], OmeroConnection | None],
    ) -> None:
        super().__init__(title)
        self.viewer = viewer
        self.workspace = workspace
        self.jobs = jobs
        self._connection = connection
