"""Optional parts of napari-fbias (pip extras) and the error that names a missing one.

The base install (``pip install napari-fbias``) is the headless core: OME-Zarr
and TIFF I/O, the classical operations, tracking, pipelines, the ``fbias``
command line and dask. Everything heavier is an extra, installed with
``pip install "napari-fbias[EXTRA]"``:

========== ================================================ =========================
extra      what it adds                                     needed for
========== ================================================ =========================
napari     napari, magicgui, qtpy (no Qt binding)           the napari plugin
qt         ``napari`` + PyQt6                               napari with a Qt binding
cellpose   cellpose (and PyTorch)                           the ``cellpose.segment`` op
s3         s3fs                                             ``s3://`` sources
slurm      dask-jobqueue                                    ``fbias run --cluster slurm``
omero      omero-py, omero-rois (see docs/omero.md)         ``omero://`` sources
all        qt, cellpose, s3 and slurm                       everything but OMERO
========== ================================================ =========================

Code that needs an optional package calls :func:`require` where the package
is used (never at module level), so a missing extra is reported when the
user asks for what needs it, by a :class:`MissingExtraError` saying which
extra to install, rather than as an ``ImportError`` traceback. This module
imports nothing optional.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtraError", "has_module", "install_command", "require"]

#: Extra -> the importable top-level modules it provides (what :func:`require` checks).
EXTRAS: dict[str, tuple[str, ...]] = {
    "napari": ("napari", "magicgui", "qtpy"),
    "qt": ("napari", "magicgui", "qtpy", "PyQt6"),
    "cellpose": ("cellpose", "torch"),
    "s3": ("s3fs",),
    "slurm": ("dask_jobqueue",),
    "omero": ("omero", "omero_rois"),
    "tune": ("optuna",),
}


def install_command(extra: str) -> str:
    """Return the pip command that installs an extra: ``pip install "napari-fbias[s3]"``."""
    return f'pip install "napari-fbias[{extra}]"'


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that installs it.

    Attributes
    ----------
    extra : str
        The extra to install (``"cellpose"``, ``"s3"``...).
    package : str
        The module that could not be imported.
    """

    extra: str = ""
    package: str = ""

    def __init__(self, message: str, *, extra: str = "", package: str = "") -> None:
        super().__init__(message, name=package or None)
        if extra:
            self.extra = extra
        if package:
            self.package = package


def has_module(module: str) -> bool:
    """Return True when ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken spec
        return False


def require(module: str, extra: str, *, what: str = "") -> ModuleType:
    """Import and return ``module``, or raise a :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module : str
        The module to import (``"cellpose.models"``, ``"s3fs"``).
    extra : str
        The napari-fbias extra that installs it (``"cellpose"``, ``"s3"``).
    what : str
        What needs it, for the message (``"the cellpose.segment operation"``,
        ``"reading s3:// URLs"``); default: napari-fbias.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtraError
        When ``module`` (or a package it needs) cannot be imported. The
        message says what needed it, which package is missing and the pip
        command that installs the extra.

    Examples
    --------
    >>> models = require("cellpose.models", "cellpose", what="the cellpose.segment operation")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        who = what or "napari-fbias"
        if isinstance(exc, ModuleNotFoundError):
            missing = exc.name or module
            problem = f"{missing.split('.')[0]}, which is not installed here"
        else:  # installed, but broken (a missing system library, a wrong build...)
            missing = module
            problem = f"{module}, which is installed but cannot be imported ({exc})"
        raise MissingExtraError(
            f"{who} needs {problem}. Install the '{extra}' extra: {install_command(extra)}",
            extra=extra,
            package=missing,
        ) from exc
