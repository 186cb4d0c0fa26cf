"""The Pipeline value: construction, plain data, files, hashing, provenance."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest

from napari_fbias.io.errors import OutputExistsError
from napari_fbias.pipeline import InputDecl, OutputDecl, Pipeline, Step
from napari_fbias.pipeline.provenance import array_sha256, make_provenance, package_versions


def make_pipeline(**changes):
    kwargs = dict(
        name="nuclei-classical",
        inputs={"image": {"kind": "image", "channel": 0}},
        steps=[
            Step("smooth", "preprocess.gaussian", {"image": "image"}, {"sigma": 2}),
            {
                "id": "nuclei",
                "op": "segment.threshold",
                "inputs": {"image": "smooth"},
                "params": {"method": "otsu"},
            },
        ],
        outputs={"nuclei": "nuclei"},
        description="Smooth then threshold.",
    )
    kwargs.update(changes)
    return Pipeline(**kwargs)


def test_constructor_accepts_plain_data_and_is_immutable():
    p = make_pipeline()
    assert p.inputs["image"] == InputDecl(kind="image", channel=0)
    assert p.outputs["nuclei"] == OutputDecl("nuclei")
    assert [s.id for s in p.steps] == ["smooth", "nuclei"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.steps[0].params["sigma"] = 3  # type: ignore[index]
    assert hash(p) == hash(make_pipeline())


def test_to_dict_from_dict_round_trip_and_coercion():
    p = make_pipeline()
    d = p.to_dict()
    assert list(d)[:2] == ["fbias_pipeline", "name"]
    assert d["fbias_pipeline"] == 1
    assert d["outputs"] == {"nuclei": {"from": "nuclei"}}
    q = Pipeline.from_dict(d)
    # sigma is a float setting: the whole number 2 becomes 2.0
    assert q.step("smooth").params["sigma"] == 2.0
    assert isinstance(q.step("smooth").params["sigma"], float)
    assert Pipeline.from_dict(q.to_dict()) == q


def test_dump_and_load_round_trip_atomic_and_no_overwrite(tmp_path):
    p = make_pipeline().validated().with_provenance(author="Ada Lovelace <ada@example.org>")
    path = tmp_path / "nuclei.fbias.yaml"
    p.dump(path)
    assert path.read_text().startswith("fbias_pipeline: 1\n")
    assert not [f for f in tmp_path.iterdir() if f.name != path.name]  # no temporary left
    q = Pipeline.load(path)
    assert q == p
    assert q.provenance["author"] == "Ada Lovelace"
    with pytest.raises(OutputExistsError):
        p.dump(path)
    before = path.read_text()
    make_pipeline(name="changed").dump(path, overwrite=True)
    assert path.read_text() != before


def test_sha256_ignores_provenance_and_sees_params():
    p = make_pipeline().validated()
    assert re.fullmatch(r"[0-9a-f]{64}", p.sha256())
    assert p.with_provenance(author="X").sha256() == p.sha256()
    assert hashlib.sha256(p.canonical_json().encode()).hexdigest() == p.sha256()
    changed = Pipeline.from_dict(
        {
            **p.to_dict(),
            "steps": [{**p.steps[0].to_dict(), "params": {"sigma": 2.5}}, p.steps[1].to_dict()],
        }
    )
    assert changed.sha256() != p.sha256()
    # 2 and 2.0 are the same setting once validated
    assert (
        make_pipeline().validated().sha256()
        == Pipeline.from_dict(json.loads(json.dumps(p.to_dict()))).sha256()
    )


def test_provenance_contents():
    prov = make_provenance(author="Grace Hopper", source={"session": "s1"})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["created"])
    assert prov["napari_fbias"] == "0.1.0"
    assert prov["packages"]["numpy"] == np.__version__
    for name in ("scikit-image", "dask", "zarr", "trackpy", "cellpose", "python"):
        assert name in prov["packages"]
    assert prov["source"] == {"session": "s1"}
    assert package_versions(("surely-not-installed-pkg",))["surely-not-installed-pkg"] is None


def test_array_checksum_is_the_sha256_of_the_pixels_whatever_the_chunks():
    import dask.array as da

    arr = np.arange(7 * 11 * 13, dtype=">u2").reshape(7, 11, 13)
    expected = hashlib.sha256(arr.astype("<u2").tobytes()).hexdigest()
    assert array_sha256(arr) == expected
    assert array_sha256(da.from_array(arr, chunks=(2, 5, 4)), block_bytes=100) == expected
    assert array_sha256(arr, block_bytes=30) == expected  # slabs smaller than one row
    other = arr.copy()
    other[3, 4, 5] += 1
    assert array_sha256(other) != expected
