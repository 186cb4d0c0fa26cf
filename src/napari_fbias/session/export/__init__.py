"""Export a session as a delivery bundle: pipeline, script, notebook, report, provenance.

>>> from napari_fbias.session.export import export_bundle
>>> export_bundle("~/.napari-fbias/sessions/2026-...", "delivery/")  # doctest: +SKIP

See :mod:`.bundle` for the bundle's layout and ``docs/delivery.md``. The
scripts and notebooks in a bundle run through :mod:`.runtime`. Nothing here
imports Qt or napari.
"""

from napari_fbias.session.export.bundle import ExportResult, export_bundle, scrub_session
from napari_fbias.session.export.errors import ExportError

__all__ = ["ExportError", "ExportResult", "export_bundle", "scrub_session"]
