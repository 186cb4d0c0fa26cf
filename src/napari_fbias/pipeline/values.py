"""Data flowing between steps, with its axes and pixel size.

A :class:`Value` is what a step produces and the next one consumes: an array
(numpy, or dask for chunk-wise runs) or a table, its kind, the axes
(``"tczyx"`` subset) and the physical spacing along each axis. Tables keep the
axes and spacing of the image they describe, so that e.g. spot linking knows
the time axis of the movie the spots came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_fbias.ops.types import ARRAY_KINDS
from napari_fbias.pipeline.errors import InputError
from napari_fbias.pipeline.parts import InputDecl

SPACE_AXES = "zyx"
#: Input selection keys -> axis names.
SELECTION_AXES = {"t": "t", "channel": "c", "z": "z"}
AXIS_WORDS = {"t": "time point", "c": "channel", "z": "plane"}


@dataclass(frozen=True)
class Value:
    """One piece of data between steps.

    Parameters
    ----------
    data : numpy.ndarray, dask.array.Array or pandas.DataFrame
        The data.
    kind : str
        ``"image"``, ``"labels"``, ``"table"``, ``"tracks"`` or ``"spots"``.
    axes : str
        Axis names of an array (``"tyx"``); for a table, those of the image
        it describes.
    spacing : tuple of float or None
        Physical size of a pixel along each axis of ``axes``; None if unknown.
    units : tuple of str or None, or None
        Unit along each axis (``"micrometer"``), when known.
    chosen : mapping, optional
        What the step that made it chose for its automatic settings
        (:mod:`napari_fbias.ops.chosen`); None when it chose nothing.
    chunkwise : bool
        True when a chunk-wise strategy computed it (a table measured block
        by block is in memory, yet its step ran chunk-wise).
    """

    data: Any
    kind: str
    axes: str = ""
    spacing: tuple[float, ...] | None = None
    units: tuple[str | None, ...] | None = None
    chosen: Mapping[str, Any] | None = field(default=None, compare=False)
    chunkwise: bool = field(default=False, compare=False)

    @property
    def is_array(self) -> bool:
        """True for images and labels."""
        return self.kind in ARRAY_KINDS

    @property
    def is_lazy(self) -> bool:
        """True when the data is a dask array (not computed yet)."""
        return type(self.data).__module__.startswith("dask")

    @property
    def spatial_axes(self) -> str:
        """The spatial axes (``"yx"`` or ``"zyx"``)."""
        return "".join(a for a in self.axes if a in SPACE_AXES)

    @property
    def loop_axes(self) -> str:
        """The non-spatial axes (``t``, ``c``) that spatial ops are looped over."""
        return "".join(a for a in self.axes if a not in SPACE_AXES)

    def spacing_of(self, axes: str) -> tuple[float, ...] | None:
        """Spacing along ``axes`` (a subset of :attr:`axes`), or None if unknown."""
        if self.spacing is None:
            return None
        by_axis = dict(zip(self.axes, self.spacing, strict=True))
        if any(a not in by_axis for a in axes):
            return None
        return tuple(float(by_axis[a]) for a in axes)

    def units_of(self, axes: str) -> tuple[str | None, ...] | None:
        """Units along ``axes``, or None if unknown."""
        if self.units is None:
            return None
        by_axis = dict(zip(self.axes, self.units, strict=True))
        return tuple(by_axis.get(a) for a in axes)

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary (no data), for run records."""
        d: dict[str, Any] = {"kind": self.kind, "axes": self.axes}
        if self.is_array:
            d["shape"] = [int(n) for n in self.data.shape]
            d["dtype"] = str(self.data.dtype)
        else:
            d["rows"] = int(len(self.data))
            d["columns"] = [str(c) for c in self.data.columns]
        if self.spacing is not None:
            d["spacing"] = [float(s) for s in self.spacing]
        return d


def default_axes(ndim: int) -> str | None:
    """Axes assumed for a plain array: ``yx`` (2D) or ``zyx`` (3D), else None."""
    return {2: "yx", 3: "zyx"}.get(ndim)


def to_value(obj: Any, decl: InputDecl, name: str) -> tuple[Value, dict[str, Any]]:
    """Turn what a user passed for input ``name`` into a :class:`Value` (before selection).

    Parameters
    ----------
    obj : MultiscaleImage, Value, (array, axes), array, str or Path
        The data.
    decl : InputDecl
        The pipeline's declaration of this input.
    name : str
        Input name, for messages.

    Returns
    -------
    tuple
        The value and a JSON-safe description of the source (``source``, ``name``).
    """
    from napari_fbias.io.credentials import sanitize_uri
    from napari_fbias.io.image import MultiscaleImage

    source: dict[str, Any] = {}
    if isinstance(obj, (str, Path)):
        source["source"] = sanitize_uri(str(obj))  # recorded: without credentials
        obj = open_source(str(obj), decl)
    if isinstance(obj, MultiscaleImage):
        source.setdefault("source", sanitize_uri(obj.source))
        source["name"] = obj.name
        axes = "".join(obj.axes)
        units = tuple(obj.units) if any(u is not None for u in obj.units) else None
        value = Value(obj.data, decl.kind, axes, tuple(float(s) for s in obj.scale), units)
        if decl.axes is not None and decl.axes != axes:
            raise InputError(
                f"input {name!r}: the pipeline expects axes {decl.axes!r} but the image "
                f"{obj.name!r} has axes {axes!r}"
            )
        return value, source
    if isinstance(obj, Value):
        return Value(obj.data, decl.kind, obj.axes, obj.spacing, obj.units), source
    axes = None
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], str):
        obj, axes = obj
    if not hasattr(obj, "shape") or not hasattr(obj, "dtype"):
        raise InputError(
            f"input {name!r}: expected an image (MultiscaleImage, array, path or URL), "
            f"got {type(obj).__name__}"
        )
    if axes is None:
        axes = decl.axes or default_axes(obj.ndim)
    if axes is None:
        raise InputError(
            f"input {name!r}: a {obj.ndim}D array needs its axes; pass (array, 'tczyx'-like "
            "axes) or declare 'axes' for this input in the pipeline"
        )
    _check_axes(axes, obj.ndim, name)
    if decl.axes is not None and decl.axes != axes:
        raise InputError(f"input {name!r}: the pipeline expects axes {decl.axes!r}, got {axes!r}")
    data = obj if type(obj).__module__.startswith("dask") else np.asarray(obj)
    return Value(data, decl.kind, axes, None, None), source


def open_source(
    source: str,
    decl: InputDecl,
    storage_options: Mapping[str, Any] | None = None,
    *,
    strict: bool = False,
) -> Any:
    """Open an image path or URL lazily for input ``decl`` (a TIFF gets the declared axes).

    With ``strict``, an OME-Zarr chunk missing from the store is an error
    naming it (at read time) instead of reading as the fill value.
    """
    from napari_fbias.io.open import is_tiff, open_image

    if is_tiff(source):
        return open_image(source, axes=decl.axes)
    return open_image(
        source, storage_options=storage_options, missing_chunks="error" if strict else "fill"
    )


def _check_axes(axes: str, ndim: int, name: str) -> None:
    from napari_fbias.io.errors import UnsupportedAxesError
    from napari_fbias.io.image import validate_axes

    if len(axes) != ndim:
        raise InputError(
            f"input {name!r}: axes {axes!r} do not fit an array with {ndim} dimensions"
        )
    try:
        validate_axes(tuple(axes))
    except UnsupportedAxesError as exc:
        raise InputError(f"input {name!r}: {exc}") from None


def select(value: Value, decl: InputDecl, name: str) -> Value:
    """Apply the input's selection (channel / t / z index) and check the result.

    An axis the image does not have counts as a single plane: selecting index
    0 along it is allowed, any other index is an error.

    Raises
    ------
    InputError
        Index out of range, empty image, labels that are not integers.
    """
    index: list[Any] = [slice(None)] * len(value.axes)
    keep = list(value.axes)
    for key, axis in SELECTION_AXES.items():
        i = getattr(decl, key)
        if i is None:
            continue
        word = AXIS_WORDS[axis]
        if axis not in value.axes:
            if i != 0:
                raise InputError(
                    f"input {name!r}: {key}={i} selected but the image has no {axis!r} axis "
                    f"(axes {value.axes!r}), i.e. a single {word}"
                )
            continue
        pos = value.axes.index(axis)
        n = int(value.data.shape[pos])
        if not 0 <= i < n:
            raise InputError(
                f"input {name!r}: {key}={i} selected but the image has {n} {word}s (0 to {n - 1})"
            )
        index[pos] = i
        keep.remove(axis)
    data = value.data[tuple(index)] if len(keep) != len(value.axes) else value.data
    axes = "".join(keep)
    spacing = value.spacing_of(axes)
    units = value.units_of(axes)
    if sum(a in SPACE_AXES for a in axes) < 2:
        raise InputError(
            f"input {name!r}: after selection the image has axes {axes!r}; y and x are needed"
        )
    shape = tuple(int(n) for n in data.shape)
    if any(n == 0 for n in shape):
        raise InputError(f"input {name!r}: the image is empty (shape {shape})")
    if value.kind == "labels" and not np.issubdtype(np.dtype(data.dtype), np.integer):
        raise InputError(f"input {name!r}: labels must be whole numbers, got {data.dtype} pixels")
    return Value(data, value.kind, axes, spacing, units)


def bind_inputs(
    decls: Mapping[str, InputDecl], first: Any, more: Mapping[str, Any]
) -> dict[str, Any]:
    """Match the data passed to ``Pipeline.run`` to the declared inputs, by name.

    The positional ``first`` goes to the first declared input; ``more`` are by name.

    Raises
    ------
    InputError
        For unknown or missing inputs, or one given twice.
    """
    names: Sequence[str] = list(decls)
    bound: dict[str, Any] = {}
    if first is not None:
        bound[names[0]] = first
    for key, obj in more.items():
        if key not in decls:
            raise InputError(f"the pipeline has no input {key!r} (its inputs: {', '.join(names)})")
        if key in bound:
            raise InputError(f"input {key!r} given twice")
        bound[key] = obj
    missing = [n for n in names if n not in bound or bound[n] is None]
    if missing:
        raise InputError(f"missing data for input(s) {', '.join(repr(m) for m in missing)}")
    return bound
