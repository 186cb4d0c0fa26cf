"""Tables on disk, one file per column (ColumnTable, ColumnWriter): real files, read back."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pandas as pd
import pytest

from napari_fbias.io.column_table import ColumnTable, ColumnWriter, as_frame


def sample(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "track_id": np.arange(n, dtype=np.int64) // 3 + 1,
            "t": (np.arange(n) % 3).astype(np.int32),
            "y": rng.random(n),
            "mass": rng.random(n).astype(np.float32),
            "flag": rng.random(n) < 0.5,
            "small": rng.integers(0, 200, n).astype(np.uint8),
        }
    )


def written(df: pd.DataFrame, piece: int = 7, attrs: dict | None = None) -> ColumnTable:
    writer = ColumnWriter({c: df[c].dtype for c in df.columns}, name="test", attrs=attrs)
    for a in range(0, len(df), piece):
        writer.append(df.iloc[a : a + piece])
    return writer.finish()


def test_round_trip_of_several_types() -> None:
    df = sample()
    table = written(df)
    assert len(table) == 50 and table.shape == (50, 6)
    assert list(table.columns) == list(df.columns)
    assert table.dtypes == {c: df[c].dtype for c in df.columns}
    assert table.nbytes == sum(df[c].to_numpy().nbytes for c in df.columns)
    pd.testing.assert_frame_equal(table.to_pandas(), df)
    pd.testing.assert_frame_equal(as_frame(table), df)
    assert as_frame(df) is df
    assert "mass" in table and "nope" not in table


def test_pieces_and_frames_keep_rows_and_attrs() -> None:
    df = sample()
    attrs = {"spacing": [0.5, 0.25], "units": ["micrometer", None], "frame_interval": 2.0}
    table = written(df, attrs=attrs)
    parts = list(table.pieces(16, ["t", "y"]))
    assert [len(p) for p in parts] == [16, 16, 16, 2]
    assert all(p.attrs == attrs for p in parts)
    pd.testing.assert_frame_equal(pd.concat(parts), df[["t", "y"]])
    part = table.frame(10, 20)
    assert list(part.index) == list(range(10, 20))
    pd.testing.assert_frame_equal(part, df.iloc[10:20])
    assert part.attrs == attrs
    assert ColumnTable.open(table.path).attrs == attrs


def test_column_reads_past_the_end() -> None:
    table = written(sample())
    np.testing.assert_array_equal(table.column("y", 45, 80), sample()["y"].to_numpy()[45:])
    assert len(table.column("y", 60, 90)) == 0
    assert len(table.column("y", -5, 3)) == 3
    with pytest.raises(KeyError, match="no column"):
        table.column("nope")


def test_pickling_reopens_by_path() -> None:
    table = written(sample(), attrs={"spacing": [1.0, 1.0]})
    back = pickle.loads(pickle.dumps(table))
    assert back.path == table.path and back.attrs == table.attrs
    pd.testing.assert_frame_equal(back.to_pandas(), table.to_pandas())
    del back
    gc.collect()
    assert table.path.is_dir()  # the reopened table does not own the folder


def test_the_folder_goes_with_the_table() -> None:
    table = written(sample())
    path = table.path
    assert path.is_dir()
    del table
    gc.collect()
    assert not path.exists()


def test_appending_rows_that_lack_a_column_is_refused() -> None:
    writer = ColumnWriter({"a": np.int64, "b": np.float64}, name="test")
    with pytest.raises(ValueError, match="lack column"):
        writer.append({"a": [1, 2]})
    with pytest.raises(ValueError, match="differ in length"):
        writer.append({"a": [1, 2], "b": [1.0]})
    writer.append({"a": [1, 2], "b": [0.5, 1.5]})
    table = writer.finish()
    assert len(table) == 2 and table.column("b").tolist() == [0.5, 1.5]


def test_an_empty_table() -> None:
    table = ColumnWriter({"a": np.int64}, name="test").finish()
    assert len(table) == 0 and list(table.pieces()) == []
    assert table.to_pandas().empty and list(table.frame(0, 0).columns) == ["a"]
