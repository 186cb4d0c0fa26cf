"""The OMERO browser where the manifest and the Open widget find it (it lives in :mod:`.omero`)."""

from __future__ import annotations

from napari_fbias._qt.omero.browse_model import open_images
from napari_fbias._qt.omero.browser import OmeroWidget
from napari_fbias._qt.omero.sendback_model import (
    NO_TABLE,
    export_attachments,
    export_session,
    omero_source_of,
    table_file_name,
)

__all__ = [
    "NO_TABLE",
    "OmeroWidget",
    "export_attachments",
    "export_session",
    "omero_source_of",
    "open_images",
    "table_file_name",
]
