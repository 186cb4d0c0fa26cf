"""Figures of results for the report and the notebooks (matplotlib, Agg, PNG).

Every figure is drawn on its own :class:`matplotlib.figure.Figure` with the
Agg canvas (no pyplot, no GUI backend, safe in threads) and returned as PNG
bytes: the HTML report embeds them as ``data:`` URIs, notebooks display them
through :func:`show`.

* images with labels: the image (one plane: first time point and channel,
  middle z plane) with the outline of each object in its own saturated
  colour on a dark edge, so outlines stand out on bright nuclei and on a
  dark background alike (:func:`outline_rgba`);
* counts per approach: a bar chart per kind of count (objects, tracks),
  never one chart mixing kinds;
* measurement tables: histograms of the size (and of one shape measure);
* tracks: the tracks drawn over the maximum projection of the movie.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.io.column_table import ColumnTable, as_frame

#: Largest side (pixels) of an image drawn in a figure; larger ones are subsampled.
MAX_SIDE = 768
_DPI = 100


@dataclass(frozen=True)
class FigurePNG:
    """A rendered figure: PNG bytes, a title and a caption.

    Displayed as an image in Jupyter (``_repr_png_``).
    """

    png: bytes
    title: str
    caption: str = ""

    def data_uri(self) -> str:
        """Return the PNG as a ``data:image/png;base64,...`` URI."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def _repr_png_(self) -> bytes:
        return self.png

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in pixels (read from the PNG header)."""
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")


def _new_figure(width: float = 6.0, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def plane(data: Any, axes: str, *, project_t: bool = False) -> np.ndarray:
    """Return one 2D ``yx`` plane of an array to draw.

    The first channel and the middle z plane are taken; along ``t`` the
    first time point, or the maximum over time with ``project_t``.
    """
    arr = np.asarray(data)
    if len(axes) != arr.ndim:
        axes = {2: "yx", 3: "zyx"}.get(arr.ndim, "")
        if not axes:
            raise ValueError(f"cannot draw an array with {arr.ndim} dimensions and no axes")
    for axis in ("t", "c", "z"):
        if axis not in axes:
            continue
        pos = axes.index(axis)
        if axis == "t" and project_t:
            arr = arr.max(axis=pos)
        else:
            index = arr.shape[pos] // 2 if axis == "z" else 0
            arr = np.take(arr, index, axis=pos)
        axes = axes.replace(axis, "")
    return arr


def _step(shape: tuple[int, ...]) -> int:
    return max(1, int(np.ceil(max(shape) / MAX_SIDE)))


def _contrast(img: np.ndarray) -> tuple[float, float]:
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, (0.5, 99.8))
    return float(lo), float(hi if hi > lo else lo + 1)


def count_objects(labels: Any) -> int:
    """Count the distinct objects (non-zero labels) in a label array."""
    arr = np.asarray(labels)
    ids = np.unique(arr)
    return int(np.count_nonzero(ids))


def label_colours(labels: np.ndarray) -> np.ndarray:
    """Return a saturated RGB colour (floats in 0..1) per label value of an array.

    Hues are spread by the golden ratio so that neighbours (consecutive
    labels) differ; saturation and value are full, so no colour is pale.
    Blues and violets (hues 0.6 to 0.8) are left out: they are too dark to
    see on a dark background. Returns an array of shape ``labels.shape + (3,)``.
    """
    from matplotlib.colors import hsv_to_rgb

    hue = (np.asarray(labels, dtype=np.float64) * 0.618033988749895) % 1.0 * 0.8
    hue = np.where(hue >= 0.6, hue + 0.2, hue)
    hsv = np.stack([hue, np.ones_like(hue), np.ones_like(hue)], axis=-1)
    return hsv_to_rgb(hsv)


def outline_rgba(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """Return an RGBA overlay of object outlines that stand out on any background.

    Each object's outline (``width`` pixels inside its border) is drawn in its
    own saturated colour (:func:`label_colours`), with a dark edge one pixel
    wide on both sides of it: bright nuclei and a dark background both
    contrast with one of the two. Pixels elsewhere are transparent.

    Parameters
    ----------
    labels : numpy.ndarray
        2D labels.
    width : int
        Width of the coloured line, in pixels.

    Returns
    -------
    numpy.ndarray
        Float array of shape ``labels.shape + (4,)``.
    """
    from scipy.ndimage import binary_dilation
    from skimage.segmentation import find_boundaries

    lab = np.asarray(labels)
    line = find_boundaries(lab, mode="inner")
    if width > 1:
        line = binary_dilation(line, iterations=width - 1) & (lab > 0)
    edge = binary_dilation(line, structure=np.ones((3, 3), bool)) & ~line
    rgba = np.zeros((*lab.shape, 4))
    rgba[edge] = (0.0, 0.0, 0.0, 0.9)
    rgba[line, :3] = label_colours(lab[line])
    rgba[line, 3] = 1.0
    return rgba


def overlay_figure(
    image: np.ndarray | None, labels: np.ndarray, title: str, caption: str = ""
) -> FigurePNG:
    """Draw object outlines over a grey image plane (see :func:`outline_rgba`).

    Parameters
    ----------
    image : numpy.ndarray or None
        2D image plane (None: the labels alone, on black).
    labels : numpy.ndarray
        2D labels of the same shape.
    title, caption : str
        Shown above / kept with the figure.
    """
    labels = np.asarray(labels)
    if image is not None and np.shape(image) != labels.shape:
        image = None
    step = _step(labels.shape)
    lab = labels[::step, ::step]
    fig = _new_figure(6.0, 6.0 * lab.shape[0] / max(lab.shape[1], 1) + 0.6)
    ax = fig.add_subplot()
    if image is not None:
        img = np.asarray(image)[::step, ::step].astype(np.float64)
        lo, hi = _contrast(img)
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    else:
        ax.imshow(np.zeros(lab.shape), cmap="gray", vmin=0, vmax=1)
    # lines of one pixel vanish when a large image is drawn smaller than its size
    width = 1 if max(lab.shape) <= 400 else 2
    ax.imshow(outline_rgba(lab, width), interpolation="nearest")
    n = count_objects(labels)
    ax.set_title(f"{title}: {n} objects", fontsize=11)
    ax.set_axis_off()
    return FigurePNG(_png(fig), f"{title}: {n} objects", caption)


def image_figure(image: np.ndarray, title: str, caption: str = "") -> FigurePNG:
    """Draw one grey image plane."""
    step = _step(np.shape(image))
    img = np.asarray(image)[::step, ::step].astype(np.float64)
    fig = _new_figure(6.0, 6.0 * img.shape[0] / max(img.shape[1], 1) + 0.6)
    ax = fig.add_subplot()
    lo, hi = _contrast(img)
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(title, fontsize=11)
    ax.set_axis_off()
    return FigurePNG(_png(fig), title, caption)


def counts_figure(
    counts: Mapping[str, int], title: str = "Objects found", unit: str = "objects"
) -> FigurePNG:
    """Bar chart of one kind of count (objects, or tracks), e.g. one bar per result.

    Parameters
    ----------
    counts : mapping of str to int
        Bar label -> count. All of one kind: never mix objects and tracks.
    title : str
        Chart title.
    unit : str
        What is counted (the axis label and the caption).
    """
    fig = _new_figure(6.0, 0.9 + 0.5 * max(len(counts), 2))
    ax = fig.add_subplot()
    names = list(counts)
    values = [int(counts[n]) for n in names]
    ax.barh(range(len(names)), values, color="#3b7dd8")
    ax.set_yticks(range(len(names)), labels=[_short(n, 40) for n in names])
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v}", va="center", fontsize=9)
    ax.set_xlabel(unit)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_title(title, fontsize=11)
    ax.margins(x=0.15)
    caption = ", ".join(f"{n}: {v} {unit}" for n, v in zip(names, values, strict=True))
    return FigurePNG(_png(fig), title, caption)


def histogram_figure(values: Sequence[float], title: str, xlabel: str) -> FigurePNG:
    """Histogram of one measurement."""
    data = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    fig = _new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    if data.size:
        ax.hist(data, bins=min(40, max(5, int(np.sqrt(data.size)) + 1)), color="#3b7dd8")
        ax.axvline(float(np.median(data)), color="#d8573b", linestyle="--", label="median")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("objects")
    ax.set_title(title, fontsize=11)
    caption = f"n = {data.size}" + (f", median {np.median(data):.4g}" if data.size else "")
    return FigurePNG(_png(fig), title, caption)


def tracks_figure(
    tracks: pd.DataFrame, background: np.ndarray | None, title: str, caption: str = ""
) -> FigurePNG:
    """Draw every track (``y`` against ``x``) over a projection of the movie."""
    fig = _new_figure(6.0, 6.0)
    ax = fig.add_subplot()
    if background is not None:
        img = np.asarray(background, dtype=np.float64)
        lo, hi = _contrast(img)
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    n = 0
    if {"track_id", "y", "x"} <= set(tracks.columns) and len(tracks):
        cmap = _colormap("tab20")
        order = ["track_id", "t"] if "t" in tracks.columns else ["track_id"]
        for n, (_, tr) in enumerate(tracks.sort_values(order).groupby("track_id"), start=1):
            ax.plot(tr["x"], tr["y"], "-", lw=1.2, color=cmap(n % 20))
    if background is None:
        ax.invert_yaxis()
        ax.set_aspect("equal")
    ax.set_title(f"{title}: {n} tracks", fontsize=11)
    ax.set_axis_off()
    return FigurePNG(_png(fig), f"{title}: {n} tracks", caption)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _colormap(name: str) -> Any:
    from matplotlib import colormaps

    return colormaps[name]


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


# --- choosing the figures for results --------------------------------------------------
def table_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Return the measurement columns worth a histogram: ``[(column, axis label)]`` (at most 2)."""
    units = df.attrs.get("units", {}) if isinstance(df.attrs.get("units"), dict) else {}
    out: list[tuple[str, str]] = []
    size = next((c for c in ("area_physical", "area") if c in df.columns), None)
    if size is not None:
        unit = units.get(size, "pixels" if size == "area" else "")
        out.append((size, f"{size} ({unit})" if unit else size))
    for c in ("eccentricity", "solidity", "mean_intensity_0"):
        if c in df.columns and pd.api.types.is_numeric_dtype(df[c]):
            out.append((c, c))
            break
    return out


def value_figures(name: str, value: Any, background: Any = None) -> list[FigurePNG]:
    """Figures for one result: an outline overlay, histograms, or a track plot.

    Parameters
    ----------
    name : str
        The result's name (figure titles).
    value : Value
        The result (labels, image, table, spots or tracks, with its axes).
    background : Value, optional
        The image to draw labels and tracks over.
    """
    return [draw() for draw in figure_plan(name, value, background)]


def figure_plan(name: str, value: Any, background: Any = None) -> list[Callable[[], FigurePNG]]:
    """Return the figures :func:`value_figures` draws for a result, as functions not yet called.

    Knowing how many figures a result has costs nothing; drawing one is
    done when its function is called (the report draws only those it keeps).
    Parameters as :func:`value_figures`.
    """
    out: list[Callable[[], FigurePNG]] = []
    kind = value.kind
    if kind == "labels":
        where = " (first time point)" if "t" in value.axes else ""
        out.append(
            lambda: overlay_figure(
                _background_plane(background, value.axes),
                plane(value.data, value.axes),
                name,
                f"Outlines of the objects of {name}{where}.",
            )
        )
    elif kind == "image":
        out.append(lambda: image_figure(plane(value.data, value.axes), name))
    elif kind == "table":
        df = value.data
        for col, label in table_columns(df):
            out.append(partial(_histogram_of, df, col, f"{name}: {col}", label))
    elif kind == "tracks":
        out.append(lambda: _tracks_over(value, background, name))
        if "track_id" in value.data.columns and len(value.data):
            out.append(
                lambda: histogram_figure(
                    # a table on disk: only its track_id column is read
                    _track_sizes(value.data),
                    f"{name}: track length",
                    "time points",
                )
            )
    elif kind == "spots" and "mass" in value.data.columns:
        out.append(lambda: histogram_figure(value.data["mass"], f"{name}: spot brightness", "mass"))
    return out


def _histogram_of(df: pd.DataFrame, column: str, title: str, xlabel: str) -> FigurePNG:
    return histogram_figure(df[column], title, xlabel)


def _tracks_over(value: Any, background: Any, name: str) -> FigurePNG:
    bg = None
    if background is not None and background.is_array:
        bg = plane(background.data, background.axes, project_t=True)
    # the figure draws every track: a tracks table on disk (ColumnTable) is read whole here
    tracks = as_frame(value.data)
    return tracks_figure(tracks, bg, name, "Tracks over the maximum projection.")


def _track_sizes(tracks: Any) -> pd.Series:
    """Count detections per track (of a table on disk: from its track_id column alone)."""
    if isinstance(tracks, ColumnTable):
        return pd.Series(tracks.column("track_id")).value_counts(sort=False)
    return tracks.groupby("track_id").size()


def _background_plane(background: Any, axes: str) -> np.ndarray | None:
    if background is None or not getattr(background, "is_array", False):
        return None
    bg_axes = background.axes.replace("c", "") if "c" in background.axes else background.axes
    if bg_axes != axes.replace("c", ""):
        return None
    return plane(background.data, background.axes)


def show(value: Any, background: Any = None) -> Any:
    """Return a figure of a step's result for a notebook (or its table, if no figure fits).

    Parameters
    ----------
    value : Value
        What a step or ``open_input`` returned.
    background : Value, optional
        The image to draw labels or tracks over.
    """
    figs = value_figures("result", value, background) if value.kind != "image" else []
    if value.kind == "image":
        figs = [image_figure(plane(value.data, value.axes), "image")]
    if not figs:
        return value.data.head(10) if hasattr(value.data, "head") else None
    return figs[0] if len(figs) == 1 else _Gallery(figs)


@dataclass(frozen=True)
class _Gallery:
    """Several figures displayed one after the other in Jupyter."""

    figures: list[FigurePNG]

    def _repr_html_(self) -> str:
        return "".join(
            f'<img alt="figure {i}" src="{f.data_uri()}" style="max-width:48%;margin:2px">'
            for i, f in enumerate(self.figures)
        )
