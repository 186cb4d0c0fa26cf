"""Plate-level results of a batch over an OME-Zarr plate: one summary, one object table, a heat map.

After ``fbias run PIPELINE plate.zarr`` each field has its own result folder
(``<plate>_B3_f0/``). For every plate of the batch this module writes, next
to them:

* ``<plate>_plate_summary.csv``: one row per field (``row, column, well,
  field``, the result folder, then per labels output its object count and
  per table output its row count and the mean of each numeric column);
* ``<plate>_plate_objects.csv``: every row of every table output, with
  ``row, column, well, field`` (and ``output`` when there are several);
* ``<plate>_plate_heatmap.png``: one value per well (the mean over its
  fields) of a chosen summary column, laid out as the plate.

They are rebuilt from the result folders (``run.json`` and the files it
lists), so a resumed batch gives the same tables; fields that failed are in
the summary with ``status`` ``failed`` and no values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.pipeline.errors import BatchError
from napari_fbias.pipeline.inputs import BatchInput
from napari_fbias.pipeline.outputs import read_run_record

__all__ = ["PLACE_COLUMNS", "plate_tables", "write_plate_tables"]

#: The columns that say where a row lies in the plate.
PLACE_COLUMNS = ("row", "column", "well", "field")


def _objects_in(folder: Path, path: str) -> int:
    from napari_fbias.io.ome_zarr_read import read_ome_zarr

    labels = np.asarray(read_ome_zarr(folder / path, labels=False).levels[0])
    return int(np.count_nonzero(np.unique(labels)))


def _field_values(folder: Path) -> tuple[dict[str, Any], list[pd.DataFrame]]:
    """Return the summary values of one field's results, and its tables (by output)."""
    record = read_run_record(folder) or {}
    values: dict[str, Any] = {}
    tables: list[pd.DataFrame] = []
    for name, entry in (record.get("files") or {}).items():
        kind, path = entry.get("kind"), entry.get("path")
        if name == "input" or not path:
            continue
        if kind == "labels":
            values[f"{name}_objects"] = _objects_in(folder, path)
        elif kind in ("table", "tracks", "spots"):
            table = pd.read_csv(folder / path)
            values[f"{name}_rows"] = len(table)
            if kind == "tracks" and "track_id" in table:
                values[f"{name}_tracks"] = int(table["track_id"].nunique())
            for column in table.select_dtypes("number").columns:
                if column not in ("label", "track_id", "t"):
                    values[f"{name}_{column}_mean"] = float(table[column].mean())
            tables.append(table.assign(output=name))
    return values, tables


def plate_tables(
    items: Sequence[BatchInput], outdir: str | os.PathLike[str], status: Mapping[str, str]
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Return, per plate of the batch, its summary and object tables.

    ``status`` maps each item's stem to its batch status (``done``,
    ``skipped``, ``failed``).
    """
    out: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    plates: dict[str, list[BatchInput]] = {}
    for item in items:
        if item.place is not None:
            plates.setdefault(item.place.plate, []).append(item)
    for plate, fields in plates.items():
        rows, objects = [], []
        for item in fields:
            p = item.place
            assert p is not None
            where = {"row": p.row, "column": p.column, "well": p.well, "field": p.field}
            state = status.get(item.stem, "failed")
            row: dict[str, Any] = {**where, "folder": item.stem, "status": state}
            if state != "failed":
                values, tables = _field_values(Path(outdir) / item.stem)
                row.update(values)
                objects += [t.assign(**where) for t in tables]
            rows.append(row)
        summary = pd.DataFrame(rows)
        table = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame()
        if not table.empty:
            outputs = table["output"].nunique()
            first = [*PLACE_COLUMNS, *(["output"] if outputs > 1 else [])]
            table = table[[*first, *(c for c in table.columns if c not in first + ["output"])]]
        out[plate] = (summary, table)
    return out


def write_plate_tables(
    items: Sequence[BatchInput],
    outdir: str | os.PathLike[str],
    status: Mapping[str, str],
    *,
    heatmap: str | None = None,
) -> list[Path]:
    """Write the plate tables and heat map of every plate in the batch; return the files.

    ``heatmap`` names the summary column shown (default: the first object
    count, else the first row count).

    Raises
    ------
    BatchError
        When ``heatmap`` is not a column of the summary (the message lists them).
    """
    from napari_fbias.io.atomic import atomic_write_text

    written: list[Path] = []
    for plate, (summary, table) in plate_tables(items, outdir, status).items():
        base = Path(outdir) / f"{plate}_plate"
        atomic_write_text(Path(f"{base}_summary.csv"), summary.to_csv(index=False))
        written.append(Path(f"{base}_summary.csv"))
        if not table.empty:
            atomic_write_text(Path(f"{base}_objects.csv"), table.to_csv(index=False))
            written.append(Path(f"{base}_objects.csv"))
        column = heatmap or _default_column(summary)
        if column is not None:
            written.append(_heatmap(summary, column, plate, Path(f"{base}_heatmap.png")))
    return written


def _default_column(summary: pd.DataFrame) -> str | None:
    for suffix in ("_objects", "_tracks", "_rows"):
        found = [c for c in summary.columns if c.endswith(suffix)]
        if found:
            return found[0]
    return None


def _heatmap(summary: pd.DataFrame, column: str, plate: str, dest: Path) -> Path:
    """Save a plate-shaped heat map of ``column`` (mean over each well's fields) at ``dest``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_fbias.io.atomic import atomic_write_bytes

    if column not in summary.columns:
        known = [c for c in summary.columns if c not in (*PLACE_COLUMNS, "folder", "status")]
        raise BatchError(
            f"--heatmap: no column {column!r} in the plate summary (written to {dest.parent}); "
            f"choose one of {known}"
        )
    rows = sorted(summary["row"].unique(), key=lambda r: (len(r), r))
    cols = sorted(summary["column"].unique(), key=lambda c: (len(str(c)), str(c)))
    grid = np.full((len(rows), len(cols)), np.nan)
    means = summary.groupby(["row", "column"])[column].mean()
    for (r, c), v in means.items():
        grid[rows.index(r), cols.index(c)] = v
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(cols), 1 + 0.45 * len(rows)), dpi=120)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(f"{plate}: {column}", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(dest, buffer.getvalue())
    return dest
