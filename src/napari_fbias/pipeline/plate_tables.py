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

:func:`plate_result` gives the heat map's numbers as a small JSON-safe
mapping (rows, columns, one value per well), which a session records as an
approach's result when the batch ran from napari, and which the session
report draws with the same :func:`heatmap_png`.
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

__all__ = [
    "PLACE_COLUMNS",
    "check_plate_result",
    "heatmap_png",
    "plate_result",
    "plate_tables",
    "write_plate_tables",
]

#: The columns that say where a row lies in the plate.
PLACE_COLUMNS = ("row", "column", "well", "field")
#: Most rows and columns a plate result may hold (a 1536-well plate is 32 x 48).
MAX_PLATE_ROWS, MAX_PLATE_COLUMNS = 32, 48


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
    results: dict[str, dict[str, Any]] | None = None,
) -> list[Path]:
    """Write the plate tables and heat map of every plate in the batch; return the files.

    ``heatmap`` names the summary column shown (default: the first object
    count, else the first row count). ``results``, when given, receives each
    plate's :func:`plate_result` (by plate name).

    Raises
    ------
    BatchError
        When ``heatmap`` is not a column of the summary (the message lists them).
    """
    from napari_fbias.io.atomic import atomic_write_bytes
    from napari_fbias.io.tables import write_table_csv

    written: list[Path] = []
    for plate, (summary, table) in plate_tables(items, outdir, status).items():
        base = Path(outdir) / f"{plate}_plate"
        write_table_csv(summary, Path(f"{base}_summary.csv"), overwrite=True)
        written.append(Path(f"{base}_summary.csv"))
        if not table.empty:
            write_table_csv(table, Path(f"{base}_objects.csv"), overwrite=True)
            written.append(Path(f"{base}_objects.csv"))
        column = heatmap or _default_column(summary)
        if column is None:
            continue
        if column not in summary.columns:
            known = [c for c in summary.columns if c not in (*PLACE_COLUMNS, "folder", "status")]
            raise BatchError(
                f"--heatmap: no column {column!r} in the plate summary (written to {outdir}); "
                f"choose one of {known}"
            )
        result = plate_result(summary, column)
        dest = Path(f"{base}_heatmap.png")
        atomic_write_bytes(dest, heatmap_png(result, f"{plate}: {column}"))
        written.append(dest)
        if results is not None:
            results[plate] = result
    return written


def _default_column(summary: pd.DataFrame) -> str | None:
    for suffix in ("_objects", "_tracks", "_rows"):
        found = [c for c in summary.columns if c.endswith(suffix)]
        if found:
            return found[0]
    return None


def plate_result(summary: pd.DataFrame, column: str) -> dict[str, Any]:
    """Return the heat map of ``column`` as plain data: the mean over each well's fields.

    ``{"column", "rows", "columns", "values", "fields", "failed"}``, where
    ``values[i][j]`` is the value of well ``rows[i] + columns[j]`` (None where
    the plate has no such well or all its fields failed).
    """
    rows = sorted({str(r) for r in summary["row"]}, key=lambda r: (len(r), r))
    cols = sorted({str(c) for c in summary["column"]}, key=lambda c: (len(c), c))
    grid: list[list[float | None]] = [[None] * len(cols) for _ in rows]
    values = pd.to_numeric(summary[column], errors="coerce")
    means = values.groupby([summary["row"].astype(str), summary["column"].astype(str)]).mean()
    for (r, c), v in means.items():
        if np.isfinite(v):
            grid[rows.index(r)][cols.index(c)] = float(v)
    failed = int((summary["status"] == "failed").sum()) if "status" in summary else 0
    return {
        "column": column,
        "rows": rows,
        "columns": cols,
        "values": grid,
        "fields": len(summary),
        "failed": failed,
    }


def check_plate_result(result: Any) -> dict[str, Any]:
    """Return ``result`` if it is a well-formed :func:`plate_result`, else raise ValueError.

    A session journal may come from anywhere: its plate results are checked
    (types, a plate no larger than 32 x 48 wells, numbers or None) before
    anything draws them.
    """
    if not isinstance(result, Mapping):
        raise ValueError("a plate result must be a mapping")
    rows, cols, values = result.get("rows"), result.get("columns"), result.get("values")
    if not (isinstance(rows, list) and isinstance(cols, list) and isinstance(values, list)):
        raise ValueError("a plate result needs lists of rows, columns and values")
    if not (0 < len(rows) <= MAX_PLATE_ROWS and 0 < len(cols) <= MAX_PLATE_COLUMNS):
        raise ValueError(
            f"a plate result of {len(rows)} x {len(cols)} wells (at most "
            f"{MAX_PLATE_ROWS} x {MAX_PLATE_COLUMNS})"
        )
    if len(values) != len(rows) or any(
        not isinstance(line, list) or len(line) != len(cols) for line in values
    ):
        raise ValueError("a plate result's values do not match its rows and columns")
    for line in values:
        for v in line:
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"a plate result holds a value that is not a number: {v!r}")
    return dict(result)


def heatmap_png(result: Mapping[str, Any], title: str) -> bytes:
    """Draw a :func:`plate_result` as the plate (PNG bytes); empty wells are blank."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = [str(r)[:8] for r in result["rows"]], [str(c)[:8] for c in result["columns"]]
    grid = np.array(
        [[np.nan if v is None else float(v) for v in line] for line in result["values"]],
        dtype=np.float64,
    ).reshape(len(rows), len(cols))
    fig = Figure(figsize=(1 + 0.5 * len(cols), 1 + 0.45 * len(rows)), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title[:120], fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()
