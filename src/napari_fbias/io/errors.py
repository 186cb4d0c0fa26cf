"""Errors raised while reading or writing images.

Each error says what went wrong and with which source, in words a biologist
can act on. Readers raise them; the napari reader turns "not for us" into
``None`` so that other readers can try.
"""


class FbiasIOError(Exception):
    """Base class for every image reading/writing problem."""


class NotOmeZarrError(FbiasIOError):
    """The path or URL exists but is not an OME-Zarr image (no ``multiscales``)."""


class MetadataError(FbiasIOError):
    """The OME-Zarr metadata is present but broken or inconsistent."""


class UnsupportedAxesError(MetadataError):
    """The axes of an image are not ones this tool can handle."""


class ExtraAxesError(UnsupportedAxesError):
    """An image with extra axes (``angle``...) was opened without picking one index of each.

    ``extra_axes`` lists them (:class:`~napari_fbias.io.extra_axes.ExtraAxis`).
    """

    def __init__(self, message: str, extra_axes: tuple = ()) -> None:
        super().__init__(message)
        self.extra_axes = tuple(extra_axes)


class MissingDataError(FbiasIOError):
    """Pixel data (a chunk, an array, a level) that the metadata promises is missing."""


class CorruptDataError(FbiasIOError):
    """Stored pixel data cannot be decoded.

    A corrupt or truncated chunk, or array metadata (such as the dtype) that
    does not match the stored bytes.
    """


class UnreachableSourceError(FbiasIOError):
    """A remote source (URL, server) could not be reached."""


class OutputExistsError(FbiasIOError):
    """Refusing to overwrite something that already exists."""


class TooLargeError(MetadataError):
    """Metadata claim more than this tool reads: a limit of :mod:`napari_fbias.io.limits`."""
