"""Check whether omero-py, an optional extra (``napari-fbias[omero]``), is installed.

Nothing here imports omero; the check looks for the modules without loading
them, so it is cheap enough for a widget to call when it is built.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from napari_fbias.io.omero.errors import INSTALL_MESSAGE, OmeroNotInstalledError

__all__ = ["INSTALL_MESSAGE", "omero_available", "require_omero"]


def omero_available() -> bool:
    """Return True when omero-py and its zeroc-ice dependency can be imported."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("omero", "Ice"))
    except (ImportError, ValueError):
        return False


def require_omero(module: str = "omero.gateway") -> ModuleType:
    """Import and return an omero-py module, or raise a clear install message.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"omero.gateway"`` or ``"omero_rois"``.

    Raises
    ------
    OmeroNotInstalledError
        When omero-py (or omero-rois, for ``omero_rois``) is missing.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = INSTALL_MESSAGE
        if module.startswith("omero_rois"):
            message = (
                "sending labels back as OMERO ROIs needs omero-rois: "
                "`pip install 'napari-fbias[omero]'`."
            )
        raise OmeroNotInstalledError(f"{message} (import of {module!r} failed: {exc})") from exc
