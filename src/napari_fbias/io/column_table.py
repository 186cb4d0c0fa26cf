"""Tables on local disk, one file per column: written in pieces, read in pieces.

A chunk-wise run can find more detections than fit its memory budget: two
million spots of a 3 x 32768^2 movie make a tracks table of 240 MiB. Such a
table is kept in a scratch folder (:func:`~napari_fbias.io.scratch.scratch_folder`)
as one raw file per column (native byte order, no header), appended to by a
:class:`ColumnWriter` and read back by a :class:`ColumnTable` one column, or
one range of rows, at a time. Nothing is memory-mapped: a read is a copy of
what was asked for, so what a reader holds is what it asked for.

The folder lives as long as the table object (and its writer) that made it;
a killed process's folders are removed by the next one
(:mod:`napari_fbias.io.stale_scratch`). Pickled, a table travels as its path
(readable where that folder is, like a scratch array).

Nothing here imports Qt, napari or the ops.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.io.scratch import scratch_folder, scratch_write_error

__all__ = ["PIECE_ROWS", "ColumnTable", "ColumnWriter", "as_frame"]

#: Rows read or written at a time by :meth:`ColumnTable.pieces` (2 MiB a float column).
PIECE_ROWS = 262_144
_META = "columns.json"


def _file_name(k: int) -> str:
    return f"c{k:04d}.bin"  # by position: a column's name may be any text


class ColumnWriter:
    """Append rows to a new table on disk, then :meth:`finish` it.

    Parameters
    ----------
    columns : mapping of str to dtype
        The columns, in order, and their types.
    name : str
        A label for the scratch folder (a step id).
    attrs : mapping, optional
        The table's ``attrs`` (JSON-able), as ``pandas.DataFrame.attrs``.

    Raises
    ------
    OSError
        The folder cannot be created or written (e.g. the disk is full).
    """

    def __init__(
        self, columns: Mapping[str, Any], name: str, attrs: Mapping[str, Any] | None = None
    ) -> None:
        if not columns:
            raise ValueError("a table on disk needs at least one column")
        self._folder: Any = scratch_folder(name)
        self.path = Path(self._folder.name)
        self.dtypes = {str(c): np.dtype(d) for c, d in columns.items()}
        self.attrs = dict(attrs or {})
        self.n_rows = 0
        self._files = [(self.path / _file_name(k)).open("wb") for k in range(len(self.dtypes))]
        self._lengths = [0] * len(self.dtypes)

    def append(self, rows: Mapping[str, Any] | pd.DataFrame) -> None:
        """Append rows: every column, as arrays (or a table) of one length."""
        names = list(self.dtypes)
        missing = [c for c in names if c not in rows]
        if missing:
            raise ValueError(f"rows to append lack column(s) {', '.join(missing)}")
        arrays = [np.asarray(rows[c], dtype=self.dtypes[c]) for c in names]
        n = {len(a) for a in arrays}
        if len(n) != 1:
            raise ValueError(f"columns to append differ in length: {sorted(n)}")
        for k, a in enumerate(arrays):
            self._write(k, a)
        self.n_rows += n.pop()

    def extend(self, column: str, values: Any) -> None:
        """Append values to one column only (a table written column by column).

        Every column must have been extended to the same length by :meth:`finish`.
        """
        names = list(self.dtypes)
        if column not in self.dtypes:
            raise ValueError(f"the table has no column {column!r}")
        k = names.index(column)
        self._write(k, np.asarray(values, dtype=self.dtypes[column]))
        self.n_rows = max(self._lengths)

    def _write(self, k: int, a: np.ndarray) -> None:
        try:
            self._files[k].write(np.ascontiguousarray(a).data)
        except OSError as exc:
            raise scratch_write_error(self.path, exc) from exc
        self._lengths[k] += len(a)

    def finish(self) -> ColumnTable:
        """Close the files; return the table (which now owns the folder)."""
        for fh in self._files:
            fh.close()
        if len(set(self._lengths)) > 1:
            lengths = dict(zip(self.dtypes, self._lengths, strict=True))
            raise ValueError(f"the table's columns differ in length: {lengths}")
        meta = {
            "columns": [[c, d.str] for c, d in self.dtypes.items()],
            "rows": self.n_rows,
            "attrs": self.attrs,
        }
        try:
            (self.path / _META).write_text(json.dumps(meta, default=_plain), encoding="utf-8")
        except OSError as exc:
            raise scratch_write_error(self.path, exc) from exc
        table = ColumnTable(self.path, self.dtypes, self.n_rows, self.attrs)
        table._folder, self._folder = self._folder, None
        return table

    def __enter__(self) -> ColumnWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        for fh in self._files:
            fh.close()


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class ColumnTable:
    """A table whose columns are files on disk (made by :class:`ColumnWriter`).

    What a ``pandas.DataFrame`` consumer needs, read in pieces: ``columns``,
    ``len()``, ``attrs``, :meth:`column`, :meth:`frame` and :meth:`pieces`;
    :meth:`to_pandas` reads it whole.
    """

    def __init__(
        self,
        path: Path,
        dtypes: Mapping[str, np.dtype],
        n_rows: int,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self._folder: Any = None  # set by the writer that made it: the folder's owner
        self.path = Path(path)
        self.dtypes = dict(dtypes)
        self.n_rows = int(n_rows)
        self.attrs: dict[str, Any] = dict(attrs or {})
        self._index = {c: k for k, c in enumerate(self.dtypes)}

    @classmethod
    def open(cls, path: str | Path) -> ColumnTable:
        """Open a finished table's folder (not owned: it stays when this object goes)."""
        meta = json.loads((Path(path) / _META).read_text(encoding="utf-8"))
        dtypes = {c: np.dtype(d) for c, d in meta["columns"]}
        return cls(Path(path), dtypes, meta["rows"], meta.get("attrs"))

    def __reduce__(self) -> tuple:
        return (ColumnTable.open, (str(self.path),))

    @property
    def columns(self) -> pd.Index:
        """The column names, in order."""
        return pd.Index(list(self.dtypes))

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns."""
        return (self.n_rows, len(self.dtypes))

    @property
    def nbytes(self) -> int:
        """Bytes the table takes in memory when read whole."""
        return self.n_rows * sum(d.itemsize for d in self.dtypes.values())

    def __len__(self) -> int:
        return self.n_rows

    def __contains__(self, column: object) -> bool:
        return column in self._index

    def __repr__(self) -> str:
        return f"ColumnTable({self.n_rows} rows, columns {list(self.dtypes)}, at {self.path})"

    def _file(self, column: str) -> Path:
        try:
            return self.path / _file_name(self._index[column])
        except KeyError:
            raise KeyError(f"the table has no column {column!r}") from None

    def column(self, column: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of one column, read from disk (a new array)."""
        stop = self.n_rows if stop is None else min(int(stop), self.n_rows)
        start = max(0, int(start))
        dtype = self.dtypes[column] if column in self._index else None
        if dtype is None:
            raise KeyError(f"the table has no column {column!r}")
        count = max(0, stop - start)
        with self._file(column).open("rb") as fh:
            fh.seek(start * dtype.itemsize)
            out = np.fromfile(fh, dtype=dtype, count=count)
        if len(out) != count:
            raise OSError(f"{self._file(column)} is shorter than its table says ({self.n_rows})")
        return out

    def frame(
        self, start: int = 0, stop: int | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Rows ``start:stop`` (of ``columns``, default all) as a DataFrame, with ``attrs``."""
        names = list(self.dtypes) if columns is None else list(columns)
        data = {c: self.column(c, start, stop) for c in names}
        df = pd.DataFrame(data, columns=names, copy=False)
        if start:
            df.index = pd.RangeIndex(start, start + len(df))
        df.attrs.update(self.attrs)
        return df

    def pieces(
        self, rows: int = PIECE_ROWS, columns: Sequence[str] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Yield the table in consecutive DataFrames of at most ``rows`` rows."""
        rows = max(1, int(rows))
        for start in range(0, self.n_rows, rows):
            yield self.frame(start, start + rows, columns)

    def to_pandas(self) -> pd.DataFrame:
        """Read the whole table into memory."""
        return self.frame()


def as_frame(table: Any) -> Any:
    """Return ``table`` as a DataFrame: a :class:`ColumnTable` read whole, anything else as is."""
    return table.to_pandas() if isinstance(table, ColumnTable) else table
