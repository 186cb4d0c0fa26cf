"""Image input/output: one image model, OME-Zarr (local and remote), sample data.

Nothing here imports Qt or napari.
"""

from napari_fbias.io.errors import FbiasIOError, NotOmeZarrError, UnreachableSourceError
from napari_fbias.io.image import Channel, MultiscaleImage

__all__ = [
    "Channel",
    "FbiasIOError",
    "MultiscaleImage",
    "NotOmeZarrError",
    "UnreachableSourceError",
]
