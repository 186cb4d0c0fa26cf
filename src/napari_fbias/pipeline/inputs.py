"""Expand batch inputs (files, OME-Zarr stores, folders, globs, URLs) into a list of images.

Each image gets a *stem*: the name of its result folder under the output
folder (``a.ome.zarr`` -> ``a``, ``b.ome.tif`` -> ``b``). Stems are unique
(``-2``, ``-3``... are appended in input order) and stable, so that an
interrupted batch finds its finished inputs again.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from napari_fbias.pipeline.errors import BatchError

_SUFFIXES = (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif")
_TIFF = (".tif", ".tiff")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class PlatePlace:
    """Where a batch image lies in a plate: the plate's stem, row, column, well and field."""

    plate: str
    row: str
    column: str
    field: int

    @property
    def well(self) -> str:
        """``"B3"``."""
        return f"{self.row}{self.column}"


@dataclass(frozen=True)
class Selection:
    """Which images of containers a batch runs (None: all of them).

    Wells and fields of OME-Zarr plates, series of bioformats2raw containers,
    indices along the extra axes of images (``(("angle", (0, 2)),)``: the
    other extra axes, all their indices).
    """

    wells: tuple[str, ...] | None = None
    fields: tuple[int, ...] | None = None
    series: tuple[int, ...] | None = None
    extra: tuple[tuple[str, tuple[int, ...]], ...] | None = None

    @classmethod
    def parse(
        cls, wells: str = "", fields: str = "", series: str = "", extra: str = ""
    ) -> Selection:
        """Read typed wells (``"A1, B3"``), fields and series (``"0, 2"``); empty: all.

        ``extra`` picks indices along extra axes: ``"angle=0,2"``, several axes
        separated by ``;`` (``"angle=0,2; view=1"``).

        Raises
        ------
        BatchError
            For a well that is not a row letter and a column number, or a field,
            series or index that is not a whole number.
        """
        from napari_fbias.io.ome_zarr_plate import parse_well_names

        def numbers(text: str, what: str) -> tuple[int, ...] | None:
            parts = [p for p in (text or "").replace(",", " ").split() if p]
            if not parts:
                return None
            if not all(p.isdigit() for p in parts):
                raise BatchError(f"{what}: whole numbers separated by commas (0, 2), not {text!r}")
            return tuple(int(p) for p in parts)

        try:
            names = tuple(parse_well_names(wells)) if (wells or "").strip() else None
        except ValueError as exc:
            raise BatchError(f"Wells: {exc}") from None
        picks = []
        for part in (p.strip() for p in (extra or "").split(";")):
            if not part:
                continue
            axis, eq, text = (x.strip() for x in part.partition("="))
            found = numbers(text, f"Extra axis {axis!r}") if axis and eq else None
            if found is None:
                raise BatchError(f"Extra axes: name=indices (angle=0,2), not {part!r}")
            picks.append((axis, found))
        return cls(
            names, numbers(fields, "Fields"), numbers(series, "Series"), tuple(picks) or None
        )


@dataclass(frozen=True)
class BatchInput:
    """One image of a batch.

    Parameters
    ----------
    source : str
        Local path (absolute) or URL, as given to ``open_image``.
    stem : str
        Name of its result folder.
    container : str or None
        The local folder or OME-Zarr store it lies in or is (used to refuse
        output folders inside inputs); None for URLs.
    place : PlatePlace or None
        For a field of a plate: where it lies in the plate.
    """

    source: str
    stem: str
    container: str | None = None
    place: PlatePlace | None = None

    @property
    def shown(self) -> str:
        """The source as recorded and reported: a URL without credentials."""
        from napari_fbias.io.credentials import sanitize_uri

        return sanitize_uri(self.source)

    @property
    def is_remote(self) -> bool:
        """True for URLs (``http(s)://``, ``s3://``, ``omero://``)."""
        return is_url(self.source)


def is_url(source: str) -> bool:
    """Tell whether ``source`` is a URL (other than ``file://``)."""
    return "://" in source and not source.startswith("file://")


def stem_of(source: str) -> str:
    """Return the result folder name of an image: its name without image suffixes, made safe.

    One index along extra axes (``a.ome.zarr[angle=2]``) gives ``a_angle2``.
    """
    from napari_fbias.io.extra_axes import extra_stem, split_extra

    base, picks = split_extra(source)
    if picks:
        tail = extra_stem(picks)
        return stem_of(base)[: max(80 - len(tail), 1)] + tail
    if is_url(source):
        from napari_fbias.io.credentials import sanitize_uri

        parts = urlsplit(sanitize_uri(source))  # never a piece of a password in a folder name
        name = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or parts.netloc
        if parts.scheme == "omero" and parts.path:
            name = parts.path.strip("/").replace("/", "-")
    else:
        name = Path(source.rstrip("/\\")).name
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    name = _UNSAFE.sub("-", name).strip("-.") or "image"
    return name[:80]


def _omero_images(source: str) -> list[str] | None:
    """Image URIs inside an OMERO container (Dataset, Plate...), or None if not one.

    Needs a connection to the server registered in this process (``fbias run``
    logs in first; see :mod:`napari_fbias.io.omero.connection`).
    """
    from napari_fbias.io.open import is_omero_source

    if not is_omero_source(source):
        return None
    from napari_fbias.io.omero.uri import parse_omero_uri

    ref = parse_omero_uri(source)
    if ref.kind == "Image":
        return [ref.uri]
    if ref.kind == "Plate":
        return None  # a plate: its wells and fields, with their places (see _members)
    from napari_fbias.io.omero.browse import expand_omero_inputs
    from napari_fbias.io.omero.connection import get_connection

    images = expand_omero_inputs(ref, get_connection(ref.host))
    if not images:
        raise BatchError(f"{source} holds no images")
    return images


def _is_ome_zarr_dir(path: Path) -> bool:
    return path.is_dir() and ((path / ".zattrs").is_file() or (path / "zarr.json").is_file())


def _is_image(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in _TIFF) or _is_ome_zarr_dir(path)


def _has_magic(s: str) -> bool:
    return glob.has_magic(s)


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    root: list[str] = []
    for part in parts:
        if _has_magic(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def _members(
    source: str, container: str | None, select: Selection
) -> list[tuple[str, str | None, str | None, PlatePlace | None]]:
    """Return the images of an OME-Zarr source: itself, a plate's fields, or its series.

    Each as ``(source, container, stem or None, plate place or None)``.
    """
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.io.extra_axes import split_extra
    from napari_fbias.io.ome_zarr_plate import container_kind, list_series, read_plate
    from napari_fbias.io.remote import join_key

    if split_extra(source)[1]:  # one index along extra axes, named by the user
        return [(source, container, None, None)]
    kind = container_kind(source)
    base = stem_of(source)
    if kind == "plate":
        try:
            plate = read_plate(source)
            fields = plate.fields(select.wells, select.fields)
        except (FbiasIOError, KeyError, ValueError) as exc:
            raise BatchError(f"{source}: {exc.args[0] if exc.args else exc}") from None
        return [
            (
                f.source,
                container,
                f"{base}_{f.stem}",
                PlatePlace(base, f.well.row, f.well.column, f.index),
            )
            for f in fields
        ]
    if kind == "series":
        try:
            paths = list_series(source)
        except FbiasIOError as exc:
            raise BatchError(f"{source}: {exc}") from None
        chosen = range(len(paths)) if select.series is None else select.series
        bad = [i for i in chosen if not 0 <= i < len(paths)]
        if bad or not paths:
            raise BatchError(
                f"{source} has {len(paths)} series (0 to {len(paths) - 1}); no series {bad}"
            )
        return [(join_key(source, paths[i]), container, f"{base}_s{i}", None) for i in chosen]
    if kind == "image":
        return [(s, container, None, None) for s in _extra_indices(source, select)]
    return [(source, container, None, None)]


def _extra_indices(source: str, select: Selection) -> list[str]:
    """Return the image itself, or one source per index along its extra axes (``a[angle=2]``)."""
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.io.extra_axes import extra_selections, with_extra
    from napari_fbias.io.ome_zarr_read import list_extra_axes

    try:
        axes = list_extra_axes(source)
    except FbiasIOError:
        return [source]  # the run of this input says what is wrong
    if not axes:
        return [source]
    sizes = {a.name: a.size for a in axes}
    wanted = dict(select.extra or ())
    unknown = [a for a in wanted if a not in sizes]
    bad = [f"{a}={i}" for a, idx in wanted.items() if a in sizes for i in idx if i >= sizes[a]]
    if unknown or bad:
        shown = ", ".join(f"{a} (0 to {n - 1})" for a, n in sizes.items())
        raise BatchError(f"{source}: no {', '.join(unknown + bad)}; its extra axes: {shown}")
    return [
        with_extra(source, picks)
        for picks in extra_selections(axes)
        if all(picks[a] in idx for a, idx in wanted.items())
    ]


def expand_inputs(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    select: Selection | None = None,
) -> list[BatchInput]:
    """Turn the user's inputs into a list of images with unique result-folder names.

    Parameters
    ----------
    inputs : path, URL, folder, glob pattern, or a list of them
        OME-Zarr stores (local or URL), TIFF files, ``omero://`` URIs, a folder
        (every TIFF and OME-Zarr directly in it) or a glob (``"data/*.tif"``).
        An OME-Zarr plate gives every field of every well (results
        ``<plate>_B3_f0``), a bioformats2raw container every series
        (``<name>_s1``), an image with extra axes every index along them
        (``<name>_angle2``, source ``<store>[angle=2]``; such a source given
        directly is that index alone).
    select : Selection, optional
        Only these wells, fields or series of plates and containers, or
        indices along extra axes.

    Returns
    -------
    list of BatchInput
        In the order given (folders and globs sorted by name), duplicates removed.

    Raises
    ------
    BatchError
        For an input that does not exist, a folder or glob with no images,
        or a file that is not an image we can read.
    """
    from napari_fbias.io.extra_axes import split_extra, with_extra

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    select = select or Selection()
    found: list[tuple[str, str | None, str | None, PlatePlace | None]] = []
    for raw in inputs:
        s = os.fspath(raw)
        if is_url(s):
            omero = _omero_images(s)
            if omero:
                found.extend((u, None, None, None) for u in omero)
            else:
                found.extend(_members(s, None, select))
            continue
        s = s.removeprefix("file://")
        base, picks = split_extra(s)
        if picks:  # one index along the extra axes of an image: store[angle=2]
            b = Path(base).expanduser()
            if not _is_ome_zarr_dir(b):
                raise BatchError(f"input {s!r}: {base!r} is not an OME-Zarr image folder")
            root = str(b.resolve())
            found.append((with_extra(root, picks), root, None, None))
            continue
        if _has_magic(s) and not Path(s).exists():
            matches = sorted(glob.glob(os.path.expanduser(s), recursive=True))
            images = [Path(m) for m in matches if _is_image(Path(m))]
            if not images:
                raise BatchError(f"no TIFF or OME-Zarr images match {s!r}")
            root = str(_glob_root(os.path.expanduser(s)).resolve())
            for m in images:
                found.extend(_local(m, root, select))
            continue
        p = Path(s).expanduser()
        if not p.exists():
            raise BatchError(f"input {s!r} not found")
        if _is_ome_zarr_dir(p):
            found.extend(_local(p, str(p.resolve()), select))
        elif p.is_dir():
            images = sorted((c for c in p.iterdir() if _is_image(c)), key=lambda c: c.name)
            if not images:
                raise BatchError(f"folder {s!r} holds no TIFF files or OME-Zarr images")
            for c in images:
                found.extend(_local(c, str(p.resolve()), select))
        elif p.suffix.lower() in _TIFF:
            found.append((str(p.resolve()), None, None, None))
        else:
            raise BatchError(
                f"input {s!r} is not an image this tool reads (OME-Zarr folder or TIFF file)"
            )
    out: list[BatchInput] = []
    seen_sources: set[str] = set()
    seen_stems: set[str] = set()
    for source, container, named, place in found:
        if source in seen_sources:
            continue
        seen_sources.add(source)
        base = named or stem_of(source)
        stem, k = base, 1
        while stem.lower() in seen_stems:
            k += 1
            stem = f"{base}-{k}"
        seen_stems.add(stem.lower())
        out.append(BatchInput(source, stem, container, place))
    if not out:
        raise BatchError("no inputs given")
    return out


def _local(
    path: Path, container: str, select: Selection
) -> list[tuple[str, str | None, str | None, PlatePlace | None]]:
    """Return a local image: a TIFF file as it is, an OME-Zarr store's :func:`_members`."""
    source = str(path.resolve())
    if path.is_file():
        return [(source, container, None, None)]
    return _members(source, container, select)


def check_outdir(outdir: str | os.PathLike[str], items: Sequence[BatchInput]) -> Path:
    """Refuse an output folder that is, or lies inside, an input (its folder or store).

    Returns
    -------
    pathlib.Path
        The output folder, absolute.

    Raises
    ------
    BatchError
        Naming the input the output folder would be written into.
    """
    s = os.fspath(outdir)
    if is_url(s):
        raise BatchError(f"output folder {s!r} must be a local folder")
    out = Path(s).expanduser().resolve()
    for item in items:
        if item.is_remote:
            continue
        for container in {item.source, item.container} - {None}:
            c = Path(container)  # type: ignore[arg-type]
            if out == c or c in out.parents:
                raise BatchError(
                    f"output folder {out} is inside the input {c}; choose an output folder "
                    "outside your data (inputs are never written to)"
                )
    if out.exists() and not out.is_dir():
        raise BatchError(f"output folder {out} exists and is not a folder")
    return out
