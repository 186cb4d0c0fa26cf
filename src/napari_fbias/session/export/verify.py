"""Check that a result folder holds exactly the expected results (bit for bit).

Used by ``fbias demo`` and the tests to show that the CLI, the exported
script and the notebook reproduce what the session computed: labels must be
equal pixel for pixel with the same integer type, tables equal value for
value (pandas reads the floats back exactly).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.io.column_table import as_frame


def read_result(folder: str | Path, name: str) -> Any:
    """Read output ``name`` of a result folder written by ``fbias run`` (or a script).

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        The labels / image pixels, or the table.

    Raises
    ------
    KeyError
        When the folder's ``run.json`` lists no such output.
    """
    from napari_fbias.io.open import open_image
    from napari_fbias.pipeline.outputs import read_run_record

    folder = Path(folder)
    record = read_run_record(folder)
    if record is None:
        raise KeyError(f"{folder} is not a result folder (no readable run.json)")
    files = record.get("files", {})
    if name not in files:
        raise KeyError(f"{folder} has no output {name!r} (outputs: {', '.join(files)})")
    rel = str(files[name]["path"])
    if rel.endswith(".csv"):
        return pd.read_csv(folder / rel)
    if "/labels/" in rel:
        store, label = rel.split("/labels/", 1)
        return np.asarray(open_image(str(folder / store)).labels[label].data)
    return np.asarray(open_image(str(folder / rel)).data)


def compare(expected: Any, got: Any, what: str) -> str | None:
    """Return why ``got`` differs from ``expected`` (None when identical).

    Arrays must have the same shape, integer type and pixels; tables the same
    columns (in any order), rows and values.
    """
    if isinstance(expected, pd.DataFrame):
        if not isinstance(got, pd.DataFrame):
            return f"{what}: expected a table, got {type(got).__name__}"
        if set(expected.columns) != set(map(str, got.columns)):
            return f"{what}: columns differ ({sorted(expected.columns)} vs {sorted(got.columns)})"
        if len(expected) != len(got):
            return f"{what}: {len(got)} rows instead of {len(expected)}"
        exp = expected.reset_index(drop=True)
        for col in exp.columns:
            a, b = exp[col].to_numpy(), got[str(col)].to_numpy()
            if a.dtype.kind in "fc" or b.dtype.kind in "fc":
                same = np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True)
            else:
                same = [str(x) for x in a] == [str(x) for x in b]
            if not same:
                return f"{what}: column {col!r} differs"
        return None
    a, b = np.asarray(expected), np.asarray(got)
    if a.shape != b.shape:
        return f"{what}: shape {b.shape} instead of {a.shape}"
    if a.dtype.kind in "iu" and a.dtype != b.dtype:
        return f"{what}: type {b.dtype} instead of {a.dtype}"
    if not np.array_equal(a, b):
        return f"{what}: {int(np.count_nonzero(a != b))} pixels differ"
    return None


def compare_folder(expected: Mapping[str, Any], folder: str | Path) -> list[str]:
    """Compare every expected output with what ``folder`` holds; return the differences.

    Parameters
    ----------
    expected : mapping of str to array, DataFrame or Value
        Output name -> the data the session (or a reference run) produced.
    folder : path
        A result folder (``OUTDIR/<image name>``).
    """
    problems = []
    for name, value in expected.items():
        # compared value by value with the CSV read back whole: a table on disk is read whole too
        data = as_frame(getattr(value, "data", value))
        try:
            got = read_result(folder, name)
        except (KeyError, OSError, ValueError) as exc:
            problems.append(f"{name}: cannot read it back ({exc})")
            continue
        why = compare(data, got, name)
        if why:
            problems.append(why)
    return problems
