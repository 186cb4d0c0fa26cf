"""Read OMERO images lazily, as :class:`~napari_fbias.io.image.MultiscaleImage`.

Opening an image reads only metadata (sizes, pixel type, channels, physical
sizes, resolution levels). Pixels are fetched when dask computes a block:
one task per plane (``RawPixelsStore.getPlane``) for ordinary images, one
task per group of tiles (``getTile``) for big planes and for every level of a
pyramid.

Limits. The sizes come from the server and are checked like those of the
OME-Zarr and TIFF readers (:func:`~napari_fbias.io.limits.dask_chunks`,
:func:`~napari_fbias.io.limits.check_count`) before any dask array is made;
a pixel size that is not a positive finite number is ignored with a logged
warning and listed in ``metadata["ignored_pixel_sizes"]``
(:func:`~napari_fbias.io.limits.checked_pixel_size`).

Decoding. OMERO sends big-endian bytes for every pixel type (``int8`` to
``double``); each block is decoded with ``np.frombuffer(raw, ">u2")`` (etc.)
then converted to native byte order, at every resolution level — pyramids of
``uint16`` or ``float`` images decode exactly like 8-bit ones.

Resolution levels. ``getResolutionDescriptions()`` lists the levels largest
first; ``setResolutionLevel(n)`` numbers them the other way round on OMERO's
own pyramids (``n = levels - 1`` is full resolution, the level a fresh store
starts at) but in the same order on some Bio-Formats pyramids (a fresh store
then starts at 0). We look at the level a fresh store starts at and map
accordingly.

Concurrency. A RawPixelsStore keeps state (the pixels id, the resolution
level) and must not be used by two threads at once. Each opened image has a
small pool of stores (``max_stores``, default 4): a dask task borrows one,
sets the level it needs, reads, and gives it back, so up to ``max_stores``
blocks are fetched at the same time. Stores belong to a session: after
:meth:`~napari_fbias.io.omero.connection.OmeroConnection.reconnect` the pool
opens new ones.

OME-Zarr. An image whose pixels are an OME-Zarr store (registered with
omero-cli-zarr, or served by omero-web-zarr) is read from the store instead
when it agrees with OMERO (:mod:`.zarr_pixels`); the source stays the OMERO URI.

Distributed. The dask graph refers to the image by host and ids only (no
secret is pickled): an unpickled task finds the connection for that host in
the process-wide registry and reuses the image's store pool when the image
is open in that process (so a worker in another process must log in too).
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from napari_fbias.io.image import Channel, MultiscaleImage
from napari_fbias.io.limits import (
    MAX_LEVELS,
    check_count,
    checked_pixel_size,
    dask_chunks,
    log_ignored_pixel_sizes,
)
from napari_fbias.io.omero.connection import OmeroConnection, get_connection
from napari_fbias.io.omero.errors import (
    OmeroObjectNotFoundError,
    OmeroPixelsError,
    OmeroUriError,
)
from napari_fbias.io.omero.uri import OmeroRef, format_omero_uri, parse_omero_uri
from napari_fbias.io.omero.zarr_pixels import ZarrAccess, with_zarr_pixels

logger = logging.getLogger(__name__)

#: OMERO pixel type -> numpy type (native order; OMERO sends it big-endian).
OMERO_PIXEL_TYPES: dict[str, str] = {
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "float": "f4",
    "double": "f8",
}
#: Blocks of tiled reads are about this many pixels wide/high (a multiple of the tile size).
TARGET_CHUNK = 1024
#: Default number of RawPixelsStores one image reads with concurrently.
DEFAULT_MAX_STORES = 4


def numpy_dtype(pixels_type: str) -> np.dtype:
    """Return the native numpy dtype for an OMERO pixel type name.

    Raises
    ------
    OmeroPixelsError
        For types we cannot decode (``bit``, complex types).
    """
    try:
        return np.dtype(OMERO_PIXEL_TYPES[str(pixels_type)])
    except KeyError:
        raise OmeroPixelsError(
            f"unsupported OMERO pixel type {pixels_type!r}; supported: "
            f"{', '.join(OMERO_PIXEL_TYPES)}"
        ) from None


def decode_pixels(raw: bytes, pixels_type: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode big-endian bytes from a RawPixelsStore into a native-order 2D array.

    Parameters
    ----------
    raw : bytes
        What ``getPlane``/``getTile`` returned.
    pixels_type : str
        OMERO pixel type (``"uint16"``, ``"float"``...).
    shape : tuple of int
        ``(height, width)`` of the plane or tile.

    Raises
    ------
    OmeroPixelsError
        When the number of bytes does not match the shape and type.
    """
    native = numpy_dtype(pixels_type)
    big = native.newbyteorder(">")
    expected = int(np.prod(shape)) * native.itemsize
    if len(raw) != expected:
        raise OmeroPixelsError(
            f"the server sent {len(raw)} bytes for a {shape[0]}x{shape[1]} {pixels_type} block, "
            f"expected {expected}"
        )
    return np.frombuffer(raw, dtype=big).reshape(shape).astype(native)


@dataclass(frozen=True)
class LevelInfo:
    """Geometry of one resolution level (index 0 = full resolution)."""

    size_x: int
    size_y: int
    store_level: int | None  # value for setResolutionLevel, None for a non-pyramidal image
    chunk_x: int
    chunk_y: int
    use_planes: bool  # read whole planes with getPlane (else tiles with getTile)


class RawStorePool:
    """A few RawPixelsStores for one pixels id, lent to one thread at a time.

    Parameters
    ----------
    connection : OmeroConnection
        Session the stores belong to.
    pixels_id : int
        Pixels the stores are bound to.
    group_id : int or None
        Group of the image (stores need it in their call context).
    max_stores : int
        At most this many stores exist at once (= concurrent reads).
    """

    def __init__(
        self,
        connection: OmeroConnection,
        pixels_id: int,
        group_id: int | None,
        max_stores: int = DEFAULT_MAX_STORES,
    ) -> None:
        if max_stores < 1:
            raise ValueError("max_stores must be at least 1")
        self.connection = connection
        self.pixels_id = int(pixels_id)
        self.group_id = group_id
        self.max_stores = int(max_stores)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._levels: dict[int, int | None] = {}
        self._count = 0
        self._generation = connection.generation
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_stores)
        connection.add_close_hook(self)
        # Stores hold server resources: close the idle ones when the image is dropped.
        weakref.finalize(self, _close_idle, self._idle)

    def _new_store(self) -> Any:
        conn = self.connection
        store = conn.create_raw_pixels_store()
        try:
            with conn.errors(f"opening the pixels of Pixels:{self.pixels_id}"):
                store.setPixelsId(self.pixels_id, True, conn.context_for_group(self.group_id))
        except BaseException:
            _close_quietly(store)
            raise
        return store

    @contextmanager
    def store(self, level: int | None = None) -> Iterator[Any]:
        """Borrow a store set to resolution ``level`` (None: leave it as it is)."""
        self._slots.acquire()
        try:
            with self._lock:
                if self._generation != self.connection.generation:
                    self._drop_idle()
                    self._generation = self.connection.generation
                try:
                    store = self._idle.get_nowait()
                except queue.Empty:
                    store = None
            if store is None:
                store = self._new_store()
                with self._lock:
                    self._count += 1
                    self._levels[id(store)] = None
            ok = False
            try:
                if level is not None and self._levels.get(id(store)) != level:
                    with self.connection.errors(f"choosing resolution level {level}"):
                        store.setResolutionLevel(level)
                    self._levels[id(store)] = level
                yield store
                ok = True
            finally:
                if ok and self._generation == self.connection.generation:
                    self._idle.put(store)
                else:  # failed mid-call, or from a replaced session: drop it
                    self._forget(store)
        finally:
            self._slots.release()

    def _forget(self, store: Any) -> None:
        self._levels.pop(id(store), None)
        with self._lock:
            self._count -= 1
        _close_quietly(store)

    def _drop_idle(self) -> None:
        while True:
            try:
                store = self._idle.get_nowait()
            except queue.Empty:
                return
            self._levels.pop(id(store), None)
            self._count -= 1
            _close_quietly(store)

    def invalidate(self) -> None:
        """Close every idle store (called when the session is closed or replaced)."""
        with self._lock:
            self._drop_idle()

    close = invalidate

    @property
    def open_stores(self) -> int:
        """Number of stores currently open (idle or lent)."""
        return self._count


def _close_quietly(store: Any) -> None:
    try:
        store.close()
    except Exception as exc:  # a store of a dead session: nothing to free any more
        logger.debug("ignored while closing a pixel store: %s", type(exc).__name__)


def _close_idle(idle: queue.LifoQueue[Any]) -> None:
    while True:
        try:
            store = idle.get_nowait()
        except queue.Empty:
            return
        _close_quietly(store)


#: Open pixel sources of this process, so that unpickled dask tasks share one store pool.
_SOURCES: weakref.WeakValueDictionary[tuple[Any, ...], OmeroPixelSource] = (
    weakref.WeakValueDictionary()
)


class OmeroPixelSource:
    """Pixel access of one OMERO image: geometry per level and block reads.

    Picklable by reference (host and ids): unpickled in another process, it
    uses that process's registered connection to the same host.
    """

    def __init__(
        self,
        connection: OmeroConnection,
        image_id: int,
        pixels_id: int,
        group_id: int | None,
        pixels_type: str,
        levels: Sequence[LevelInfo],
        max_stores: int = DEFAULT_MAX_STORES,
    ) -> None:
        self.connection = connection
        self.image_id = int(image_id)
        self.pixels_id = int(pixels_id)
        self.group_id = group_id
        self.pixels_type = str(pixels_type)
        self.dtype = numpy_dtype(pixels_type)
        self.levels = tuple(levels)
        self.max_stores = int(max_stores)
        self.pool = RawStorePool(connection, pixels_id, group_id, max_stores)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.connection.host,
            self.image_id,
            self.pixels_id,
            self.group_id,
            self.pixels_type,
            self.levels,
            self.max_stores,
        )

    def register(self) -> None:
        """Make unpickled copies in this process share this source (and its store pool)."""
        _SOURCES[(id(self.connection), *self._key())] = self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_source_from_registry, self._key())

    def read(self, level: int, z: int, c: int, t: int, y: slice, x: slice) -> np.ndarray:
        """Fetch one 2D block of a plane at a resolution level (native byte order)."""
        info = self.levels[level]
        y0, y1 = int(y.start), int(y.stop)
        x0, x1 = int(x.start), int(x.stop)
        h, w = y1 - y0, x1 - x0
        where = (
            f"reading {format_omero_uri(self.connection.host, 'Image', self.image_id)} "
            f"z={z} c={c} t={t}"
        )
        whole = (y0, x0, h, w) == (0, 0, info.size_y, info.size_x)
        with self.pool.store(info.store_level) as store, self.connection.errors(where):
            if info.use_planes and whole:
                raw = store.getPlane(z, c, t)
            else:
                raw = store.getTile(z, c, t, x0, y0, w, h)
        return decode_pixels(bytes(raw), self.pixels_type, (h, w))


def _source_from_registry(
    host: str,
    image_id: int,
    pixels_id: int,
    group_id: int | None,
    pixels_type: str,
    levels: tuple[LevelInfo, ...],
    max_stores: int,
) -> OmeroPixelSource:
    conn = get_connection(host)
    key = (id(conn), host, image_id, pixels_id, group_id, pixels_type, levels, max_stores)
    source = _SOURCES.get(key)
    if source is None:
        source = OmeroPixelSource(
            conn, image_id, pixels_id, group_id, pixels_type, levels, max_stores
        )
        source.register()
    return source


class _BlockLoader:
    """The function dask calls for one block: maps block coordinates to reads.

    A block is usually one plane, or one group of tiles of one plane; when a
    level would have more blocks than :data:`~napari_fbias.io.limits.MAX_DASK_BLOCKS`,
    blocks span several planes or more than one read, and are read piece by
    piece (each piece at most the level's read unit).
    """

    def __init__(self, source: OmeroPixelSource, level: int, axes: tuple[str, ...]) -> None:
        self.source = source
        self.level = level
        self.axes = axes

    def __call__(self, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        if block_info is None:  # dask probing the function: answer with an empty block
            return np.empty((0,) * len(self.axes), dtype=self.source.dtype)
        location = block_info[None]["array-location"]
        lead = [range(int(a), int(b)) for a, b in location[:-2]]
        (y0, y1), (x0, x1) = location[-2], location[-1]
        shape = [len(r) for r in lead] + [y1 - y0, x1 - x0]
        if all(len(r) == 1 for r in lead):  # the usual block: part of one plane
            return self._plane([r.start for r in lead], y0, y1, x0, x1).reshape(shape)
        out = np.empty(shape, dtype=self.source.dtype)
        for pos in itertools.product(*lead):
            at = tuple(p - r.start for p, r in zip(pos, lead, strict=True))
            out[at] = self._plane(pos, y0, y1, x0, x1)
        return out

    def _plane(self, pos: Sequence[int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Read rows ``y0:y1``, columns ``x0:x1`` of one plane, at most a read unit at a time.

        ``pos`` is the plane's index along the axes before ``y``, ``x``.
        """
        index = {"t": 0, "c": 0, "z": 0}
        index.update(zip(self.axes[:-2], pos, strict=True))
        info = self.source.levels[self.level]
        dy, dx = max(1, info.chunk_y), max(1, info.chunk_x)
        if y1 - y0 <= dy and x1 - x0 <= dx:
            return self._read(index, y0, y1, x0, x1)
        out = np.empty((y1 - y0, x1 - x0), dtype=self.source.dtype)
        for ys in range(y0, y1, dy):
            ye = min(ys + dy, y1)
            for xs in range(x0, x1, dx):
                xe = min(xs + dx, x1)
                out[ys - y0 : ye - y0, xs - x0 : xe - x0] = self._read(index, ys, ye, xs, xe)
        return out

    def _read(self, index: dict[str, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        z, c, t = index["z"], index["c"], index["t"]
        return self.source.read(self.level, z, c, t, slice(y0, y1), slice(x0, x1))


def _split(size: int, step: int) -> tuple[int, ...]:
    if size <= 0:
        return (0,)
    step = max(1, min(step, size))
    n = math.ceil(size / step)
    return tuple(step for _ in range(n - 1)) + (size - step * (n - 1),)


def _chunk(tile: int, size: int, limit: int) -> int:
    """Return a multiple of the tile size near TARGET_CHUNK, within the plane and the limit."""
    tile = max(1, int(tile))
    n = max(1, TARGET_CHUNK // tile)
    return max(1, min(size, tile * n, limit))


def _physical_size(
    image: Any, axis: str, ignored: dict[str, str]
) -> tuple[float | None, str | None]:
    """(size in micrometres, "micrometer") of an axis, or (None, None).

    No size, or one in a unit that does not convert to micrometres (pixels,
    reference frame), gives (None, None); a size that is not a positive
    finite number too, noted in ``ignored``.
    """
    getter = getattr(image, f"getPixelSize{axis.upper()}")
    try:
        length = getter(units="MICROMETER")
    except Exception:  # a unit that cannot be converted (pixels, reference frame)
        return None, None
    if length is None:
        return None, None
    try:
        raw = length.getValue()
    except AttributeError:  # not a length object: nothing to read
        return None, None
    value = checked_pixel_size(raw, axis, ignored)
    return (value, "micrometer") if value is not None else (None, None)


def _channels(connection: OmeroConnection, image: Any, size_c: int) -> tuple[Channel, ...]:
    with connection.errors(f"reading the channels of Image:{image.getId()}"):
        wrappers = image.getChannels() or []
        channels = []
        for i, ch in enumerate(wrappers):
            color = ch.getColor()  # None when the server gave no rendering settings
            start, end = ch.getWindowStart(), ch.getWindowEnd()
            window = (float(start), float(end)) if start is not None and end is not None else None
            label = ch.getLabel()
            channels.append(
                Channel(
                    name=str(label if label is not None else i),
                    color=str(color.getHtml()).upper() if color is not None else None,
                    window=window,
                    visible=bool(ch.isActive()) if color is not None else True,
                )
            )
        close_re = getattr(image, "_closeRE", None)
        if close_re is not None:
            close_re()
    if len(channels) != size_c:
        channels = [Channel(name=str(i)) for i in range(size_c)]
    return tuple(channels)


def _levels(
    connection: OmeroConnection,
    pool: RawStorePool,
    size_x: int,
    size_y: int,
    image_id: int,
) -> list[LevelInfo]:
    where = f"reading the resolution levels of Image:{image_id}"
    with pool.store() as store, connection.errors(where):
        # The pool is new, so this store is fresh: its level is the server's starting level.
        n_levels = int(store.getResolutionLevels())
        check_count(
            n_levels,
            MAX_LEVELS,
            "resolution levels",
            format_omero_uri(connection.host, "Image", image_id),
        )
        start = int(store.getResolutionLevel()) if n_levels > 1 else 0
        tile_w, tile_h = (int(v) for v in store.getTileSize())
        descriptions = list(store.getResolutionDescriptions()) if n_levels > 1 else []
    with connection.errors("reading the server's maximum plane size"):
        max_w, max_h = (int(v) for v in connection.gateway.getMaxPlaneSize())
    if n_levels <= 1:
        fits = size_x <= max_w and size_y <= max_h
        if fits:
            return [LevelInfo(size_x, size_y, None, size_x, size_y, use_planes=True)]
        return [
            LevelInfo(
                size_x,
                size_y,
                None,
                _chunk(tile_w, size_x, max_w),
                _chunk(tile_h, size_y, max_h),
                use_planes=False,
            )
        ]
    sizes = [(int(d.sizeX), int(d.sizeY)) for d in descriptions]
    if len(sizes) != n_levels:
        raise OmeroPixelsError(
            f"Image:{image_id}: the server reports {n_levels} resolution levels but describes "
            f"{len(sizes)}"
        )
    if sizes[0] != (size_x, size_y) and sizes[-1] == (size_x, size_y):
        sizes.reverse()
    if sizes[0] != (size_x, size_y):
        raise OmeroPixelsError(
            f"Image:{image_id}: no resolution level has the image's size {size_x}x{size_y} "
            f"(levels: {sizes})"
        )
    # OMERO pyramids: a fresh store is at full resolution = level n-1, and level 0 is smallest.
    reverse = start == n_levels - 1
    out = []
    for i, (sx, sy) in enumerate(sizes):
        store_level = n_levels - 1 - i if reverse else i
        out.append(
            LevelInfo(
                sx,
                sy,
                store_level,
                _chunk(tile_w, sx, max_w),
                _chunk(tile_h, sy, max_h),
                use_planes=False,
            )
        )
    return out


def get_image(connection: OmeroConnection, image_id: int) -> Any:
    """Return the gateway's ImageWrapper, or raise a clear not-found error."""
    with connection.errors(f"looking up Image:{image_id}"):
        image = connection.gateway.getObject("Image", int(image_id))
    if image is None:
        raise OmeroObjectNotFoundError(
            f"Image:{image_id} does not exist on {connection.host} or is not visible to user "
            f"{connection.user} in group {connection.group_id} (try group -1: all groups)"
        )
    return image


def read_omero_image(
    connection: OmeroConnection,
    image_id: int,
    *,
    max_stores: int = DEFAULT_MAX_STORES,
    zarr: ZarrAccess | None = None,
) -> MultiscaleImage:
    """Open an OMERO image lazily (metadata now, pixels when computed).

    Parameters
    ----------
    connection : OmeroConnection
        An open connection to the image's server.
    image_id : int
        OMERO Image id.
    max_stores : int
        Pixel stores used concurrently by this image (see the module docstring).
    zarr : ZarrAccess, optional
        Where to look for the image's OME-Zarr store, read instead of the
        pixel service when it agrees with OMERO (:mod:`.zarr_pixels`);
        default: the setting for the connection's host.

    Returns
    -------
    MultiscaleImage
        Axes among ``tczyx`` with size > 1 (``y``, ``x`` always), one dask
        array per resolution level, channel names/colours/windows/visibility,
        physical sizes in micrometres, ``source`` = ``omero://HOST/Image:ID``
        and ids (never credentials) in ``metadata["omero"]``; pixel sizes
        that were ignored in ``metadata["ignored_pixel_sizes"]``.

    Raises
    ------
    TooLargeError
        When the server's sizes exceed the limits of :mod:`napari_fbias.io.limits`.
    """
    image = get_image(connection, image_id)
    with connection.errors(f"reading the metadata of Image:{image_id}"):
        name = str(image.getName() or f"Image:{image_id}")
        sizes = {
            "t": int(image.getSizeT()),
            "c": int(image.getSizeC()),
            "z": int(image.getSizeZ()),
            "y": int(image.getSizeY()),
            "x": int(image.getSizeX()),
        }
        pixels_type = str(image.getPixelsType())
        pixels_id = int(image.getPixelsId())
        group_id = int(image.getDetails().getGroup().getId())
    dtype = numpy_dtype(pixels_type)
    source = OmeroPixelSource(
        connection, image_id, pixels_id, group_id, pixels_type, [], max_stores
    )
    levels = _levels(connection, source.pool, sizes["x"], sizes["y"], image_id)
    source.levels = tuple(levels)
    source.register()

    axes = tuple(a for a in ("t", "c", "z") if sizes[a] > 1) + ("y", "x")
    uri = format_omero_uri(connection.host, "Image", image_id)
    ignored: dict[str, str] = {}
    physical = {a: _physical_size(image, a, ignored) for a in ("x", "y", "z") if a in axes}
    log_ignored_pixel_sizes(logger, uri, ignored)
    arrays = []
    scales = []
    for li, info in enumerate(levels):
        shape = tuple(sizes[a] for a in axes[:-2]) + (info.size_y, info.size_x)
        blocks = dask_chunks(
            shape,
            dtype,
            (1,) * (len(axes) - 2) + (info.chunk_y, info.chunk_x),
            [a in ("z", "y", "x") for a in axes],
            where=f"{uri} (level {li})" if len(levels) > 1 else uri,
            target_bytes=0,
        )
        chunks = tuple(_split(n, c) for n, c in zip(shape, blocks, strict=True))
        token = tokenize(connection.host, image_id, pixels_id, li, info, pixels_type)
        arr = da.map_blocks(
            _BlockLoader(source, li, axes),
            chunks=chunks,
            dtype=dtype,
            meta=np.empty((0,) * len(axes), dtype=dtype),
            name=f"omero-{connection.host}-image{image_id}-level{li}-{token}",
        )
        arrays.append(arr)
        fy = sizes["y"] / max(info.size_y, 1)
        fx = sizes["x"] / max(info.size_x, 1)
        scale = []
        for a in axes:
            value = physical[a][0] if a in physical else None
            base = value if value is not None else 1.0
            scale.append(base * (fy if a == "y" else fx if a == "x" else 1.0))
        scales.append(tuple(scale))
    units = tuple(physical[a][1] if a in physical else None for a in axes)
    channels = _channels(connection, image, sizes["c"])
    metadata = {
        "omero": {
            "host": connection.host,
            "port": connection.port,
            "image_id": int(image_id),
            "pixels_id": pixels_id,
            "group_id": group_id,
            "pixels_type": pixels_type,
            "sizes": dict(sizes),
            "levels": [[info.size_y, info.size_x] for info in levels],
        },
        **({"ignored_pixel_sizes": ignored} if ignored else {}),
    }
    service = MultiscaleImage(
        levels=tuple(arrays),
        axes=axes,
        scales=tuple(scales),
        units=units,
        channels=channels,
        name=name,
        source=uri,
        metadata=metadata,
    )
    return with_zarr_pixels(connection, image, service, zarr)


def open_omero_image(
    uri: str | OmeroRef,
    *,
    connection: OmeroConnection | None = None,
    max_stores: int = DEFAULT_MAX_STORES,
    zarr: ZarrAccess | None = None,
) -> MultiscaleImage:
    """Open ``omero://HOST/Image:ID`` (or an OMERO.web link to one image) lazily.

    Parameters
    ----------
    uri : str or OmeroRef
        The image reference.
    connection : OmeroConnection, optional
        Connection to use; default: the one registered for the URI's host
        (:func:`~napari_fbias.io.omero.connection.get_connection`).
    max_stores : int
        Pixel stores used concurrently.
    zarr : ZarrAccess, optional
        Where to look for an OME-Zarr store of the image (:mod:`.zarr_pixels`).

    Raises
    ------
    OmeroUriError
        Not an OMERO reference, or one naming a Dataset/Plate... (expand it
        with :func:`~napari_fbias.io.omero.browse.expand_omero_inputs`).
    OmeroNotLoggedInError
        No connection to that host: "log in to HOST first ...".
    """
    ref = uri if isinstance(uri, OmeroRef) else parse_omero_uri(uri)
    if ref.kind != "Image":
        raise OmeroUriError(
            f"{ref.uri} is a {ref.kind}, not one image; expand it into its images first "
            "(expand_omero_inputs, or the pipeline's batch mode)"
        )
    conn = connection if connection is not None else get_connection(ref.host)
    return read_omero_image(conn, ref.id, max_stores=max_stores, zarr=zarr)
