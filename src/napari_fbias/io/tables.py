"""Result tables as CSV files, written atomically.

A table is a :class:`pandas.DataFrame` (measurements, spots, tracks). It is
written without the index, in UTF-8, with full float precision, to a
temporary sibling that is renamed into place, so that a reader never sees a
half-written file. The text is streamed to the file in pieces: a table of
143 000 objects held 120 MiB more as one string (and its bytes) than as
columns. A table on disk (:class:`~napari_fbias.io.column_table.ColumnTable`)
is read :data:`READ_ROWS` rows at a time and gives the same text as the same
rows in a DataFrame (each value is formatted on its own, at full precision).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from napari_fbias.io.atomic import atomic_file
from napari_fbias.io.errors import FbiasIOError

__all__ = ["read_table_csv", "write_table_csv"]

#: Values pandas turns into text at a time (its default, 100 000, held 20 MB as
#: Python strings for a 12-column table; the time is the same).
CSV_CHUNK_VALUES = 16384
#: Rows of a table on disk read at a time (4 MiB for 16 columns of 8 bytes).
READ_ROWS = 32768


def write_table_csv(
    df: Any,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write ``df`` to ``path`` as CSV, atomically.

    Parameters
    ----------
    df : pandas.DataFrame or ColumnTable
        The table; its index is not written. A table on disk is read in
        pieces of :data:`READ_ROWS` rows.
    path : path-like
        Destination file; its folder must exist.
    overwrite : bool
        Replace an existing file. By default an existing file is left alone
        and :class:`~napari_fbias.io.errors.OutputExistsError` is raised.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If ``df`` is not a DataFrame (or a table on disk).
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    FbiasIOError
        If ``path`` is a folder or its folder does not exist.
    """
    from napari_fbias.io.column_table import ColumnTable

    on_disk = isinstance(df, ColumnTable)
    if not isinstance(df, pd.DataFrame) and not on_disk:
        raise TypeError(f"write_table_csv expects a pandas DataFrame; got {type(df).__name__}")
    names = list(df.columns) if columns is None else list(columns)
    path = Path(path)
    if path.is_dir():
        raise FbiasIOError(f"cannot write the table to {path}: it is a folder")
    if not path.parent.is_dir():
        raise FbiasIOError(f"cannot write the table to {path}: folder {path.parent} does not exist")
    with atomic_file(path, overwrite=overwrite, text=True) as fh:
        rows = max(1, CSV_CHUNK_VALUES // max(1, len(names)))
        if not on_disk:
            table = df if columns is None else df[names]
            table.to_csv(fh, index=False, lineterminator="\n", chunksize=rows)
        else:  # piece by piece: the header once, then rows (no piece is ever empty)
            df.frame(0, 0, names).to_csv(fh, index=False, lineterminator="\n")
            for piece in df.pieces(READ_ROWS, names):
                piece.to_csv(fh, index=False, header=False, lineterminator="\n", chunksize=rows)
    return path


def read_table_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_table_csv`.

    Raises
    ------
    FbiasIOError
        If the file does not exist or is not a readable CSV table.
    """
    path = Path(path)
    if not path.is_file():
        raise FbiasIOError(f"table file {path} does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FbiasIOError(f"{path} is not a readable CSV table: {exc}") from exc
