"""CSV tables: streamed to a temporary sibling, renamed into place, never held as one text."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_fbias.io.atomic import atomic_file
from napari_fbias.io.errors import OutputExistsError
from napari_fbias.io.tables import read_table_csv, write_table_csv


def test_a_large_table_is_streamed_not_held_as_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"c{i}": rng.random(60_000) for i in range(12)})
    df.insert(0, "label", np.arange(1, len(df) + 1))
    path = tmp_path / "objects.csv"
    tracemalloc.start()
    try:
        write_table_csv(df, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    # as one string and its bytes, the write held twice the file; streamed, a few pieces
    assert peak < size / 4, (peak, size)
    back = read_table_csv(path)
    pd.testing.assert_frame_equal(back, df)  # full float precision
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.csv"]


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("earlier\n")
    with pytest.raises(RuntimeError, match="disk went away"):
        with atomic_file(path, text=True) as fh:
            fh.write("half of the new")
            raise RuntimeError("disk went away")
    assert path.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    with pytest.raises(OutputExistsError, match="already exists"):
        write_table_csv(pd.DataFrame({"a": [1]}), path)
    assert path.read_text() == "earlier\n"
    write_table_csv(pd.DataFrame({"a": [1]}), path, overwrite=True)
    assert path.read_text() == "a\n1\n"
