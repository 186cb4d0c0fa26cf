"""OMERO client: connect, browse, read images lazily, send results back.

Qt-free. omero-py is an optional extra (``napari-fbias[omero]``): importing
this package never imports it; functions that need it raise
:class:`OmeroNotInstalledError` with the install command. Modules:

* :mod:`.uri` — ``omero://`` URIs and OMERO.web links;
* :mod:`.connection` — :class:`OmeroConnection` (login, session key, CLI
  session, groups, keep-alive, reconnect) and the registry readers use;
* :mod:`.browse` — lazy tree of :class:`Node` values, thumbnails, batch expansion;
* :mod:`.pixels` — lazy, pyramid-aware reader returning ``MultiscaleImage``;
* :mod:`.zarr_pixels` — images stored as OME-Zarr read from their store (fallback: pixels);
* :mod:`.plate` — OMERO Plates in the plate model shared with OME-Zarr plates;
* :mod:`.sendback` — labels as ROIs, tables, report/pipeline as attachments.
"""

from napari_fbias.io.omero.availability import INSTALL_MESSAGE, omero_available
from napari_fbias.io.omero.browse import (
    Node,
    expand_omero_inputs,
    get_thumbnail,
    list_children,
    list_roots,
)
from napari_fbias.io.omero.connection import (
    ALL_GROUPS,
    OmeroConnection,
    get_connection,
    register_connection,
    unregister_connection,
)
from napari_fbias.io.omero.errors import (
    OmeroAuthenticationError,
    OmeroConnectionError,
    OmeroError,
    OmeroNotInstalledError,
    OmeroNotLoggedInError,
    OmeroObjectNotFoundError,
    OmeroPermissionError,
    OmeroPixelsError,
    OmeroSendBackError,
    OmeroUriError,
)
from napari_fbias.io.omero.pixels import open_omero_image, read_omero_image
from napari_fbias.io.omero.sendback import NAMESPACE, SendBackResult, send_back
from napari_fbias.io.omero.uri import (
    OmeroRef,
    format_omero_uri,
    is_omero_uri,
    parse_omero_uri,
    parse_omero_uris,
)
from napari_fbias.io.omero.zarr_pixels import ZarrAccess, set_zarr_access

__all__ = [
    "ALL_GROUPS",
    "INSTALL_MESSAGE",
    "NAMESPACE",
    "Node",
    "OmeroAuthenticationError",
    "OmeroConnection",
    "OmeroConnectionError",
    "OmeroError",
    "OmeroNotInstalledError",
    "OmeroNotLoggedInError",
    "OmeroObjectNotFoundError",
    "OmeroPermissionError",
    "OmeroPixelsError",
    "OmeroRef",
    "OmeroSendBackError",
    "OmeroUriError",
    "SendBackResult",
    "ZarrAccess",
    "expand_omero_inputs",
    "format_omero_uri",
    "get_connection",
    "get_thumbnail",
    "is_omero_uri",
    "list_children",
    "list_roots",
    "omero_available",
    "open_omero_image",
    "parse_omero_uri",
    "parse_omero_uris",
    "read_omero_image",
    "register_connection",
    "send_back",
    "set_zarr_access",
    "unregister_connection",
]
