"""Batches on dask.distributed give bit-identical results to the in-process run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

import pipeline_testops as testops
from napari_fbias.pipeline import BatchError, Pipeline, batch_cluster
from napari_fbias.pipeline.batch import run_batch

PIPELINE = testops.classical_pipeline()
VOLATILE = {"started", "finished", "seconds", "steps"}


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"img{i}.tif", testops.make_blobs((40, 44), seed=i))
    return folder


def digest(out: Path) -> dict[str, object]:
    """Every result file's sha256, and run.json without its times."""
    files: dict[str, object] = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        key = str(p.relative_to(out))
        if p.name == "run.json":
            rec = json.loads(p.read_text())
            files[key] = {k: v for k, v in rec.items() if k not in VOLATILE}
            files[key + ":steps"] = [(s["id"], s["params"]) for s in rec["steps"]]
        else:
            files[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


def test_local_cluster_threads_bit_identical_to_in_process(data, tmp_path):
    p = Pipeline.from_dict(PIPELINE)
    here = run_batch(p, data, tmp_path / "here")
    seen = []
    there = run_batch(
        p,
        data,
        tmp_path / "there",
        scheduler="local",
        n_workers=2,
        processes=False,
        progress=lambda *a: seen.append(a),
    )
    assert here.ok and there.ok
    assert [i.stem for i in there.items] == ["img0", "img1", "img2"]
    assert sorted(s[0] for s in seen) == [1, 2, 3]
    assert digest(tmp_path / "here") == digest(tmp_path / "there")
    again = run_batch(p, data, tmp_path / "there", scheduler="local", n_workers=2, processes=False)
    assert [i.status for i in again.items] == ["skipped"] * 3


def test_existing_scheduler_by_address(data, tmp_path):
    from distributed import LocalCluster

    p = Pipeline.from_dict(PIPELINE)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        report = run_batch(
            p, data / "img1.tif", tmp_path / "out", scheduler=cluster.scheduler_address
        )
    assert report.ok
    expected = p.run(str(data / "img1.tif"))["nuclei"]
    from napari_fbias.io.ome_zarr_read import read_ome_zarr

    got = read_ome_zarr(tmp_path / "out" / "img1" / "result.ome.zarr").labels["nuclei"]
    np.testing.assert_array_equal(got.data.compute(), expected)


def test_a_large_input_runs_on_every_worker_the_small_ones_one_each(data, tmp_path):
    """An input larger than the budget is not one task: its blocks go to all the workers."""
    from distributed import LocalCluster
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Where(SchedulerPlugin):
        def __init__(self):
            self.ran = []

        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "memory" and kwargs.get("worker"):
                self.ran.append((str(key), kwargs["worker"]))

    tifffile.imwrite(data / "large.tif", testops.make_blobs((192, 200), seed=7))
    p = Pipeline.from_dict(PIPELINE)
    budget = 40_000  # large.tif: 76 800 bytes; the others 3 520
    here = run_batch(p, data, tmp_path / "here", memory_limit=budget)
    where = Where()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as c:
        c.scheduler.add_plugin(where)
        seen = []
        there = run_batch(
            p,
            data,
            tmp_path / "there",
            scheduler=c.scheduler_address,
            memory_limit=budget,
            progress=lambda *a: seen.append(a),
        )
    assert here.ok and there.ok, there.items
    assert digest(tmp_path / "here") == digest(tmp_path / "there")
    assert sorted(s[0] for s in seen) == [1, 2, 3, 4]
    large = next(i for i in there.items if i.stem == "large")
    assert "its blocks ran on the cluster's 2 workers" in large.message
    whole = {key.split("-")[1]: w for key, w in where.ran if key.startswith("fbias-img")}
    assert sorted(whole) == ["img0", "img1", "img2"], "each small input is one task"
    assert not any(key.startswith("fbias-large") for key, _ in where.ran)
    blocks = [w for key, w in where.ran if not key.startswith("fbias-img")]
    assert len(blocks) > 20 and len(set(blocks)) == 2, "the large input's blocks ran on both"
    assert json.loads((tmp_path / "there" / "large" / "run.json").read_text())["mode"] == "chunked"


def test_unreachable_scheduler_and_missing_jobqueue(data, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_cluster, "SCHEDULER_TIMEOUT", "1s")
    p = Pipeline.from_dict(PIPELINE)
    with pytest.raises(BatchError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        run_batch(p, data, tmp_path / "out", scheduler="tcp://127.0.0.1:9")
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        with pytest.raises(BatchError, match=r"needs dask-jobqueue.*napari-fbias\[slurm\]"):
            run_batch(p, data, tmp_path / "out", cluster="slurm")


@pytest.mark.slow
def test_local_cluster_processes_bit_identical(data, tmp_path):
    p = Pipeline.from_dict(PIPELINE)
    here = run_batch(p, data, tmp_path / "here")
    there = run_batch(p, data, tmp_path / "there", scheduler="local", n_workers=2, processes=True)
    assert here.ok and there.ok, there.items
    assert digest(tmp_path / "here") == digest(tmp_path / "there")


@pytest.mark.slow
def test_killed_worker_loses_and_duplicates_nothing(data, tmp_path, monkeypatch):
    """A worker process dies in the middle of an input: dask reruns it elsewhere."""
    # make the test ops importable in the worker processes, through an entry point
    site = tmp_path / "site"
    site.mkdir()
    dist = site / "fbias_test_ops-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fbias-test-ops\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[napari_fbias.ops]\ntesting = pipeline_testops\n")
    # worker processes start with this process's sys.path
    monkeypatch.syspath_prepend(str(Path(testops.__file__).parent))
    monkeypatch.syspath_prepend(str(site))
    marker = tmp_path / "died"
    doc = json.loads(json.dumps(PIPELINE))
    doc["steps"].insert(
        0,
        {
            "id": "die",
            "op": "testing.die_once",
            "inputs": {"image": "image"},
            "params": {"marker": str(marker)},
        },
    )
    doc["steps"][1]["inputs"] = {"image": "die"}
    p = Pipeline.from_dict(doc)
    report = run_batch(p, data, tmp_path / "out", scheduler="local", n_workers=2, processes=True)
    assert marker.exists()  # a worker did die
    assert report.ok, report.items
    out = tmp_path / "out"
    assert sorted(x.name for x in out.iterdir()) == ["img0", "img1", "img2"]  # no leftovers
    reference = run_batch(Pipeline.from_dict(PIPELINE), data, tmp_path / "ref")
    assert reference.ok
    a, b = digest(tmp_path / "ref"), digest(out)
    for key in a:
        if not key.endswith("run.json") and not key.endswith(":steps"):
            assert a[key] == b[key], key
