"""Progress and Cancel inside a step: dask's finished tasks of this thread's computes."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
import pytest

from napari_fbias.pipeline.block_progress import BlockProgress, ComputeCancelled


def _work() -> da.Array:
    return (da.ones((64, 64), chunks=8) * 2).sum()


def test_reports_the_tasks_of_each_compute_and_its_end():
    seen: list[tuple[int, int]] = []
    with dask.config.set(scheduler="threads"), BlockProgress(lambda d, t: seen.append((d, t))):
        assert int(_work().compute()) == 2 * 64 * 64
        assert int(_work().compute()) == 2 * 64 * 64
    starts = [r for r in seen if r[0] == 0]
    ends = [r for r in seen if r[0] == r[1] and r[1] > 0]
    assert len(starts) == 2 and len(ends) == 2  # one start and one end per compute
    assert ends[0][1] >= 64  # at least the 64 blocks
    assert all(0 <= d <= t for d, t in seen)


def test_computes_of_other_threads_are_not_reported():
    seen: list[tuple[int, int]] = []
    with dask.config.set(scheduler="threads"), BlockProgress(lambda d, t: seen.append((d, t))):
        t = threading.Thread(target=lambda: _work().compute())
        t.start()
        t.join()
    assert seen == []


def test_cancel_stops_the_compute_in_flight_through_an_ops_except_exception():
    cancel = threading.Event()
    cancel.set()

    def op_like() -> None:
        try:
            _work().compute()
        except Exception:  # an op's error handling must not swallow a Cancel
            pytest.fail("ComputeCancelled was caught as an Exception")

    with (
        dask.config.set(scheduler="threads"),
        BlockProgress(lambda d, t: None, cancel=cancel),
        pytest.raises(ComputeCancelled),
    ):
        op_like()


def test_a_chunk_wise_run_reports_its_passes():
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.runner import run_pipeline

    pipe = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "p",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {"id": "mask", "op": "segment.threshold", "inputs": {"image": "image"}},
            ],
            "outputs": {"mask": {"from": "mask"}},
        }
    )
    img = np.random.default_rng(0).integers(0, 1000, (256, 256)).astype(np.uint16)
    seen: list[tuple[int, int]] = []
    with BlockProgress(lambda d, t: seen.append((d, t)), every=0):
        out = run_pipeline(pipe, img, chunked=True, chunks=32, checksum=False)
        np.asarray(out["mask"])
    assert out.record["steps"][0]["mode"] == "chunked"
    assert len([r for r in seen if r[0] == r[1] and r[1] > 0]) >= 3  # range, histogram, labels


def test_the_run_panel_stops_a_step_mid_pass_but_a_batch_finishes_its_image():
    from napari_fbias._qt.run_pipeline.run_model import RunCancelled, run_with_progress

    cancel = threading.Event()
    reports: list[tuple] = []

    def job(progress) -> int:
        cancel.set()  # Cancel pressed while the step's pass is in flight
        return int(_work().compute())

    with dask.config.set(scheduler="threads"), pytest.raises(RunCancelled):
        run_with_progress(job, cancel=cancel, report=reports.append)
    cancel.clear()
    assert run_with_progress(job, cancel=cancel, report=reports.append, mid_step=False) == 8192
    assert any(r[0] == "tasks" for r in reports)
