"""Region measurements and CSV tables."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from napari_fbias.io.errors import FbiasIOError, OutputExistsError
from napari_fbias.io.tables import read_table_csv, write_table_csv
from napari_fbias.ops import get_op
from napari_fbias.ops.measure import DEFAULT_PROPERTIES, measured_columns, regionprops


def two_rectangles(shape=(20, 30)):
    lab = np.zeros(shape, np.int32)
    lab[2:6, 3:13] = 1  # 4 x 10 = 40 px, centroid (3.5, 7.5)
    lab[10:19, 20:29] = 2  # 9 x 9 = 81 px, centroid (14, 24)
    return lab


def test_spec():
    spec = get_op("measure.regionprops")
    assert spec.category == "measure" and spec.output == "table"
    assert not spec.spatial
    assert [(i.name, i.kind, i.required) for i in spec.inputs] == [
        ("labels", "labels", True),
        ("image", "image", False),
    ]
    assert spec.param_names == ("properties",)
    assert spec.param("properties").default == DEFAULT_PROPERTIES
    assert set(spec.context) == {"axes", "spacing"}


def test_areas_centroids_bboxes_of_rectangles():
    df = regionprops(two_rectangles())
    assert list(df.columns) == [
        "label",
        "area",
        "centroid_y",
        "centroid_x",
        "bbox_min_y",
        "bbox_min_x",
        "bbox_max_y",
        "bbox_max_x",
        "eccentricity",
        "solidity",
    ]
    assert df["label"].tolist() == [1, 2]
    assert df["area"].tolist() == [40, 81]
    assert df["area"].dtype == np.int64
    assert df[["centroid_y", "centroid_x"]].values.tolist() == [[3.5, 7.5], [14.0, 24.0]]
    assert df.loc[1, ["bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"]].tolist() == [
        10,
        20,
        19,
        29,
    ]
    assert df.loc[1, "eccentricity"] == pytest.approx(0.0, abs=1e-9)  # a square
    assert df.loc[0, "eccentricity"] > 0.8
    assert df["solidity"].tolist() == [1.0, 1.0]
    assert df.attrs["units"] == {} and df.attrs["spacing"] is None


def test_physical_units_from_spacing():
    df = regionprops(two_rectangles(), spacing=(0.5, 0.25), axes="yx")
    assert df["area_physical"].tolist() == [40 * 0.125, 81 * 0.125]
    assert df["centroid_y_physical"].tolist() == [3.5 * 0.5, 14 * 0.5]
    assert df["centroid_x_physical"].tolist() == [7.5 * 0.25, 24 * 0.25]
    assert df.attrs["units"] == {
        "area_physical": "um^2",
        "centroid_y_physical": "um",
        "centroid_x_physical": "um",
    }
    assert df.columns.get_loc("area_physical") == df.columns.get_loc("area") + 1


def test_3d_volume_and_no_2d_only_properties():
    lab = np.zeros((6, 10, 10), np.uint16)
    lab[1:4, 2:6, 2:7] = 3  # 3 x 4 x 5 = 60 voxels
    df = regionprops(lab, spacing=(2.0, 0.5, 0.5))
    assert "eccentricity" not in df.columns and "solidity" in df.columns
    assert df["label"].tolist() == [3]
    assert df["area"].tolist() == [60]
    assert df["area_physical"].tolist() == [60 * 0.5]
    assert df.attrs["units"]["area_physical"] == "um^3"
    assert df[["centroid_z", "centroid_y", "centroid_x"]].values.tolist() == [[2.0, 3.5, 4.0]]


def test_rows_per_time_point_sorted_by_t_then_label():
    t0 = two_rectangles()
    t1 = np.zeros_like(t0)
    t1[0:3, 0:3] = 5
    t1[5:7, 5:7] = 2
    lab = np.stack([t0, t1, np.zeros_like(t0)])
    df = regionprops(lab, axes="tyx", spacing=(2.0, 1.0, 1.0))
    assert list(df.columns[:2]) == ["t", "label"]
    assert df[["t", "label"]].values.tolist() == [[0, 1], [0, 2], [1, 2], [1, 5]]
    assert df["area"].tolist() == [40, 81, 4, 9]
    assert df["area_physical"].tolist() == [40, 81, 4, 9]  # time spacing not used


def test_per_channel_intensities():
    lab = two_rectangles()
    img = np.zeros((2, *lab.shape), np.uint16)  # cyx
    img[0][lab == 1] = 10
    img[0][lab == 2] = 20
    img[1][lab == 1] = np.arange(40)
    img[1][lab == 2] = 7
    df = regionprops(lab, img, axes="cyx")
    assert list(df.columns[-8:]) == [
        f"{s}_intensity_{c}" for c in (0, 1) for s in ("mean", "min", "max", "sum")
    ]
    assert df["mean_intensity_0"].tolist() == [10.0, 20.0]
    assert df["sum_intensity_0"].tolist() == [400.0, 1620.0]
    assert df["mean_intensity_1"].tolist() == [19.5, 7.0]
    assert df["min_intensity_1"].tolist() == [0.0, 7.0]
    assert df["max_intensity_1"].tolist() == [39.0, 7.0]


def test_single_channel_image_and_time_with_channels():
    lab = two_rectangles()
    img = (lab * 3).astype(np.float32)
    df = regionprops(lab, img)
    assert df["mean_intensity_0"].tolist() == [3.0, 6.0]
    # tcyx image with tyx labels; the runner may pass the axes of either input
    lab_t = np.stack([lab, lab[::-1]])
    img_t = np.stack([np.stack([img, img * 2]), np.stack([img[::-1], img[::-1] * 2])])
    for axes in ("tyx", "tcyx"):
        df = regionprops(lab_t, img_t, axes=axes)
        assert df["t"].tolist() == [0, 0, 1, 1]
        assert df["mean_intensity_1"].tolist() == [6.0, 12.0, 6.0, 12.0]


def test_lazy_dask_input():
    lab = da.from_array(np.stack([two_rectangles()] * 3), chunks=(1, 20, 30))
    df = regionprops(lab, axes="tyx", properties=("area",))
    assert list(df.columns) == ["t", "label", "area"]
    assert len(df) == 6


def test_empty_labels_give_empty_table_with_columns():
    lab = np.zeros((10, 10), np.int32)
    img = np.ones((2, 10, 10))
    df = regionprops(lab, img, axes="cyx", spacing=(1.0, 0.5, 0.5))
    assert len(df) == 0
    assert list(df.columns) == measured_columns(axes="yx", physical=True, n_channels=2)
    assert df["label"].dtype == np.int64 and df["mean_intensity_1"].dtype == np.float64


def test_columns_are_stable():
    lab = two_rectangles()
    df = regionprops(lab, lab.astype(float), properties=("bbox", "area", "extent"))
    assert list(df.columns) == measured_columns(("bbox", "area", "extent"), n_channels=1)
    assert list(df.columns[:4]) == ["label", "bbox_min_y", "bbox_min_x", "bbox_max_y"]


def test_bad_inputs():
    lab = two_rectangles()
    with pytest.raises(ValueError, match="unknown property.*'volume'"):
        regionprops(lab, properties=("volume",))
    with pytest.raises(ValueError, match="does not fit labels shape"):
        regionprops(lab, np.ones((5, 5)))
    with pytest.raises(ValueError, match="do not match labels"):
        regionprops(lab, axes="zyx")
    with pytest.raises(ValueError, match="labels have a channel axis.*preprocess.select"):
        regionprops(np.stack([lab, lab]), axes="cyx")
    with pytest.raises(ValueError, match="integer object ids"):
        regionprops(lab.astype(np.float32))
    with pytest.raises(ValueError, match="spacing"):
        regionprops(lab, spacing=(1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        regionprops(np.zeros((0, 5), np.int32))


# --- CSV tables ----------------------------------------------------------------------------


def test_write_table_csv_roundtrip_and_no_overwrite(tmp_path):
    df = regionprops(two_rectangles(), spacing=(0.3, 0.3))
    path = write_table_csv(df, tmp_path / "measurements.csv")
    back = read_table_csv(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measurements.csv"]  # no temp left
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_table_csv(df.head(1), path)
    assert path.read_bytes() == before
    write_table_csv(df.head(1), path, overwrite=True)
    assert len(read_table_csv(path)) == 1


def test_write_table_csv_errors(tmp_path):
    with pytest.raises(FbiasIOError, match="does not exist"):
        write_table_csv(pd.DataFrame({"a": [1]}), tmp_path / "missing" / "t.csv")
    with pytest.raises(FbiasIOError, match="is a folder"):
        write_table_csv(pd.DataFrame({"a": [1]}), tmp_path)
    with pytest.raises(TypeError, match="DataFrame"):
        write_table_csv({"a": [1]}, tmp_path / "t.csv")  # type: ignore[arg-type]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    with pytest.raises(FbiasIOError, match="not a readable CSV"):
        read_table_csv(bad)
