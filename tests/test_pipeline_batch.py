"""Batch runs: inputs, output layout, run records, resume, failures, never touching inputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import pipeline_testops as testops
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.pipeline import BatchError, Pipeline
from napari_fbias.pipeline import outputs as outputs_mod
from napari_fbias.pipeline.batch import run_batch
from napari_fbias.pipeline.inputs import check_outdir, expand_inputs, stem_of

CLASSICAL = testops.classical_pipeline(measure_image=False)


@pytest.fixture
def pipeline():
    return Pipeline.from_dict(CLASSICAL)


@pytest.fixture
def data(tmp_path):
    """A folder with two TIFFs, one OME-Zarr time-lapse and a file that is not an image."""
    folder = tmp_path / "data"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", testops.make_blobs((48, 40), seed=1))
    tifffile.imwrite(folder / "b.ome.tif", testops.make_blobs((40, 48), seed=2))
    movie = np.stack([testops.make_blobs((32, 36), seed=s) for s in (3, 4)])
    write_image(folder / "c.ome.zarr", movie, "tyx", scale=(1.0, 0.5, 0.5))
    (folder / "notes.txt").write_text("not an image")
    return folder


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- inputs ---------------------------------------------------------------------------------


def test_expand_folder_glob_files_and_urls(data):
    items = expand_inputs(data)
    assert [i.stem for i in items] == ["a", "b", "c"]
    assert all(i.container == str(data.resolve()) for i in items)
    globbed = expand_inputs(str(data / "*.tif"))
    assert [i.stem for i in globbed] == ["a", "b"]
    mixed = expand_inputs(
        [
            data / "a.tif",
            "https://example.org/x/img.ome.zarr",
            "omero://server.org/Image:42",
            data / "c.ome.zarr",
        ]
    )
    assert [i.stem for i in mixed] == ["a", "img", "Image-42", "c"]
    assert mixed[1].is_remote and mixed[3].container == str((data / "c.ome.zarr").resolve())


def test_same_names_get_unique_stems(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        tifffile.imwrite(tmp_path / sub / "img.tif", np.zeros((4, 4), np.uint8))
    items = expand_inputs([tmp_path / "x", tmp_path / "y" / "img.tif", tmp_path / "x"])
    assert [i.stem for i in items] == ["img", "img-2"]
    assert stem_of("/data/My Image (1).ome.zarr/") == "My-Image-1"


def test_bad_inputs(tmp_path, data):
    with pytest.raises(BatchError, match="not found"):
        expand_inputs(tmp_path / "missing.tif")
    with pytest.raises(BatchError, match="holds no TIFF files or OME-Zarr images"):
        (tmp_path / "empty").mkdir()
        expand_inputs(tmp_path / "empty")
    with pytest.raises(BatchError, match="no TIFF or OME-Zarr images match"):
        expand_inputs(str(tmp_path / "*.png"))
    with pytest.raises(BatchError, match="not an image this tool reads"):
        expand_inputs(data / "notes.txt")
    with pytest.raises(BatchError, match="no inputs"):
        expand_inputs([])


def test_output_folder_inside_an_input_is_refused(data, tmp_path):
    items = expand_inputs(data)
    for bad in (data, data / "results", data / "c.ome.zarr" / "out"):
        with pytest.raises(BatchError, match="is inside the input"):
            check_outdir(bad, items)
    assert check_outdir(tmp_path / "results", items) == (tmp_path / "results").resolve()
    zarr_only = expand_inputs(data / "c.ome.zarr")
    check_outdir(data / "results", zarr_only)  # next to the store is fine
    with pytest.raises(BatchError, match="is inside the input"):
        check_outdir(data / "c.ome.zarr" / "labels", zarr_only)


# --- runs -----------------------------------------------------------------------------------


def test_batch_layout_results_and_run_records(pipeline, data, tmp_path):
    before = tree_digest(data)
    seen = []
    report = run_batch(pipeline, data, tmp_path / "out", progress=lambda *a: seen.append(a))
    assert report.ok and report.summary().startswith("3 done, 0 skipped")
    assert seen == [(1, 3, "a"), (2, 3, "b"), (3, 3, "c")]
    assert tree_digest(data) == before  # inputs untouched
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c"]
    for stem, name in (("a", "a.tif"), ("c", "c.ome.zarr")):
        folder = out / stem
        assert sorted(p.name for p in folder.iterdir()) == [
            "props.csv",
            "result.ome.zarr",
            "run.json",
        ]
        expected = pipeline.run(str(data / name))
        store = read_ome_zarr(folder / "result.ome.zarr")
        np.testing.assert_array_equal(store.data.compute(), expected.inputs["image"].data)
        np.testing.assert_array_equal(store.labels["nuclei"].data.compute(), expected["nuclei"])
        table = pd.read_csv(folder / "props.csv")
        pd.testing.assert_frame_equal(
            table, expected["props"].reset_index(drop=True), check_dtype=False
        )
        record = json.loads((folder / "run.json").read_text())
        assert record["pipeline"]["sha256"] == pipeline.sha256()
        assert record["inputs"]["image"]["sha256"] == expected.record["inputs"]["image"]["sha256"]
        assert record["batch"] == {"source": str((data / name).resolve()), "stem": stem}
        assert record["files"]["nuclei"]["path"] == "result.ome.zarr/labels/nuclei"
        assert record["versions"]["numpy"] == np.__version__
        assert [s["id"] for s in record["steps"]] == ["smooth", "nuclei", "props"]
    assert read_ome_zarr(out / "c" / "result.ome.zarr").scale == (1.0, 0.5, 0.5)
    assert not [p for p in out.rglob(".*tmp-*")]


def test_resume_skips_finished_inputs_and_reruns_changed_ones(pipeline, data, tmp_path):
    out = tmp_path / "out"
    run_batch(pipeline, data, out)
    stamp = {s: (out / s / "run.json").stat().st_mtime_ns for s in "abc"}
    again = run_batch(pipeline, data, out)
    assert [i.status for i in again.items] == ["skipped"] * 3
    assert {s: (out / s / "run.json").stat().st_mtime_ns for s in "abc"} == stamp
    tifffile.imwrite(data / "b.ome.tif", testops.make_blobs((40, 48), seed=99))
    third = run_batch(pipeline, data, out)
    assert [i.status for i in third.items] == ["skipped", "done", "skipped"]
    assert "input changed" in third.items[1].message
    new_labels = read_ome_zarr(out / "b" / "result.ome.zarr").labels["nuclei"].data.compute()
    expected = pipeline.run(str(data / "b.ome.tif"))["nuclei"]
    np.testing.assert_array_equal(new_labels, expected)
    fresh = run_batch(pipeline, data, out, resume=False)
    assert [i.status for i in fresh.items] == ["done"] * 3


def test_other_pipeline_does_not_silently_replace_results(pipeline, data, tmp_path):
    out = tmp_path / "out"
    run_batch(pipeline, data / "a.tif", out)
    before = tree_digest(out)
    other = dict(
        CLASSICAL,
        steps=[dict(CLASSICAL["steps"][0], params={"sigma": 2.0}), *CLASSICAL["steps"][1:]],
    )
    report = run_batch(Pipeline.from_dict(other), data / "a.tif", out)
    assert report.items[0].status == "failed"
    assert "results of a different pipeline" in report.items[0].message
    assert tree_digest(out) == before
    replaced = run_batch(Pipeline.from_dict(other), data / "a.tif", out, resume=False)
    assert replaced.ok and tree_digest(out) != before


def test_interrupted_batch_resumes_without_half_written_results(
    pipeline, data, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    real = outputs_mod.write_run_record
    calls = []

    def crash_on_b(dest, record):
        calls.append(record["batch"]["stem"])
        if record["batch"]["stem"] == "b":
            raise OSError("disk full (simulated)")
        return real(dest, record)

    monkeypatch.setattr(outputs_mod, "write_run_record", crash_on_b)
    report = run_batch(pipeline, data, out)
    assert [i.status for i in report.items] == ["done", "failed", "done"]
    assert "disk full" in report.items[1].message
    assert sorted(p.name for p in out.iterdir()) == ["a", "c"]  # nothing half-written for b
    monkeypatch.setattr(outputs_mod, "write_run_record", real)
    (out / ".b.tmp-leftover").mkdir()  # as left by a killed process
    resumed = run_batch(pipeline, data, out)
    assert [i.status for i in resumed.items] == ["skipped", "done", "skipped"]
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c"]


def test_failing_input_does_not_stop_the_batch(pipeline, data, tmp_path):
    bad = np.full((16, 16), np.nan, dtype=np.float32)
    tifffile.imwrite(data / "0_bad.tif", bad)
    (tmp_path / "out").mkdir()
    report = run_batch(pipeline, data, tmp_path / "out")
    assert [i.status for i in report.items] == ["failed", "done", "done", "done"]
    assert "step 'smooth' (preprocess.gaussian)" in report.items[0].message
    assert "NaN" in report.items[0].message
    assert not (tmp_path / "out" / "0_bad").exists()


def test_foreign_folder_with_same_name_is_left_alone(pipeline, data, tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "mine.txt").write_text("precious")
    report = run_batch(pipeline, data / "a.tif", out, resume=False)
    assert report.items[0].status == "failed"
    assert "is not a napari-fbias result" in report.items[0].message
    assert (out / "a" / "mine.txt").read_text() == "precious"


def test_batch_refuses_bad_setups(pipeline, data, tmp_path):
    with pytest.raises(BatchError, match="inside the input"):
        run_batch(pipeline, data, data / "out")
    assert not (data / "out").exists()
    two = dict(
        CLASSICAL,
        inputs={"image": {"kind": "image"}, "mask": {"kind": "labels"}},
        steps=[
            *CLASSICAL["steps"][:2],
            {
                "id": "props",
                "op": "measure.regionprops",
                "inputs": {"labels": "mask", "image": "smooth"},
            },
        ],
    )
    two["outputs"] = {"nuclei": {"from": "nuclei"}, "props": {"from": "props"}}
    with pytest.raises(BatchError, match="the pipeline has 2 inputs"):
        run_batch(Pipeline.from_dict(two), data, tmp_path / "o")
    from napari_fbias.pipeline import PipelineError

    bad_file = tmp_path / "bad.fbias.yaml"
    bad_file.write_text("fbias_pipeline: 1\nname: x\n")
    with pytest.raises(PipelineError):
        run_batch(bad_file, data, tmp_path / "o")


def test_chunk_wise_batch_streams_identical_results(pipeline, data, tmp_path):
    # measuring runs chunk-wise too, and writes the same table byte for byte
    measured = run_batch(pipeline, data / "c.ome.zarr", tmp_path / "all", memory_limit=0, chunks=8)
    in_memory = run_batch(pipeline, data / "c.ome.zarr", tmp_path / "all_mem")
    assert measured.ok and in_memory.ok
    table = (tmp_path / "all" / "c" / "props.csv").read_bytes()
    assert table == (tmp_path / "all_mem" / "c" / "props.csv").read_bytes()
    labels_only = Pipeline.from_dict(
        dict(CLASSICAL, steps=CLASSICAL["steps"][:2], outputs={"nuclei": {"from": "nuclei"}})
    )
    whole = run_batch(labels_only, data / "c.ome.zarr", tmp_path / "mem")
    chunked = run_batch(
        labels_only, data / "c.ome.zarr", tmp_path / "big", memory_limit=0, chunks=8
    )
    assert whole.ok and chunked.ok
    rec = json.loads((tmp_path / "big" / "c" / "run.json").read_text())
    assert rec["mode"] == "chunked"
    a = read_ome_zarr(tmp_path / "mem" / "c" / "result.ome.zarr").labels["nuclei"]
    b = read_ome_zarr(tmp_path / "big" / "c" / "result.ome.zarr").labels["nuclei"]
    np.testing.assert_array_equal(a.data.compute(), b.data.compute())
    assert a.data.compute().max() > 1


def test_tracks_are_written_as_csv_ctc_and_geff(tmp_path):
    from napari_fbias.io.synth import make_spots_timelapse

    movie, _ = make_spots_timelapse((6, 64, 64), n_spots=5, seed=1)
    write_image(tmp_path / "movie.ome.zarr", movie, "tyx")
    p = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "spots",
            "inputs": {"image": {"kind": "image"}},
            "steps": [{"id": "tracks", "op": "track.track_spots", "inputs": {"image": "image"}}],
            "outputs": {"tracks": {"from": "tracks"}},
        }
    )
    report = run_batch(p, tmp_path / "movie.ome.zarr", tmp_path / "out")
    assert report.ok, report.items
    folder = tmp_path / "out" / "movie"
    tracks = pd.read_csv(folder / "tracks.csv")
    assert list(tracks.columns[:4]) == ["track_id", "t", "y", "x"]
    assert len(tracks) > 0
    ctc = folder / "tracks_ctc"
    assert (ctc / "res_track.txt").is_file()
    assert len(list(ctc.glob("mask*.tif"))) == 6
    record = json.loads((folder / "run.json").read_text())
    assert record["files"]["tracks"] == {
        "kind": "tracks",
        "path": "tracks.csv",
        "ctc": "tracks_ctc",
        "geff": "tracks.geff",
    }
    import geff

    graph, _ = geff.read(folder / "tracks.geff")  # the graph other tracking tools read
    assert graph.number_of_nodes() == len(tracks)
    assert os.path.isdir(folder / "result.ome.zarr")
