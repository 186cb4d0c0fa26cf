"""Write the results of one pipeline run into a folder.

Layout of ``<folder>/``:

* ``result.ome.zarr`` -- the (selected) input image, with every labels
  output that fits it under ``labels/<output name>`` (OME-Zarr labels);
* ``<name>.ome.zarr`` -- image outputs, and labels outputs that do not fit
  the input image (e.g. after a projection);
* ``<name>.csv`` -- tables, spots and tracks (napari Tracks columns first);
* ``<name>_ctc/`` -- tracks in the Cell Tracking Challenge result format;
* ``<name>.geff`` -- tracks as GEFF (graph exchange format for tracking);
* ``run.json`` -- the run record, written last (see :func:`write_run_record`).

Every file is written atomically by the writers of :mod:`napari_fbias.io`;
:func:`write_result_folder` (what ``fbias run`` and the exported scripts
use) additionally builds the whole folder next to its final place and
renames it, so a result folder is either complete or absent. Dask arrays
(chunk-wise runs) are streamed to the stores chunk by chunk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from napari_fbias.pipeline.runner import Results
from napari_fbias.pipeline.values import Value

RESULT_STORE = "result.ome.zarr"
RUN_RECORD = "run.json"


def _image_input(results: Results) -> Value | None:
    for v in results.inputs.values():
        if v.kind == "image":
            return v
    return next(iter(results.inputs.values()), None)


def _shape_without_c(image: Value) -> tuple[int, ...]:
    """Shape of an image value without its channel axis (the shape its labels have).

    Parameters
    ----------
    image : Value
        An array value with ``axes``.

    Returns
    -------
    tuple of int
        ``image.data.shape`` with the ``c`` entry (if any) left out.
    """
    return tuple(n for a, n in zip(image.axes, image.data.shape, strict=True) if a != "c")


def _fits(labels: Value, image: Value) -> bool:
    axes = image.axes.replace("c", "")
    if labels.axes != axes:
        return False
    return tuple(labels.data.shape) == _shape_without_c(image)


def _scale(v: Value) -> list[float] | None:
    return list(v.spacing) if v.spacing is not None else None


def _units(v: Value) -> list[str | None] | None:
    return list(v.units) if v.units is not None else None


def write_results(
    results: Results, dest: str | Path, *, name: str = "result", ngff_version: str = "0.4"
) -> dict[str, Any]:
    """Write every output of ``results`` into the existing folder ``dest``.

    Parameters
    ----------
    results : Results
        What :func:`run_pipeline` returned.
    dest : path
        An existing (normally empty) folder.
    name : str
        Image name stored in ``result.ome.zarr``.
    ngff_version : {"0.4", "0.5"}
        OME-Zarr version of the stores written.

    Returns
    -------
    dict
        Output name -> ``{"kind", "path"}`` (paths relative to ``dest``), for ``run.json``.
    """
    from napari_fbias.io.ome_zarr_write import (
        write_image,
        write_image_with_labels,
        write_label_image,
    )
    from napari_fbias.io.tables import write_table_csv
    from napari_fbias.io.tracks_write import write_ctc, write_tracks_csv

    dest = Path(dest)
    files: dict[str, Any] = {}
    image = _image_input(results)
    aligned: dict[str, Any] = {}
    if image is not None and image.is_array:
        for out_name in results:
            v = results.value(out_name)
            if v.kind == "labels" and _fits(v, image):
                aligned[out_name] = v.data
        write_image_with_labels(
            dest / RESULT_STORE,
            image.data,
            image.axes,
            aligned,
            scale=_scale(image),
            units=_units(image),
            name=name,
            ngff_version=ngff_version,  # type: ignore[arg-type]
        )
        files["input"] = {"kind": image.kind, "path": RESULT_STORE, "axes": image.axes}
    for out_name in results:
        v = results.value(out_name)
        if out_name in aligned:
            files[out_name] = {"kind": "labels", "path": f"{RESULT_STORE}/labels/{out_name}"}
        elif v.kind in ("image", "labels"):
            # labels without channels become a label image; the rest a plain image
            label_image = v.kind == "labels" and "c" not in v.axes
            writer = write_label_image if label_image else write_image
            path = f"{out_name}.ome.zarr"
            writer(
                dest / path,
                v.data,
                v.axes,
                scale=_scale(v),
                units=_units(v),
                name=out_name,
                ngff_version=ngff_version,
            )  # type: ignore[arg-type]
            files[out_name] = {"kind": v.kind, "path": path}
        elif v.kind == "tracks":
            path = f"{out_name}.csv"
            write_tracks_csv(dest / path, v.data)
            entry: dict[str, Any] = {"kind": "tracks", "path": path}
            entry.update(_write_ctc(write_ctc, dest, out_name, v, results, image))
            entry.update(_write_geff(dest, out_name, v))
            files[out_name] = entry
        else:
            path = f"{out_name}.csv"
            write_table_csv(v.data, dest / path)
            files[out_name] = {"kind": v.kind, "path": path}
    return files


def _write_geff(dest: Path, out_name: str, v: Value) -> dict[str, Any]:
    """Write tracks as GEFF (with pixel size and units); say why not when the table is no tracks."""
    from napari_fbias.io.tracks_geff import write_geff

    path = f"{out_name}.geff"
    axes = v.spatial_axes
    units = v.units_of(axes)
    time_unit = v.units_of("t") if "t" in v.axes else None
    try:
        write_geff(
            dest / path,
            v.data,
            spacing=v.spacing_of(axes),
            units=units,
            time_unit=time_unit[0] if time_unit else None,
        )
    except ValueError as exc:
        return {"geff": None, "geff_skipped": str(exc)}
    return {"geff": path}


def _write_ctc(
    write_ctc: Any, dest: Path, out_name: str, v: Value, results: Results, image: Value | None
) -> dict[str, Any]:
    """Write tracks in the CTC format when the data allow it; say why not otherwise."""
    if "t" not in v.axes:
        return {"ctc": None, "ctc_skipped": "no time axis"}
    path = f"{out_name}_ctc"
    labels = next((f for f in results.feeds.get(out_name, {}).values() if f.kind == "labels"), None)
    spatial = v.spacing_of(v.spatial_axes)
    try:
        if labels is not None and labels.axes == v.axes:
            write_ctc(dest / path, labels.data, v.data)
        elif image is not None and image.axes.replace("c", "") == v.axes:
            shape = list(_shape_without_c(image))
            write_ctc(dest / path, None, v.data, shape=shape, spacing=spatial)
        else:
            return {"ctc": None, "ctc_skipped": "the tracks' movie shape is unknown"}
    except ValueError as exc:
        return {"ctc": None, "ctc_skipped": str(exc)}
    return {"ctc": path}


def earlier_record(folder: str | Path) -> dict[str, Any] | None:
    """Return the run record of an earlier result in ``folder``; None when there is no folder.

    Raises
    ------
    OutputExistsError
        When ``folder`` exists but is not a napari-fbias result (no ``run.json``).
    """
    from napari_fbias.io.errors import OutputExistsError

    if not Path(folder).exists():
        return None
    record = read_run_record(folder)
    if record is None:
        raise OutputExistsError(
            f"{folder} exists but is not a napari-fbias result (no run.json); "
            "move it away or choose another output folder"
        )
    return record


def write_result_folder(results: Results, outdir: str | Path, stem: str, *, source: str) -> Path:
    """Write the results of one input to ``outdir/stem/``, atomically, ``run.json`` last.

    What ``fbias run`` (:mod:`.batch`) and the exported scripts
    (``runtime.write_outputs``) write: the folder is built next to its final
    place and renamed once complete; an earlier result folder there is
    replaced, any other folder is refused (``OutputExistsError``, see
    :func:`earlier_record`). ``source`` (recorded with ``stem``) must not hold
    credentials. Returns the result folder.
    """
    from napari_fbias.io.atomic import atomic_dir

    final = Path(outdir) / stem
    earlier_record(final)
    record = dict(results.record)
    record["batch"] = {"source": source, "stem": stem}
    with atomic_dir(final, overwrite=True) as tmp:
        record["files"] = write_results(results, tmp, name=stem)
        write_run_record(tmp, record)
    return final


def write_run_record(dest: str | Path, record: dict[str, Any]) -> Path:
    """Write ``run.json`` (atomically); written last, it marks the folder complete."""
    from napari_fbias.io.atomic import atomic_write_text

    text = json.dumps(record, indent=2, allow_nan=False, default=_json_default) + "\n"
    return atomic_write_text(Path(dest) / RUN_RECORD, text)


def read_run_record(folder: str | Path) -> dict[str, Any] | None:
    """Read the ``run.json`` of a result folder; None when absent or unreadable."""
    path = Path(folder) / RUN_RECORD
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
