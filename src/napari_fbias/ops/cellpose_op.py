"""The cellpose operation: ``cellpose.segment``, for cellpose 3 and cellpose 4.

The network runs through cellpose's own ``CellposeModel.eval`` (tiling,
normalisation, resizing, 3D and stitching included) and the masks come from
cellpose's own mask code. Two in-process caches make an interactive session
fast:

* loaded models, per (model, gpu): see :mod:`.cellpose_models`;
* the network output (flows ``dP`` and ``cellprob``) per (image content,
  model, everything that changes the network input). Running the operation
  again on the same image with only ``flow_threshold``, ``cellprob_threshold``,
  ``min_size``, ``max_size_fraction``, ``niter`` or ``stitch_threshold``
  changed recomputes the masks from the cached flows with cellpose's own
  ``CellposeModel._compute_masks`` without running the network; the result is
  the same, bit for bit, as a full run. It holds the last
  :data:`FLOW_CACHE_ENTRIES` blocks (one per time point), at most
  :data:`FLOW_CACHE_BYTES` in all; :func:`clear_cache` empties it.

Channels, z and time: the operation is *not* spatial, it receives the whole
image and its ``axes`` (any of ``t c z y x`` in that order), so it can pick
the cytoplasm/nuclear channels itself. Time points are segmented one by one
(ids restart at 1 in every frame); a ``z`` axis is segmented in 3D
(``do_3d``), stitched from 2D planes (``stitch_threshold > 0``), or plane by
plane with ids made unique across the stack. The output has the input's axes
without ``c``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import numpy as np

from napari_fbias.ops.auto_scale import image_diameter
from napari_fbias.ops.cellpose_models import (
    CellposeModelError,
    LoadedModel,
    clear_model_cache,
    default_model_name,
    load_model,
)
from napari_fbias.ops.chosen import report_chosen
from napari_fbias.ops.registry import keep_old_default, register_op
from napari_fbias.ops.segment import relabel
from napari_fbias.ops.types import Image, Labels

logger = logging.getLogger(__name__)

__all__ = [
    "CellposeModelError",
    "cache_info",
    "clear_cache",
    "clear_model_cache",
    "eval_kwargs",
    "mask_kwargs",
    "segment",
]

_OP = "cellpose.segment"
#: Default ``model`` of the operation: ``cyto3`` with cellpose 3, ``cpsam`` with cellpose 4.
DEFAULT_MODEL = default_model_name()
#: Network outputs kept for re-thresholding (entries, and bytes in all).
FLOW_CACHE_ENTRIES = 8
FLOW_CACHE_BYTES = 1 << 30

Mode = Literal["2d", "planes", "stitch", "3d"]
_AXES_ORDER = "tczyx"


# --- settings -> cellpose arguments -------------------------------------------------------
def normalize_params(normalize: bool, invert: bool, mode: Mode) -> dict[str, Any]:
    """Cellpose's normalisation settings, complete.

    A complete dict is passed on purpose: cellpose (3.1 and 4) updates its
    module-level ``normalize_default`` in place when ``normalize`` is a bool,
    which would make one call depend on the previous one.
    """
    return {
        "lowhigh": None,
        "percentile": None,
        "normalize": bool(normalize),
        "norm3D": mode in ("stitch", "3d"),
        "sharpen_radius": 0,
        "smooth_radius": 0,
        "tile_norm_blocksize": 0,
        "tile_norm_smooth3D": 1,
        "invert": bool(invert),
    }


def eval_kwargs(
    api: int,
    *,
    mode: Mode,
    n_channels: int,
    diameter: float | None,
    normalize: bool,
    invert: bool,
    anisotropy: float | None,
    tile_overlap: float,
    batch_size: int,
    niter: float | None,
    flow_threshold: float,
    cellprob_threshold: float,
    min_size: int,
    max_size_fraction: float,
    stitch_threshold: float,
) -> dict[str, Any]:
    """Map the operation's settings to ``CellposeModel.eval`` keyword arguments.

    The input handed to ``eval`` is always channel-last: ``(y, x, k)`` for
    ``mode="2d"`` and ``(z, y, x, k)`` otherwise, with ``k`` = 1 (grayscale)
    or 2 (cytoplasm, nuclei).

    Parameters
    ----------
    api : int
        Cellpose major version: 3 (``channels=[cyto, nuc]``, ``interp``) or
        4 (no ``channels``: the first three channels are used as they are).
    mode : {"2d", "planes", "stitch", "3d"}
        One plane; planes one by one; planes stitched in 3D; true 3D.
    n_channels : int
        ``k`` above.
    diameter : float or None
        Object diameter in pixels; None lets cellpose use the model's own.
    normalize, invert : bool
        Percentile normalisation; dark objects on a bright background.
    anisotropy : float or None
        Z step over pixel size, 3D mode only.
    tile_overlap : float
        Overlap of cellpose's tiles.
    batch_size : int
        Tiles run through the network at once.
    niter : float or None
        Iterations of the flow dynamics (None: cellpose's default).
    flow_threshold, cellprob_threshold, min_size, max_size_fraction, stitch_threshold
        Mask settings, as in cellpose.

    Returns
    -------
    dict
        Keyword arguments for ``eval`` (``x`` excluded).
    """
    if n_channels not in (1, 2):
        raise ValueError(f"{_OP}: 1 or 2 channels go to cellpose, got {n_channels}")
    three_d = mode != "2d"
    kw: dict[str, Any] = {
        "channel_axis": 3 if three_d else 2,
        "z_axis": 0 if three_d else None,
        "normalize": normalize_params(normalize, invert, mode),
        "invert": bool(invert),
        "diameter": diameter if diameter else None,
        "do_3D": mode == "3d",
        "anisotropy": anisotropy if mode == "3d" else None,
        "stitch_threshold": float(stitch_threshold) if mode == "stitch" else 0.0,
        "flow_threshold": float(flow_threshold),
        "cellprob_threshold": float(cellprob_threshold),
        "min_size": int(min_size),
        "max_size_fraction": float(max_size_fraction),
        "niter": niter,
        "tile_overlap": float(tile_overlap),
        "batch_size": int(batch_size),
        "resample": True,
        "augment": False,
    }
    if api < 4:
        kw["channels"] = [0, 0] if n_channels == 1 else [1, 2]
        kw["interp"] = True
    return kw


def mask_kwargs(
    api: int,
    *,
    mode: Mode,
    niter: float,
    flow_threshold: float,
    cellprob_threshold: float,
    min_size: int,
    max_size_fraction: float,
    stitch_threshold: float,
) -> dict[str, Any]:
    """Keyword arguments of ``CellposeModel._compute_masks`` matching :func:`eval_kwargs`."""
    kw: dict[str, Any] = {
        "flow_threshold": float(flow_threshold),
        "cellprob_threshold": float(cellprob_threshold),
        "min_size": int(min_size),
        "max_size_fraction": float(max_size_fraction),
        "niter": niter,
        "do_3D": mode == "3d",
        "stitch_threshold": float(stitch_threshold) if mode == "stitch" else 0.0,
    }
    if api < 4:
        kw["interp"] = True
    return kw


def auto_niter(loaded: LoadedModel, diameter: float | None, niter: int) -> float:
    """Return the iterations of the flow dynamics, computed the way ``eval`` computes them.

    ``niter > 0`` is returned as is. Otherwise cellpose 3 uses
    ``200 / rescale`` with ``rescale = diam_mean / diameter`` (or
    ``diam_mean / diam_labels`` without a diameter); cellpose 4 uses
    ``int(200 / (30 / diameter))`` (200 without a diameter).
    """
    if niter and niter > 0:
        return niter
    cp = loaded.model
    if loaded.api >= 4:
        scale = 30.0 / diameter if diameter else None
        return int(200 / (1 if scale is None else scale))
    rescale = cp.diam_mean / diameter if diameter else cp.diam_mean / cp.diam_labels
    return 1 / rescale * 200


def _supported(func: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop the arguments ``func`` does not take (cellpose's signatures change between versions)."""
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    dropped = sorted(set(kwargs) - set(params))
    if dropped:
        logger.debug("cellpose: %s does not take %s", getattr(func, "__name__", func), dropped)
    return {k: v for k, v in kwargs.items() if k in params}


# --- the network output cache -----------------------------------------------------------
@dataclass(frozen=True)
class NetOutput:
    """What the mask computation needs from one network run.

    Attributes
    ----------
    dP : numpy.ndarray
        Flows, ``(2 or 3, nimg, y, x)``.
    cellprob : numpy.ndarray
        Cell probability (logits), ``(nimg, y, x)``.
    diameter : float or None
        Diameter the network ran with (estimated, given, or None for the model's own).
    """

    dP: np.ndarray
    cellprob: np.ndarray
    diameter: float | None

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return int(self.dP.nbytes + self.cellprob.nbytes)


class _FlowCache:
    """A small LRU of :class:`NetOutput`, bounded in entries and bytes."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Any, ...], NetOutput] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> NetOutput | None:
        with self._lock:
            out = self._items.get(key)
            if out is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return out

    def put(self, key: tuple[Any, ...], value: NetOutput) -> None:
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries or self._bytes() > self.max_bytes:
                self._items.popitem(last=False)

    def _bytes(self) -> int:
        return sum(v.nbytes for v in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = 0
            self.misses = 0

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._items),
                "bytes": self._bytes(),
                "hits": self.hits,
                "misses": self.misses,
            }


_FLOWS = _FlowCache(FLOW_CACHE_ENTRIES, FLOW_CACHE_BYTES)


def clear_cache() -> None:
    """Forget the cached network outputs (the next call runs the network again)."""
    _FLOWS.clear()


def cache_info() -> dict[str, int]:
    """Entries, bytes, hits and misses of the network-output cache."""
    return _FLOWS.info()


def _digest(x: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str((x.shape, x.dtype.str)).encode())
    h.update(np.ascontiguousarray(x).data)
    return h.hexdigest()


# --- input checks and preparation -------------------------------------------------------
def _resolve_axes(axes: str, ndim: int) -> str:
    if not axes:
        if ndim == 2:
            return "yx"
        if ndim == 3:
            return "zyx"
        raise ValueError(
            f"{_OP} expects a 2D (y, x) or 3D (z, y, x) image, or an image with its axes "
            f"named (t, c, z, y, x); got {ndim} dimensions and no axes"
        )
    axes = axes.lower()
    if len(axes) != ndim:
        raise ValueError(f"{_OP}: axes {axes!r} do not match an image with {ndim} dimensions")
    if len(set(axes)) != len(axes) or any(a not in _AXES_ORDER for a in axes):
        raise ValueError(f"{_OP}: axes {axes!r} must be distinct letters among 't c z y x'")
    if axes != "".join(a for a in _AXES_ORDER if a in axes) or not axes.endswith("yx"):
        raise ValueError(
            f"{_OP}: axes {axes!r} must end with 'yx' and follow the order t, c, z, y, x"
        )
    return axes


def _as_pixels(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.size == 0:
        raise ValueError(f"{_OP}: the image is empty (shape {arr.shape})")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{_OP}: the image must hold numbers; got pixel type {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).any():
        raise ValueError(f"{_OP}: the image has no finite pixel value (all NaN or infinite)")
    return arr


def _finite_block(block: np.ndarray, where: str) -> np.ndarray:
    x = block.astype(np.float32, copy=False)
    finite = np.isfinite(x)
    if finite.all():
        return x
    if not finite.any():
        raise ValueError(f"{_OP}: the image{where} has no finite pixel value (all NaN or infinite)")
    fill = float(x[finite].min())
    logger.info("%s: %d NaN/infinite pixels%s set to %g", _OP, int((~finite).sum()), where, fill)
    return np.where(finite, x, np.float32(fill))


def _cellpose_input(block: np.ndarray, axes: str, channel: int, nuclear_channel: int) -> np.ndarray:
    """Channel-last float32 input ``(z?, y, x, k)`` from a ``(c?, z?, y, x)`` block."""
    if "c" in axes:
        chans = [channel] if nuclear_channel < 0 else [channel, nuclear_channel]
        x = np.stack([block[i] for i in chans], axis=-1)
    else:
        x = block[..., np.newaxis]
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_channels(axes: str, shape: Sequence[int], channel: int, nuclear_channel: int) -> None:
    if "c" not in axes:
        if channel != 0:
            raise ValueError(
                f"{_OP}: channel={channel} but the image has no channel axis; use channel=0"
            )
        if nuclear_channel >= 0:
            raise ValueError(
                f"{_OP}: nuclear_channel={nuclear_channel} but the image has no channel axis; "
                "use nuclear_channel=-1 (none)"
            )
        return
    n_c = int(shape[axes.index("c")])
    if not 0 <= channel < n_c:
        raise ValueError(f"{_OP}: channel={channel} but the image has channels 0..{n_c - 1}")
    if nuclear_channel >= n_c or nuclear_channel < -1:
        raise ValueError(
            f"{_OP}: nuclear_channel={nuclear_channel} but the image has channels "
            f"0..{n_c - 1} (-1 = none)"
        )
    if nuclear_channel == channel:
        raise ValueError(
            f"{_OP}: nuclear_channel and channel are both {channel}; pick another nuclear "
            "channel or -1 (none)"
        )


def _anisotropy(
    anisotropy: float, axes: str, spacing: Sequence[float] | None, do_3d: bool
) -> float | None:
    if not do_3d:
        return None
    if anisotropy > 0:
        return float(anisotropy)
    if spacing is not None and len(spacing) == len(axes) and "z" in axes:
        dz, dy = float(spacing[axes.index("z")]), float(spacing[axes.index("y")])
        if dz > 0 and dy > 0:
            return dz / dy
    return 1.0


# --- one spatial block -------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    diameter: float
    flow_threshold: float
    cellprob_threshold: float
    min_size: int
    max_size_fraction: float
    stitch_threshold: float
    anisotropy: float | None
    normalize: bool
    invert: bool
    tile_overlap: float
    batch_size: int
    niter: int


def _net_key(loaded: LoadedModel, x: np.ndarray, mode: Mode, s: _Settings) -> tuple[Any, ...]:
    return (
        _digest(x),
        loaded.key,
        loaded.api,
        mode,
        float(s.diameter),
        s.normalize,
        s.invert,
        s.anisotropy,
        float(s.tile_overlap),
        int(s.batch_size),
    )


def _block_eval_kwargs(
    loaded: LoadedModel,
    x: np.ndarray,
    mode: Mode,
    s: _Settings,
    *,
    diameter: float | None,
    anisotropy: float | None,
    niter: float | None,
    stitch_threshold: float,
) -> dict[str, Any]:
    """:func:`eval_kwargs` for one block ``x``, with every other setting taken from ``s``.

    Parameters
    ----------
    loaded : LoadedModel
        The model the block goes through (its cellpose API version counts).
    x : numpy.ndarray
        The block, channel-last.
    mode : {'2d', 'planes', 'stitch', '3d'}
        How the block is segmented.
    s : _Settings
        The operation's settings.
    diameter, anisotropy, niter, stitch_threshold
        The settings that differ between the size-model estimate and the full run.

    Returns
    -------
    dict
        Keyword arguments for ``CellposeModel.eval`` (or the size model).
    """
    return eval_kwargs(
        loaded.api,
        mode=mode,
        n_channels=x.shape[-1],
        diameter=diameter,
        normalize=s.normalize,
        invert=s.invert,
        anisotropy=anisotropy,
        tile_overlap=s.tile_overlap,
        batch_size=s.batch_size,
        niter=niter,
        flow_threshold=s.flow_threshold,
        cellprob_threshold=s.cellprob_threshold,
        min_size=s.min_size,
        max_size_fraction=s.max_size_fraction,
        stitch_threshold=stitch_threshold,
    )


def _estimate_diameter(
    loaded: LoadedModel, x: np.ndarray, mode: Mode, s: _Settings
) -> float | None:
    """Cellpose 3's size-model estimate for a 2D plane (as ``models.Cellpose.eval`` does)."""
    if mode != "2d" or loaded.api >= 4:
        return None
    size_model = loaded.size_model()
    if size_model is None:
        return None
    kw = _block_eval_kwargs(
        loaded, x, mode, s, diameter=None, anisotropy=None, niter=None, stitch_threshold=0.0
    )
    diam, _ = size_model.eval(
        x,
        channels=kw["channels"],
        channel_axis=kw["channel_axis"],
        normalize=kw["normalize"],
        invert=s.invert,
        batch_size=s.batch_size,
    )
    logger.info("%s: estimated object diameter %.1f px", _OP, float(diam))
    return diam


def _segment_block(loaded: LoadedModel, x: np.ndarray, mode: Mode, s: _Settings) -> np.ndarray:
    """Masks of one block (``x`` channel-last), reusing cached network output when possible."""
    nimg = 1 if mode == "2d" else x.shape[0]
    ly, lx = x.shape[-3], x.shape[-2]
    key = _net_key(loaded, x, mode, s)
    cp = loaded.model
    # Re-thresholding needs cellpose's mask step on its own (3.1 and 4.x have it).
    cached = _FLOWS.get(key) if hasattr(cp, "_compute_masks") else None
    if cached is None:
        diameter = s.diameter if s.diameter > 0 else _estimate_diameter(loaded, x, mode, s)
        niter = auto_niter(loaded, diameter, s.niter)
        kw = _block_eval_kwargs(
            loaded,
            x,
            mode,
            s,
            diameter=diameter,
            anisotropy=s.anisotropy,
            niter=niter,
            stitch_threshold=s.stitch_threshold,
        )
        masks, flows, _ = cp.eval(x, **_supported(cp.eval, kw))
        dp = np.asarray(flows[1], dtype=np.float32)
        prob = np.asarray(flows[2], dtype=np.float32)
        out = NetOutput(
            dP=dp.reshape(-1, nimg, ly, lx), cellprob=prob.reshape(nimg, ly, lx), diameter=diameter
        )
        _FLOWS.put(key, out)
    else:
        logger.debug("%s: network output reused (cache hit)", _OP)
        niter = auto_niter(loaded, cached.diameter, s.niter)
        kw = mask_kwargs(
            loaded.api,
            mode=mode,
            niter=niter,
            flow_threshold=s.flow_threshold,
            cellprob_threshold=s.cellprob_threshold,
            min_size=s.min_size,
            max_size_fraction=s.max_size_fraction,
            stitch_threshold=s.stitch_threshold,
        )
        masks = cp._compute_masks(
            (nimg, ly, lx),
            cached.dP.copy(),
            cached.cellprob.copy(),
            **_supported(cp._compute_masks, kw),
        )
    masks = np.asarray(masks).reshape(x.shape[:-1])
    if mode == "planes":
        masks = _unique_per_plane(masks)
    return _sequential_int32(masks)


def _unique_per_plane(masks: np.ndarray) -> np.ndarray:
    """Offset the ids of each plane so that no id is shared between planes."""
    out = masks.astype(np.int64)
    offset = 0
    for z in range(out.shape[0]):
        plane = out[z]
        top = int(plane.max())
        plane[plane > 0] += offset
        offset += top
    return out


def _sequential_int32(masks: np.ndarray) -> np.ndarray:
    """Ids 1..N in cellpose's order, as int32 (no copy when already so)."""
    if masks.size == 0 or int(masks.max()) == 0:
        return masks.astype(np.int32, copy=False)
    if int(masks.max()) > np.iinfo(np.int32).max:  # pragma: no cover - > 2**31 objects
        raise ValueError(f"{_OP}: too many objects for int32 labels")
    return relabel(masks)


# --- the operation -----------------------------------------------------------------------
def _drop_channel_axis(axes: str, params: Mapping[str, Any]) -> str:
    return axes.replace("c", "")


@register_op(
    "cellpose.segment",
    category="segment",
    title="Cellpose",
    spatial=False,
    axes_out=_drop_channel_axis,
)
def segment(
    image: Image,
    *,
    model: str = DEFAULT_MODEL,
    diameter: Annotated[float | None, {"min": 0.0, "max": 1000.0, "step": 1.0}] = None,
    channel: Annotated[int, {"min": 0}] = 0,
    nuclear_channel: Annotated[int, {"min": -1}] = -1,
    flow_threshold: Annotated[float, {"min": 0.0, "max": 3.0, "step": 0.05}] = 0.4,
    cellprob_threshold: Annotated[float, {"min": -8.0, "max": 8.0, "step": 0.25}] = 0.0,
    min_size: Annotated[int, {"min": 0}] = 15,
    max_size_fraction: Annotated[float, {"min": 0.0, "max": 1.0, "step": 0.05}] = 0.4,
    do_3d: bool = False,
    stitch_threshold: Annotated[float, {"min": 0.0, "max": 1.0, "step": 0.05}] = 0.0,
    anisotropy: Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.1}] = 0.0,
    normalize: bool = True,
    invert: bool = False,
    tile_overlap: Annotated[float, {"min": 0.05, "max": 0.5, "step": 0.05}] = 0.1,
    batch_size: Annotated[int, {"min": 1, "max": 256}] = 8,
    niter: Annotated[int, {"min": 0}] = 0,
    gpu: bool = False,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Labels:
    """Segment cells or nuclei with a cellpose model (cellpose 3 or 4).

    Parameters
    ----------
    image : Image
        Intensity image with axes ``axes`` (any of t, c, z, y, x in that order).
    model : str
        Built-in model (cyto3, nuclei... in cellpose 3; cpsam in cellpose 4) or a model file.
    diameter : float, optional
        Typical object diameter in pixels; empty = automatic: measured on the
        image (``measure.object_size``, the channel segmented, in physical
        space for anisotropic stacks) and recorded with the step; 0 = let
        cellpose estimate it, or use the model's own.
    channel : int
        Channel to segment (cytoplasm, or nuclei for a nuclei model), when the image has channels.
    nuclear_channel : int
        Optional nuclear channel helping a cytoplasm model; -1 = none.
    flow_threshold : float
        Maximum flow error of a kept object; raise it to keep more objects, 0 = no check.
    cellprob_threshold : float
        Cell probability threshold; lower it to find more and larger objects.
    min_size : int
        Objects smaller than this many pixels (voxels) are removed; 0 = keep all.
    max_size_fraction : float
        Objects larger than this fraction of the image are removed.
    do_3d : bool
        Segment a z-stack in true 3D (slower); otherwise see stitch_threshold.
    stitch_threshold : float
        Z-stack without 3D: join 2D objects of adjacent planes above this IoU; 0 = no stitching.
    anisotropy : float
        3D only: z step / pixel size; 0 = from the image's pixel sizes (1 if unknown).
    normalize : bool
        Rescale intensities (1st-99th percentile) before the network, as cellpose models expect.
    invert : bool
        Invert intensities first (dark objects on a bright background).
    tile_overlap : float
        Overlap of the tiles cellpose cuts large images into.
    batch_size : int
        Tiles run through the network at once (more uses more memory).
    niter : int
        Iterations of the flow dynamics; 0 = automatic (scaled with the diameter).
    gpu : bool
        Run on the GPU when one is available (the device used is logged).
    axes : str
        Axes of ``image`` (filled in by the runner).
    spacing : tuple of float or None
        Physical pixel size per axis of ``image`` (filled in by the runner).

    Returns
    -------
    Labels
        ``int32`` labels with the axes of ``image`` without ``c``; 0 is background,
        objects 1..N in cellpose's order (per time point).

    Raises
    ------
    ValueError
        For an empty or non-numeric image, unknown axes, channels that do not
        exist, or settings that contradict each other.
    CellposeModelError
        If the model is unknown, or its weights are missing and cannot be downloaded.
    """
    arr = _as_pixels(image)
    axes = _resolve_axes(axes, arr.ndim)
    _check_channels(axes, arr.shape, int(channel), int(nuclear_channel))
    if do_3d and stitch_threshold > 0:
        raise ValueError(
            f"{_OP}: do_3d and stitch_threshold are two ways to segment a z-stack; "
            "choose one (set stitch_threshold=0 or do_3d=False)"
        )
    if (do_3d or stitch_threshold > 0) and "z" not in axes:
        which = "do_3d" if do_3d else "stitch_threshold"
        raise ValueError(f"{_OP}: {which} needs a z-stack, but the image axes are {axes!r}")
    if invert and not normalize:
        raise ValueError(f"{_OP}: invert=True needs normalize=True")
    auto_diameter = diameter is None
    diameter = 0.0 if diameter is None else diameter
    if diameter < 0 or anisotropy < 0 or min_size < 0 or niter < 0 or batch_size < 1:
        raise ValueError(
            f"{_OP}: diameter, anisotropy, min_size and niter must be >= 0 and batch_size >= 1"
        )
    s = _Settings(
        diameter=float(diameter),
        flow_threshold=float(flow_threshold),
        cellprob_threshold=float(cellprob_threshold),
        min_size=int(min_size),
        max_size_fraction=float(max_size_fraction),
        stitch_threshold=float(stitch_threshold),
        anisotropy=_anisotropy(float(anisotropy), axes, spacing, bool(do_3d)),
        normalize=bool(normalize),
        invert=bool(invert),
        tile_overlap=float(tile_overlap),
        batch_size=int(batch_size),
        niter=int(niter),
    )
    loaded = load_model(model, gpu=bool(gpu))
    logger.info("%s: model %r on %s, image %s axes %r", _OP, model, loaded.device, arr.shape, axes)

    block_axes = axes.replace("t", "")
    has_z = "z" in axes
    n_t = arr.shape[0] if "t" in axes else 1
    out_axes = axes.replace("c", "")
    out_shape = tuple(n for a, n in zip(axes, arr.shape, strict=True) if a != "c")
    result = np.zeros(out_shape, dtype=np.int32)
    for t in range(n_t):
        block = arr[t] if "t" in axes else arr
        where = f" (t={t})" if "t" in axes else ""
        x = _cellpose_input(block, block_axes, int(channel), int(nuclear_channel))
        x = _finite_block(x, where)
        if auto_diameter:  # the channel segmented, in physical space (pixels along x)
            d = round(image_diameter(x[..., 0], _spatial_spacing(axes, spacing)), 1)
            s = replace(s, diameter=d)
            report_chosen("diameter", d)
        if has_z and x.shape[0] == 1:
            labels = _segment_block(loaded, x[0], "2d", s)[np.newaxis]
        elif has_z:
            mode: Mode = "3d" if do_3d else ("stitch" if stitch_threshold > 0 else "planes")
            labels = _segment_block(loaded, x, mode, s)
        else:
            labels = _segment_block(loaded, x, "2d", s)
        if "t" in out_axes:
            result[t] = labels
        else:
            result = labels
    return result  # type: ignore[return-value]


keep_old_default(_OP, diameter=0.0)


def _spatial_spacing(axes: str, spacing: Sequence[float] | None) -> tuple[float, ...] | None:
    """Pixel size along the spatial axes of ``axes`` (None when unknown)."""
    if spacing is None or len(spacing) != len(axes):
        return None
    return tuple(float(sp) for a, sp in zip(axes, spacing, strict=True) if a in "zyx")
