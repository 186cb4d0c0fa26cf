"""``fbias run --cluster slurm`` on a real one-node SLURM: workers are real ``sbatch`` jobs.

The fixture starts munged, slurmctld and slurmd in a temporary folder
(``tests/helpers/slurm.py``); dask-jobqueue's ``SLURMCluster`` submits the
dask workers with the real ``sbatch``; the results must be bit-identical to
the in-process run. Skipped, saying why, where SLURM cannot run.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import tifffile

import pipeline_testops as testops
from helpers.slurm import SlurmUnavailable, one_node_slurm
from napari_fbias.cli import main
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch
from test_batch_dask import digest

pytest.importorskip("dask_jobqueue")


@pytest.fixture
def slurm(tmp_path_factory):
    # a short path: slurmd's spool and MUNGE's socket must fit in a unix socket name
    folder = Path(tmp_path_factory.mktemp("slurm"))
    try:
        with one_node_slurm(folder) as conf:
            yield conf
    except SlurmUnavailable as exc:
        pytest.skip(f"SLURM cannot run here: {exc}")


@pytest.fixture
def jobqueue(tmp_path, monkeypatch):
    """The dask jobqueue settings an HPC user writes in ~/.config/dask/jobqueue.yaml."""
    import dask

    logs = tmp_path / "slurm-logs"
    settings = {
        "jobqueue.slurm.cores": 1,
        "jobqueue.slurm.processes": 1,
        "jobqueue.slurm.memory": "1GB",
        "jobqueue.slurm.walltime": "00:10:00",
        "jobqueue.slurm.queue": "debug",
        "jobqueue.slurm.local-directory": str(tmp_path / "dask-workers"),
        "jobqueue.slurm.log-directory": str(logs),
        "jobqueue.slurm.death-timeout": 60,
    }
    with dask.config.set(settings):
        yield logs


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"img{i}.tif", testops.make_blobs((40, 44), seed=i))
    return folder


@pytest.mark.timeout(600)
def test_a_batch_runs_in_real_slurm_jobs_bit_identical(slurm, jobqueue, data, tmp_path):
    p = Pipeline.from_dict(testops.classical_pipeline())
    here = run_batch(p, data, tmp_path / "here")
    there = run_batch(p, data, tmp_path / "there", cluster="slurm", n_workers=2)
    assert here.ok and there.ok, [i.message for i in there.items]
    assert digest(tmp_path / "here") == digest(tmp_path / "there")
    # the work was done by dask workers that SLURM started: one log per sbatch job
    outputs = sorted(jobqueue.glob("*.out")) + sorted(jobqueue.glob("*.err"))
    assert outputs, "no SLURM job wrote a log"
    text = "\n".join(o.read_text(errors="replace") for o in outputs)
    assert "distributed.worker" in text or "Start worker" in text, text[-2000:]
    # and fbias cancelled its jobs at the end
    deadline = time.monotonic() + 10
    while (left := subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout).strip():
        assert time.monotonic() < deadline, f"jobs left in the queue:\n{left}"
        time.sleep(0.5)


@pytest.mark.timeout(600)
def test_fbias_run_cluster_slurm(slurm, jobqueue, data, tmp_path, capsys):
    pfile = Pipeline.from_dict(testops.classical_pipeline()).dump(tmp_path / "p.fbias.yaml")
    out = tmp_path / "out"
    code = main(["run", str(pfile), str(data), "-o", str(out), "--cluster", "slurm"])
    assert code == 0, capsys.readouterr()
    assert sorted(d.name for d in out.iterdir() if (d / "run.json").exists()) == [
        "img0",
        "img1",
        "img2",
    ]
