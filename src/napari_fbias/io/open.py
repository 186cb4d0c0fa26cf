"""One entry point to open any image we support: :func:`open_image`.

* ``omero://HOST/Image:ID`` URIs and OMERO.web links go to the OMERO reader
  (``napari-fbias[omero]``);
* ``.tif``/``.tiff`` files to :func:`napari_fbias.io.tiff.read_tiff`;
* everything else (local folders, ``http(s)://``, ``s3://``) to the OME-Zarr
  reader :func:`napari_fbias.io.ome_zarr_read.read_ome_zarr`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from napari_fbias.io.errors import FbiasIOError
from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.ome_zarr_read import is_ome_zarr, read_ome_zarr

__all__ = ["is_ome_zarr", "is_omero_source", "is_tiff", "open_image"]

_TIFF_SUFFIXES = (".tif", ".tiff")
_OMERO_WEB = re.compile(r"/(webclient|webgateway|iviewer)(/|\?|$)")


def is_omero_source(source: object) -> bool:
    """Return True for an ``omero://`` URI or an OMERO.web link (no server contacted)."""
    if not isinstance(source, str):
        return False
    try:
        from napari_fbias.io.omero.uri import is_omero_uri
    except ImportError:  # the OMERO part is optional
        parts = urlsplit(source.strip())
        if parts.scheme.lower() == "omero":
            return True
        return parts.scheme.lower() in ("http", "https") and bool(_OMERO_WEB.search(parts.path))
    return is_omero_uri(source)


def is_tiff(source: str | os.PathLike[str]) -> bool:
    """Return True when ``source`` names a TIFF file (by its extension)."""
    s = str(source)
    path = urlsplit(s).path if "://" in s else s
    return path.lower().endswith(_TIFF_SUFFIXES)


def _open_omero(source: str) -> MultiscaleImage:
    try:
        from napari_fbias.io.omero import open_omero_image  # type: ignore[attr-defined]
    except ImportError:
        try:
            from napari_fbias.io.omero.pixels import open_omero_image
        except ImportError as exc:
            raise FbiasIOError(
                f"cannot open {source}: OMERO support is not installed; "
                'install it with `pip install "napari-fbias[omero]"`'
            ) from exc
    return open_omero_image(source)


def open_image(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    axes: str | Sequence[str] | None = None,
    timeout: float | None = None,
    missing_chunks: Literal["fill", "error"] = "fill",
) -> MultiscaleImage:
    """Open an image lazily, whatever it is.

    Parameters
    ----------
    source : str or path-like
        Local OME-Zarr folder or TIFF file, ``http(s)://`` or ``s3://``
        OME-Zarr URL, ``omero://HOST/Image:ID`` or an OMERO.web link.
    storage_options : mapping, optional
        fsspec options for remote OME-Zarr (e.g. S3 ``endpoint_url``).
    axes : str or sequence of str, optional
        TIFF only: names of the stored dimensions when the file does not say.
    timeout : float, optional
        Seconds to wait for a remote OME-Zarr server.
    missing_chunks : {"fill", "error"}
        OME-Zarr only: read a chunk missing from the store as the fill value
        (the Zarr spec's default) or raise
        :class:`~napari_fbias.io.errors.MissingDataError` naming it (for a
        store known to be complete, e.g. a copy that may be partial).

    Returns
    -------
    MultiscaleImage
        The image; pixel data are not read yet.

    Raises
    ------
    FbiasIOError
        Or one of its subclasses, with the reason and the source.
    """
    s = str(source)
    if is_omero_source(s):
        return _open_omero(s)
    if is_tiff(s):
        if "://" in s and not s.startswith("file://"):
            raise FbiasIOError(f"cannot open {s}: remote TIFF files are not supported")
        from napari_fbias.io.remote import local_path
        from napari_fbias.io.tiff import read_tiff

        return read_tiff(local_path(s), axes=axes)
    if axes is not None:
        raise FbiasIOError(f"axes= is for TIFF files only; {s} carries its own axes")
    return read_ome_zarr(
        s, storage_options=storage_options, timeout=timeout, missing_chunks=missing_chunks
    )
