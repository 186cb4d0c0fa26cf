"""A chunk-wise step's result that a later step reads is computed once, stored on scratch disk."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import napari_fbias.pipeline.chunked as chunked_mod
from helpers.cluster import local_client
from helpers.delivered import PIPELINES
from napari_fbias.io.scratch import SCRATCH_ENV, is_local_address
from napari_fbias.io.synth import make_nuclei_2d
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.checkpoint import checkpoint_possible
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.runner import run_pipeline

WATERSHED = PIPELINES["smooth+threshold+split"]
NUCLEI_MEASURE = PIPELINES["nuclei+measure"]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_nuclei_2d((256, 256), 12, 11)[0]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    monkeypatch.setenv(SCRATCH_ENV, str(folder))
    return folder


@pytest.fixture
def op_calls(monkeypatch):
    """Count the calls of each operation on a block (and on chunk-wise probes)."""
    calls: dict[str, int] = {}
    real = chunked_mod.call_op

    def counting(spec, step, *args, **kwargs):
        calls[step.op] = calls.get(step.op, 0) + 1
        return real(spec, step, *args, **kwargs)

    monkeypatch.setattr(chunked_mod, "call_op", counting)
    return calls


def _checkpoints(folder) -> list:
    return sorted(folder.glob("fbias-scratch-*")) if folder.exists() else []


def _same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_a_result_read_later_is_computed_once(image, scratch, op_calls):
    pipe = Pipeline.from_dict(WATERSHED)
    res = run_pipeline(pipe, image, chunked=True, chunks=64, checksum=False)
    n_blocks = 16
    # the gaussian: one probe block, then each block once (the checkpoint's write);
    # read again by the threshold's two passes and the split's halos without the checkpoint
    assert op_calls["preprocess.gaussian"] == n_blocks + 1
    assert op_calls["segment.threshold"] == 2 * n_blocks  # its statistics pass, then the write
    assert op_calls["segment.watershed_split"] == n_blocks  # its keys, stored, then renumbered
    expected = run_pipeline(pipe, image, chunked=False, checksum=False)["split"]
    assert _same_objects(np.asarray(res["split"]), expected)
    assert [s["mode"] for s in res.record["steps"]] == ["chunked"] * 3


def test_the_scratch_folder_lives_as_long_as_the_results(image, scratch):
    pipe = Pipeline.from_dict(WATERSHED)
    res = run_pipeline(pipe, image, chunked=True, chunks=64, checksum=False)
    # the smoothed image is let go after the threshold; the mask (read by the lazy split)
    # and the split's object keys (read by its lazy renumbering) stay
    assert len(_checkpoints(scratch)) == 2
    labels = np.asarray(res["split"])
    assert labels.max() > 0
    del res
    gc.collect()
    assert _checkpoints(scratch) == []


def test_outputs_that_no_step_reads_are_not_stored(image, scratch):
    one = {**WATERSHED, "steps": WATERSHED["steps"][:1], "outputs": {"s": {"from": "smooth"}}}
    res = run_pipeline(Pipeline.from_dict(one), image, chunked=True, chunks=64, checksum=False)
    assert _checkpoints(scratch) == []
    assert res.value("s").is_lazy


def test_an_unwritable_scratch_folder_is_a_clear_error(image, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(SCRATCH_ENV, str(blocker / "scratch"))
    with pytest.raises(StepError, match=r"step 'smooth' .*FBIAS_SCRATCH"):
        run_pipeline(Pipeline.from_dict(WATERSHED), image, chunked=True, chunks=64, checksum=False)
    assert blocker.read_text() == "not a folder"


def test_in_memory_runs_store_nothing(image, scratch):
    run_pipeline(Pipeline.from_dict(WATERSHED), image, chunked=False, checksum=False)
    assert _checkpoints(scratch) == []


def test_worker_addresses_on_this_machine():
    assert is_local_address("tcp://127.0.0.1:40000")
    assert is_local_address("inproc://10.0.0.1/123/1")
    assert not is_local_address("tcp://10.255.1.2:8786")
    assert checkpoint_possible()  # dask's local scheduler


def test_nuclei_then_measure_on_a_local_cluster(image, monkeypatch, tmp_path):
    """Worker processes read the checkpoint the client wrote (its path, pickled)."""
    monkeypatch.delenv(SCRATCH_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    pipe = Pipeline.from_dict(NUCLEI_MEASURE)
    expected = run_pipeline(pipe, image, chunked=False, checksum=False)
    with local_client():
        assert checkpoint_possible()
        res = run_pipeline(pipe, image, chunked=True, chunks=64, checksum=False)
        assert _reads_scratch(res.feeds["table"]["labels"].data)
        nuclei = np.asarray(res["nuclei"])
    assert _same_objects(nuclei, expected["nuclei"])
    assert len(res["table"]) == len(expected["table"])
    np.testing.assert_allclose(
        np.sort(res["table"]["area"].to_numpy()), np.sort(expected["table"]["area"].to_numpy())
    )


def _reads_scratch(data) -> bool:
    names = {str(k[0] if isinstance(k, tuple) else k) for k in data.dask}
    return any(n.startswith("fbias-scratch") for n in names)


def test_an_input_that_fits_with_steps_that_do_not(image, scratch):
    """The input is held in memory; steps too big for the budget still run, and store, once."""
    pipe = Pipeline.from_dict(WATERSHED)
    assert image.nbytes < 256 * 1024
    res = run_pipeline(pipe, image, memory_limit=256 * 1024, checksum=False)
    assert res.record["steps"][1]["mode"] == "chunked"
    assert _reads_scratch(res.feeds["split"]["labels"].data)  # the mask the split read
    expected = run_pipeline(pipe, image, chunked=False, checksum=False)["split"]
    assert _same_objects(np.asarray(res["split"]), expected)


def test_a_scratch_write_that_fails_mid_pass_names_the_folder(scratch):
    """A full disk during a keys pass: the error says where, and how to move the scratch."""
    import errno

    from napari_fbias.io.scratch import ScratchArray

    keys = ScratchArray((4, 4), np.int64, (2, 2), "keys")

    class FullDisk:  # stands in for zarr's array on a full disk
        def __setitem__(self, key, value):
            raise OSError(errno.ENOSPC, "No space left on device")

    keys.array = FullDisk()
    with pytest.raises(OSError, match=r"under .*fbias-scratch-keys.*FBIAS_SCRATCH") as info:
        keys[0:2, 0:2] = np.zeros((2, 2), np.int64)
    assert info.value.errno == errno.ENOSPC
