"""Every kind of store the OME-Zarr writer makes is valid NGFF, as ome-zarr-models reads it.

The writer (``napari_fbias.io.ome_zarr_write``) is the project's own (see
docs/architecture.md, "The OME-Zarr writer"); these tests hold it to the
NGFF schemas through ome-zarr-models, the community's pydantic models of
NGFF 0.4 and 0.5. Each store written is walked whole: every zarr group in it
must be the root image (``Image``) or label image (``ImageLabel``), the
``labels`` group (``Labels``) or a label image it lists, and each of them
must validate. That covers single-level and multiscale images of every axis
combination, images with channel metadata, label images on their own, images
written with their labels, labels added to an existing image, the stores
``fbias run`` writes, the napari writer's, and the shipped multiscale sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import ome_zarr_models
import ome_zarr_models.v04 as models04
import ome_zarr_models.v05 as models05
import pytest
import zarr

from napari_fbias._writer import write_labels_layer
from napari_fbias.io.image import Channel
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import (
    write_image,
    write_image_with_labels,
    write_label_image,
    write_labels,
)
from napari_fbias.io.samples import sample_path
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.outputs import write_results
from napari_fbias.pipeline.runner import run_pipeline

MODELS = {"0.4": models04, "0.5": models05}
VERSIONS = ("0.4", "0.5")
RNG = np.random.default_rng(13)

#: (axes, shape, dtype, levels, units): single-level and multiscale, 2D to 5D, odd sizes.
IMAGES = [
    ("yx", (20, 18), np.uint8, 1, None),
    ("yx", (33, 30), np.uint16, 3, ("micrometer", "micrometer")),
    ("cyx", (2, 16, 17), np.float32, 2, None),
    ("zyx", (5, 16, 16), np.int16, 2, ("micrometer", "micrometer", "micrometer")),
    ("tyx", (3, 12, 12), np.uint16, 1, ("second", None, None)),
    ("tczyx", (2, 2, 3, 16, 16), np.uint16, 2, ("second", None, "micrometer", None, None)),
]
IMAGE_IDS = [f"{a}-{len(s)}d-{lv}lv" for a, s, _, lv, _ in IMAGES]


# --- walking and validating a store ----------------------------------------------------------
def _zarr_groups(root: Path) -> set[str]:
    """Every zarr group under ``root`` (v2 ``.zgroup`` or v3 ``zarr.json`` of a group), relative."""
    found = set()
    for f in root.rglob("*"):
        group_v2 = f.name == ".zgroup"
        if group_v2 or (
            f.name == "zarr.json" and json.loads(f.read_text())["node_type"] == "group"
        ):
            rel = f.parent.relative_to(root).as_posix()
            found.add("" if rel == "." else rel)
    return found


def _check_version(group: zarr.Group, version: str) -> None:
    attrs = group.attrs.asdict()
    if version == "0.5":
        assert group.metadata.zarr_format == 3
        assert attrs["ome"]["version"] == "0.5"
    else:
        assert group.metadata.zarr_format == 2
        assert "ome" not in attrs
        for key in ("multiscales", "image-label"):
            if key == "multiscales" and key in attrs:
                assert attrs[key][0]["version"] == "0.4"
            elif key in attrs:
                assert attrs[key]["version"] == "0.4"


def validate_store(path: str | Path, version: str) -> dict[str, Any]:
    """Validate every group of the store at ``path``; return the models by group path."""
    models = MODELS[version]
    root = Path(path)
    group = zarr.open_group(str(root), mode="r")
    _check_version(group, version)
    is_label = "image-label" in (
        group.attrs.get("ome", {}) if version == "0.5" else group.attrs.asdict()
    )
    top = (models.ImageLabel if is_label else models.Image).from_zarr(group)
    # what ome-zarr-models finds on its own agrees
    assert type(ome_zarr_models.open_ome_zarr(group)).__name__ == type(top).__name__
    validated: dict[str, Any] = {"": top}
    if "labels" in group:
        labels_group = group["labels"]
        _check_version(labels_group, version)
        listing = models.Labels.from_zarr(labels_group)
        validated["labels"] = listing
        names = listing.ome_attributes.labels
        assert names, f"{root}: an empty labels group"
        for name in names:
            sub = labels_group[name]
            _check_version(sub, version)
            validated[f"labels/{name}"] = models.ImageLabel.from_zarr(sub)
        if not is_label:
            assert top.labels is not None  # the image model sees its labels too
    # nothing in the store escaped validation
    assert _zarr_groups(root) == set(validated), (sorted(_zarr_groups(root)), sorted(validated))
    return validated


def _levels(model: Any) -> int:
    return len(model.ome_attributes.multiscales[0].datasets)


def _image(axes: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return RNG.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(max(info.min, 0), min(info.max, 1000), shape).astype(dtype)


def _labels_for(axes: str, shape: tuple[int, ...]) -> np.ndarray:
    lshape = tuple(n for a, n in zip(axes, shape, strict=True) if a != "c")
    return RNG.integers(0, 5, lshape).astype(np.uint32)


def _channels(axes: str, shape: tuple[int, ...]) -> tuple[Channel, ...]:
    n = shape[axes.index("c")] if "c" in axes else 1
    colours = ("0000FF", "00FF00", "FF0000")
    return tuple(Channel(f"ch{i}", colours[i % 3], (0.0, 500.0), i == 0) for i in range(n))


# --- images ----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("axes", "shape", "dtype", "levels", "units"), IMAGES, ids=IMAGE_IDS)
def test_images_are_valid(
    tmp_path: Path, version: str, axes: str, shape: tuple, dtype: Any, levels: int, units: Any
) -> None:
    data = _image(axes, shape, dtype)
    scale = tuple(0.5 if a in "yx" else 1.0 for a in axes)
    plain = write_image(
        tmp_path / "plain.ome.zarr",
        data,
        axes,
        n_levels=levels,
        ngff_version=version,
        scale=scale,
        units=units,
    )
    assert _levels(validate_store(plain, version)[""]) == levels
    with_channels = write_image(
        tmp_path / "channels.ome.zarr",
        data,
        axes,
        channels=_channels(axes, shape),
        n_levels=levels,
        ngff_version=version,
        chunks=tuple(1 if a in "tc" else 8 for a in axes),
    )
    model = validate_store(with_channels, version)[""]
    # ome-zarr-models checks the "omero" block of NGFF 0.4; in 0.5 it is transitional, kept as is
    omero = model.ome_attributes.omero
    labels = (
        [c["label"] for c in omero["channels"]]
        if isinstance(omero, dict)
        else [c.label for c in omero.channels]
    )
    assert labels == [c.name for c in _channels(axes, shape)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("axes", "shape", "dtype", "levels", "units"), IMAGES, ids=IMAGE_IDS)
def test_images_with_labels_are_valid(
    tmp_path: Path, version: str, axes: str, shape: tuple, dtype: Any, levels: int, units: Any
) -> None:
    data = _image(axes, shape, dtype)
    # written together, in one atomic step
    both = write_image_with_labels(
        tmp_path / "both.ome.zarr",
        data,
        axes,
        {"cells": _labels_for(axes, shape), "nuclei": _labels_for(axes, shape) > 2},
        n_levels=levels,
        ngff_version=version,
        units=units,
        label_colors={"cells": {1: (255, 0, 0, 255), 2: (0, 255, 0, 128)}},
    )
    found = validate_store(both, version)
    assert sorted(found) == ["", "labels", "labels/cells", "labels/nuclei"]
    assert all(_levels(found[f"labels/{n}"]) == levels for n in ("cells", "nuclei"))
    # added later to an existing image: the labels group is created, then extended
    image = write_image(
        tmp_path / "image.ome.zarr", data, axes, n_levels=levels, ngff_version=version
    )
    write_labels(
        image,
        _labels_for(axes, shape),
        "first",
        colors={1: (1, 2, 3, 255)},
        properties={1: {"class": "nucleus", "score": 0.5}},
    )
    assert sorted(validate_store(image, version)) == ["", "labels", "labels/first"]
    write_labels(image, _labels_for(axes, shape).astype(np.int64), "second")
    write_labels(image, _labels_for(axes, shape), "second", overwrite=True)
    found = validate_store(image, version)
    assert sorted(found) == ["", "labels", "labels/first", "labels/second"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("axes", "shape", "levels"),
    [("yx", (20, 18), 1), ("yx", (33, 30), 3), ("zyx", (4, 16, 16), 2), ("tzyx", (2, 3, 9, 9), 2)],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64, bool])
def test_label_images_are_valid(
    tmp_path: Path, version: str, axes: str, shape: tuple, levels: int, dtype: Any
) -> None:
    labels = RNG.integers(0, 3, shape).astype(dtype)
    dest = write_label_image(
        tmp_path / "seg.ome.zarr",
        labels,
        axes,
        n_levels=levels,
        ngff_version=version,
        colors={1: (10, 20, 30, 255)},
        properties={1: {"area": 3}},
    )
    found = validate_store(dest, version)
    assert isinstance(found[""], MODELS[version].ImageLabel) and _levels(found[""]) == levels


# --- what the rest of napari-fbias writes with it --------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_the_stores_of_fbias_run_are_valid(tmp_path: Path, version: str) -> None:
    pipeline = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "stores",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {"id": "smooth", "op": "preprocess.gaussian", "inputs": {"image": "image"}},
                {"id": "nuclei", "op": "segment.nuclei", "inputs": {"image": "smooth"}},
            ],
            "outputs": {"smooth": {"from": "smooth"}, "nuclei": {"from": "nuclei"}},
        }
    )
    from napari_fbias.io.open import open_image

    results = run_pipeline(pipeline, open_image(sample_path("nuclei_2d")))
    files = write_results(results, tmp_path, name="nuclei_2d", ngff_version=version)
    stores = {f["path"].split("/")[0] for f in files.values() if ".ome.zarr" in f["path"]}
    assert stores == {"result.ome.zarr", "smooth.ome.zarr"}
    found = validate_store(tmp_path / "result.ome.zarr", version)
    assert sorted(found) == ["", "labels", "labels/nuclei"]
    validate_store(tmp_path / "smooth.ome.zarr", version)


def test_the_napari_writer_and_the_shipped_sample_are_valid(tmp_path: Path) -> None:
    labels = RNG.integers(0, 4, (16, 16)).astype(np.uint16)
    meta = {"name": "my cells", "scale": (0.5, 0.5), "units": ("micrometer", "micrometer")}
    (new,) = write_labels_layer(str(tmp_path / "new.ome.zarr"), labels, meta)
    validate_store(new, "0.4")
    image = write_image(tmp_path / "img.ome.zarr", labels.astype(np.uint8), "yx", n_levels=2)
    write_labels_layer(image, labels, meta)
    assert sorted(validate_store(image, "0.4")) == ["", "labels", "labels/my_cells"]
    # the multiscale sample (scripts/make_sample_data.py writes it with this writer)
    sample = sample_path("nuclei_multiscale")
    version = read_ome_zarr(sample).metadata["ngff_version"]
    found = validate_store(sample, version)
    assert _levels(found[""]) > 1 and "labels/ground_truth" in found
