"""Faults: a batch runner killed with SIGKILL resumes, a dask worker killed mid-batch loses nothing.

* ``fbias run`` (a real subprocess, serial, and with 2 local workers) is
  killed with SIGKILL as soon as its first result folder is complete; the
  same command run again finishes the batch: the finished inputs are not
  recomputed (their ``run.json`` is untouched), nothing half-written is ever
  visible as a result, no temporary folder is left, and every result equals
  a clean run's.
* A dask worker *process* is killed from outside (SIGKILL) while it works on
  an input of a batch on a ``LocalCluster``: dask reruns the input elsewhere
  and every result is present once and identical to a serial run.
  (``test_batch_dask.py`` has the complementary case of a worker that exits
  by itself.)

A recording napari session killed with SIGKILL and recovered from its
journal is covered by ``test_session_journal.py::test_sigkill_loses_nothing_acknowledged``
(the recorder in a plain process) and ``qt/test_session_crash.py`` (a real
napari viewer), so it is not repeated here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import pipeline_testops as testops
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch

PIPELINE = {
    "fbias_pipeline": 1,
    "name": "nuclei",
    "inputs": {"image": {"kind": "image"}},
    "steps": [
        {"id": "nuclei", "op": "segment.nuclei", "inputs": {"image": "image"}},
        {"id": "props", "op": "measure.regionprops", "inputs": {"labels": "nuclei"}},
    ],
    "outputs": {"nuclei": {"from": "nuclei"}, "props": {"from": "props"}},
}
N_INPUTS = 6


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(N_INPUTS):
        tifffile.imwrite(folder / f"img{i}.tif", testops.make_blobs((320, 320), n=40, seed=i))
    return folder


def results(out: Path) -> dict[str, np.ndarray]:
    """Labels of every visible result folder (each must be complete)."""
    got = {}
    for folder in sorted(out.iterdir()):
        if folder.name.startswith("."):
            continue
        record = json.loads((folder / "run.json").read_text())  # complete: run.json last
        assert record["batch"]["stem"] == folder.name
        got[folder.name] = read_ome_zarr(folder / "result.ome.zarr").labels["nuclei"].data
        got[folder.name] = np.asarray(got[folder.name].compute())
        assert (folder / "props.csv").is_file()
    return got


def complete(out: Path) -> list[str]:
    if not out.exists():
        return []
    return sorted(
        p.name for p in out.iterdir() if not p.name.startswith(".") and (p / "run.json").is_file()
    )


def fbias(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_fbias.cli", *args]


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_killed_batch_resumes_without_recomputing_or_half_results(
    data: Path, tmp_path: Path, workers: int
) -> None:
    pipeline_file = Pipeline.from_dict(PIPELINE).dump(tmp_path / "nuclei.fbias.yaml")
    out = tmp_path / "out"
    cmd = fbias("run", str(pipeline_file), str(data), "-o", str(out), "--workers", str(workers))
    # its own process group, so that the dask workers (its children) die with it
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while not complete(out):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no result after 5 minutes"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done_before = complete(out)
    assert 1 <= len(done_before) < N_INPUTS, "the kill came too late to test anything"
    visible = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    assert sorted(visible) == done_before  # nothing half-written is visible as a result
    stamps = {s: (out / s / "run.json").stat().st_mtime_ns for s in done_before}
    records = {s: (out / s / "run.json").read_bytes() for s in done_before}

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{len(done_before)} skipped" in again.stdout, again.stdout
    assert f"{N_INPUTS - len(done_before)} done" in again.stdout, again.stdout
    for s in done_before:  # not recomputed
        assert (out / s / "run.json").stat().st_mtime_ns == stamps[s]
        assert (out / s / "run.json").read_bytes() == records[s]
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}" for i in range(N_INPUTS)]

    reference = tmp_path / "reference"
    assert run_batch(Pipeline.from_dict(PIPELINE), data, reference).ok
    expected, got = results(reference), results(out)
    assert expected.keys() == got.keys()
    for stem in expected:
        np.testing.assert_array_equal(got[stem], expected[stem], err_msg=stem)


# --- a dask worker process killed from outside ---------------------------------------------

SLOW_OPS = textwrap.dedent(
    '''
    """A test op that announces itself (pid in a file) and takes its time."""
    import os
    import time

    import numpy as np

    from napari_fbias.ops.registry import register_op
    from napari_fbias.ops.types import Image


    @register_op("faults.announce", category="testing")
    def announce(image: Image, *, folder: str = "", seconds: float = 1.0) -> Image:
        """Write <folder>/<pid>-<n> then sleep: gives the test time to kill this worker."""
        stamp = os.path.join(folder, f"{os.getpid()}-{time.monotonic_ns()}")
        with open(stamp, "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(seconds)
        return np.asarray(image)
    '''
)


@pytest.mark.slow
def test_worker_killed_from_outside_loses_and_duplicates_nothing(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fbias_fault_ops.py").write_text(SLOW_OPS)
    dist = site / "fbias_fault_ops-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fbias-fault-ops\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[napari_fbias.ops]\nfaults = fbias_fault_ops\n")
    monkeypatch.syspath_prepend(str(site))  # worker processes start with this sys.path
    import importlib

    importlib.import_module("fbias_fault_ops")  # registered here too, for validation
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    doc = json.loads(json.dumps(PIPELINE))
    doc["steps"].insert(
        0,
        {
            "id": "slow",
            "op": "faults.announce",
            "inputs": {"image": "image"},
            "params": {"folder": str(stamps), "seconds": 2.0},
        },
    )
    doc["steps"][1]["inputs"] = {"image": "slow"}
    pipeline = Pipeline.from_dict(doc)
    out = tmp_path / "out"
    report: list = []
    runner = threading.Thread(
        target=lambda: report.append(
            run_batch(pipeline, data, out, scheduler="local", n_workers=2, processes=True)
        ),
        daemon=True,
    )
    runner.start()
    deadline = time.monotonic() + 300
    while not any(stamps.iterdir()):
        assert runner.is_alive() and time.monotonic() < deadline, "no input started"
        time.sleep(0.01)
    victim = int(next(stamps.iterdir()).read_text())
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)  # a worker dies in the middle of an input
    runner.join(timeout=600)
    assert not runner.is_alive(), "the batch did not finish"
    (rep,) = report
    assert rep.ok, [(i.stem, i.message) for i in rep.items]
    assert [i.stem for i in rep.items] == [f"img{i}" for i in range(N_INPUTS)]
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}" for i in range(N_INPUTS)]
    pids = {int(p.read_text()) for p in stamps.iterdir()}
    assert victim in pids and len(pids) >= 2  # the killed worker's input ran again elsewhere
    assert len(list(stamps.iterdir())) >= N_INPUTS + 1

    reference = tmp_path / "reference"
    assert run_batch(Pipeline.from_dict(PIPELINE), data, reference).ok
    expected, got = results(reference), results(out)
    for stem in expected:
        np.testing.assert_array_equal(got[stem], expected[stem], err_msg=stem)
