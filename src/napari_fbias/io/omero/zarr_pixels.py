"""OMERO images stored as OME-Zarr: read their pixels straight from the store.

More and more OMERO images are OME-Zarr stores: ``omero zarr register``
(omero-cli-zarr, read by the server through omero-zarr-pixel-buffer) records
where the store lies in the image's *external info*
(``entityType = "com.glencoesoftware.ngff:multiscales"``, ``lsid`` = the
store's path or ``s3://ENDPOINT/bucket/key`` URL), and omero-web-zarr serves
any image as OME-Zarr (``https://WEB/zarr/v0.4/image/ID.zarr``). Reading
such a store with :func:`~napari_fbias.io.ome_zarr_read.read_ome_zarr`
(many chunks at once) is much faster than the pixel service's one plane or
tile per call.

:func:`with_zarr_pixels` takes the image the pixel service would give and,
when a store is found, returns the same image whose dask arrays read the
store instead. The store must agree with OMERO's ``Pixels``: the same
sizes along every axis and the same pixel type; and, unless ``verify`` is
off, a sample block (the centre of the first and of the last plane) must be
equal in both. Anything else (no store, not reachable within ``timeout``,
other sizes or type, other pixels) keeps the pixel service, and the reason is
logged and noted. The image's source stays ``omero://HOST/Image:ID`` either
way, so a session records the OMERO image, never the store;
``metadata["omero"]["pixels_from"]`` says which path was taken
(``{"path": "ome-zarr", "store": ..., "found_by": ...}`` or
``{"path": "pixel-service", "note": ...}``); the store is shown without
credentials.

Where to look is set per server (:func:`set_zarr_access`) or by environment
variables, read when no setting was made for a host:

``FBIAS_OMERO_ZARR``
    ``auto`` (default: use a registered store or the URL template when they
    answer), ``off`` (always the pixel service) or ``require`` (fail rather
    than fall back).
``FBIAS_OMERO_ZARR_URL``
    A URL template for a server that serves images as OME-Zarr, with
    ``{host}`` and ``{id}``: ``https://{host}/zarr/v0.4/image/{id}.zarr``.
    A template naming credentials (``user:password@``) is refused: give
    them as ``storage_options`` (kept in memory) instead.
``FBIAS_OMERO_ZARR_TIMEOUT``
    Seconds to wait for a store before falling back (default 3).

A template store that cannot be reached is not probed again for
:data:`UNREACHABLE_RETRY_S` seconds (one slow probe, not one per image).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np

from napari_fbias.io.credentials import sanitize_uri
from napari_fbias.io.errors import FbiasIOError
from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.omero.errors import OmeroPixelsError

__all__ = [
    "NGFF_ENTITY_TYPE",
    "UNREACHABLE_RETRY_S",
    "ZarrAccess",
    "registered_store",
    "set_zarr_access",
    "with_zarr_pixels",
    "zarr_access",
]

logger = logging.getLogger(__name__)

#: The external-info entity type of an image registered as OME-Zarr (omero-cli-zarr).
NGFF_ENTITY_TYPE = "com.glencoesoftware.ngff:multiscales"
#: Seconds before a template store that did not answer is probed again.
UNREACHABLE_RETRY_S = 300.0
#: Largest side of the sample block compared between the store and the pixel service.
SAMPLE = 32

Mode = Literal["auto", "off", "require"]


@dataclass(frozen=True)
class ZarrAccess:
    """Where and how to look for an OMERO image's OME-Zarr store.

    Parameters
    ----------
    mode : {"auto", "off", "require"}
        Use a store when one answers (default), never, or always (an error
        instead of falling back to the pixel service).
    url_template : str, optional
        URL of an image as OME-Zarr with ``{host}`` and ``{id}``
        (omero-web-zarr: ``https://{host}/zarr/v0.4/image/{id}.zarr``); a
        local folder of ``{id}.zarr`` stores works too.
    timeout : float
        Seconds to wait for a store before falling back.
    verify : bool
        Compare a sample block with the pixel service before using a store.
    storage_options : mapping, optional
        fsspec options for the store (an S3 endpoint, headers); in memory
        only, never written.
    """

    mode: Mode = "auto"
    url_template: str | None = None
    timeout: float = 3.0
    verify: bool = True
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "off", "require"):
            raise ValueError(f"mode must be 'auto', 'off' or 'require', not {self.mode!r}")
        if self.url_template and sanitize_uri(self.url_template) != self.url_template:
            raise ValueError(
                "the OME-Zarr URL template must not carry credentials; give them as "
                "storage_options (kept in memory only)"
            )


_ACCESS: dict[str, ZarrAccess] = {}
_UNREACHABLE: dict[str, float] = {}  # template store root -> when it did not answer
_LOCK = threading.Lock()


def set_zarr_access(host: str, access: ZarrAccess | None) -> None:
    """Set where to look for the OME-Zarr stores of server ``host`` (None: back to default)."""
    with _LOCK:
        if access is None:
            _ACCESS.pop(host.lower(), None)
        else:
            _ACCESS[host.lower()] = access


def zarr_access(host: str) -> ZarrAccess:
    """Return the setting for ``host``: :func:`set_zarr_access`'s, else the environment's."""
    with _LOCK:
        found = _ACCESS.get(host.lower())
    if found is not None:
        return found
    mode = os.environ.get("FBIAS_OMERO_ZARR", "auto").strip().lower() or "auto"
    template = os.environ.get("FBIAS_OMERO_ZARR_URL", "").strip() or None
    try:
        timeout = float(os.environ.get("FBIAS_OMERO_ZARR_TIMEOUT", "3"))
    except ValueError:
        timeout = 3.0
    try:
        return ZarrAccess(mode=mode, url_template=template, timeout=timeout)  # type: ignore[arg-type]
    except ValueError as exc:
        logger.warning("ignoring the OME-Zarr settings of the environment: %s", exc)
        return ZarrAccess()


def _value(obj: Any, name: str) -> Any:
    """Read ``name`` of an omero model object or wrapper (rtypes unwrapped)."""
    getter = getattr(obj, "get" + name[0].upper() + name[1:], None)
    try:
        value = getter() if callable(getter) else getattr(obj, name, None)
    except Exception:  # an unloaded object: nothing to read
        return None
    return getattr(value, "val", value)


def registered_store(image: Any) -> str | None:
    """Return where a registered OME-Zarr image lies (its external info's ``lsid``), or None.

    ``image`` is the gateway's ImageWrapper.
    """
    info = None
    try:
        info = image.getDetails().getExternalInfo()
    except Exception:  # an omero-py without DetailsWrapper.getExternalInfo
        details = getattr(getattr(image, "_obj", None), "details", None)
        info = getattr(details, "externalInfo", None)
    if info is None:
        return None
    obj = getattr(info, "_obj", info)
    if _value(obj, "entityType") != NGFF_ENTITY_TYPE:
        return None
    lsid = _value(obj, "lsid")
    return str(lsid) if lsid else None


def _store_location(
    lsid: str, extra: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """Turn an external-info ``lsid`` into a source and fsspec options for our reader.

    omero-cli-zarr writes S3 stores as ``s3://ENDPOINT-HOST/bucket/key``
    (optionally ``?anonymous=true``); fsspec wants ``s3://bucket/key`` and
    the endpoint as an option.
    """
    parts = urlsplit(lsid)
    if parts.scheme.lower() != "s3":
        return lsid.rstrip("/"), dict(extra) if extra else None
    params = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    bucket_key = parts.path.strip("/")
    endpoint_host = parts.netloc
    opts: dict[str, Any] = {"endpoint_url": f"https://{endpoint_host}"}
    opts["anon"] = params.get("anonymous", "false") == "true"
    url = urlunsplit(
        ("s3", bucket_key.split("/", 1)[0], "/" + bucket_key.partition("/")[2], "", "")
    )
    return url.rstrip("/"), {**opts, **(extra or {})}


def _candidates(
    connection: Any, image: Any, image_id: int, access: ZarrAccess
) -> list[tuple[str, dict[str, Any] | None, str]]:
    """Return (source, storage options, found by) of the stores to try, best first."""
    out = []
    lsid = registered_store(image)
    if lsid:
        src, opts = _store_location(lsid, access.storage_options)
        out.append((src, opts, "registered"))
    if access.url_template:
        url = access.url_template.format(host=connection.host, id=int(image_id))
        opts = dict(access.storage_options) if access.storage_options else None
        out.append((url.rstrip("/"), opts, "url-template"))
    return out


def _template_root(source: str) -> str:
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def _squeezed(store_image: MultiscaleImage, service: MultiscaleImage) -> list[Any]:
    """Return the store's levels indexed like the service image's axes, or raise why not."""
    axes = store_image.axes
    sizes = dict(service.metadata["omero"]["sizes"])
    full = dict(zip(axes, store_image.levels[0].shape, strict=True))
    for a in ("t", "c", "z", "y", "x"):
        if full.get(a, 1) != sizes[a]:
            raise OmeroPixelsError(
                f"the store's sizes ({_sizes(full)}) are not OMERO's ({_sizes(sizes)})"
            )
    if store_image.dtype != service.dtype:
        raise OmeroPixelsError(
            f"the store holds {store_image.dtype} pixels, OMERO says {service.dtype}"
        )
    keep = tuple(0 if a not in service.axes else slice(None) for a in axes)
    levels = []
    for arr in store_image.levels:
        level = arr[keep]
        if level.shape[:-2] != service.levels[0].shape[:-2]:
            break  # a level downsampling z, c or t is of no use here
        levels.append(level)
    return levels


def _sizes(sizes: Mapping[str, int]) -> str:
    return " ".join(f"{a}={sizes.get(a, 1)}" for a in "tczyx")


def _same_sample(store_level: Any, service_level: Any) -> bool:
    """Compare the centre block of the first and of the last plane of level 0."""
    h, w = service_level.shape[-2:]
    sy, sx = min(SAMPLE, h), min(SAMPLE, w)
    y0, x0 = (h - sy) // 2, (w - sx) // 2
    lead = service_level.shape[:-2]
    planes = {tuple(0 for _ in lead), tuple(n - 1 for n in lead)}
    for p in planes:
        key = (*p, slice(y0, y0 + sy), slice(x0, x0 + sx))
        if not np.array_equal(np.asarray(store_level[key]), np.asarray(service_level[key])):
            return False
    return True


def _scales(service: MultiscaleImage, levels: list[Any]) -> tuple[tuple[float, ...], ...]:
    """Per level: OMERO's physical sizes times the level's downsampling in y and x."""
    base = service.scales[0]
    h, w = service.levels[0].shape[-2:]
    out = []
    for arr in levels:
        fy, fx = h / max(arr.shape[-2], 1), w / max(arr.shape[-1], 1)
        out.append(tuple(base[:-2]) + (base[-2] * fy, base[-1] * fx))
    return tuple(out)


def with_zarr_pixels(
    connection: Any, image: Any, service: MultiscaleImage, access: ZarrAccess | None = None
) -> MultiscaleImage:
    """Return ``service`` reading its pixels from the image's OME-Zarr store when there is one.

    Parameters
    ----------
    connection : OmeroConnection
        The image's connection (its host names the setting and fills templates).
    image : ImageWrapper
        The gateway's image (its external info may name a registered store).
    service : MultiscaleImage
        The image as the pixel service reads it (:func:`read_omero_image`).
    access : ZarrAccess, optional
        Default :func:`zarr_access` for the connection's host.

    Raises
    ------
    OmeroPixelsError
        With ``mode="require"``, when no usable store was found (the reasons).
    """
    from napari_fbias.io.ome_zarr_read import read_ome_zarr

    access = access or zarr_access(connection.host)
    meta = dict(service.metadata)
    omero = dict(meta["omero"])
    if access.mode == "off":
        omero["pixels_from"] = {"path": "pixel-service", "note": "OME-Zarr reading is off"}
        return service.with_(metadata={**meta, "omero": omero})
    image_id = int(omero["image_id"])
    notes = []
    for source, options, found_by in _candidates(connection, image, image_id, access):
        shown = sanitize_uri(source)
        root = _template_root(source) if found_by == "url-template" else ""
        with _LOCK:
            since = _UNREACHABLE.get(root) if root else None
        if since is not None and time.monotonic() - since < UNREACHABLE_RETRY_S:
            notes.append(f"{shown}: not probed, it did not answer a moment ago")
            continue
        try:
            store_image = read_ome_zarr(
                source, storage_options=options, timeout=access.timeout, labels=False
            )
            levels = _squeezed(store_image, service)
            if access.verify and not _same_sample(levels[0], service.levels[0]):
                raise OmeroPixelsError("its pixels differ from the pixel service's")
        except (FbiasIOError, OmeroPixelsError, OSError, ValueError, TimeoutError) as exc:
            from napari_fbias.io.errors import UnreachableSourceError

            if root and isinstance(exc, (UnreachableSourceError, OSError, TimeoutError)):
                with _LOCK:
                    _UNREACHABLE[root] = time.monotonic()
            notes.append(f"{shown} ({found_by}): {exc}")
            continue
        omero["pixels_from"] = {"path": "ome-zarr", "store": shown, "found_by": found_by}
        logger.info("Image:%s reads its pixels from the OME-Zarr store %s", image_id, shown)
        return service.with_(
            levels=tuple(levels),
            scales=_scales(service, levels),
            translations=tuple(tuple(0.0 for _ in service.axes) for _ in levels),
            metadata={**meta, "omero": omero},
        )
    if access.mode == "require":
        raise OmeroPixelsError(
            f"Image:{image_id}: no usable OME-Zarr store ("
            + ("; ".join(notes) or "none registered and no URL template set")
            + ")"
        )
    note = "; ".join(notes) or "no OME-Zarr store registered or configured"
    if notes:
        logger.info("Image:%s falls back to the pixel service: %s", image_id, note)
    omero["pixels_from"] = {"path": "pixel-service", "note": note}
    return service.with_(metadata={**meta, "omero": omero})
