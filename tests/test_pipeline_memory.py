"""The runner keeps within its memory budget: per-step estimates, freed intermediates.

* A threshold on a 64 MB uint8 image needs about ten times its input in
  memory; under a 320 MB budget the step runs chunk-wise and the whole batch
  (open, checksum, run, write) stays under the budget.
* A long chain of steps holds only what later steps still need.
* A step that fits neither in memory nor chunk-wise is refused before it runs.
* The memory each built-in operation declares covers what it uses.

Peaks are :mod:`tracemalloc` peaks (numpy buffers included), measured in
child processes with a capped address space (``helpers.capped``).
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from scipy import ndimage as ndi

import pipeline_testops as testops
from helpers.capped import fbias_capped, run_capped, traced_peak
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline

THRESHOLD = {
    "fbias_pipeline": 1,
    "name": "threshold",
    "inputs": {"image": {"kind": "image"}},
    "steps": [
        {
            "id": "nuclei",
            "op": "segment.threshold",
            "inputs": {"image": "image"},
            "params": {"method": "otsu"},
        }
    ],
    "outputs": {"nuclei": {"from": "nuclei"}},
}
BUDGET = 320_000_000


@pytest.fixture(scope="module")
def big_uint8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 MB uint8 TIFF (8192 x 8192): blobs tiled 16 x 16."""
    tile = testops.make_blobs((512, 512), n=20, seed=1).astype(np.float64)
    tile = (tile / tile.max() * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("big") / "big.tif"
    tifffile.imwrite(path, np.tile(tile, (16, 16)))
    return path


BATCH = """\
from napari_fbias.pipeline.batch import run_batch
report = run_batch(sys.argv[1], sys.argv[2], sys.argv[3], memory_limit=int(sys.argv[4]))
print("REPORT", report.summary(), [i.message for i in report.items])
"""


def test_threshold_on_uint8_stays_within_the_memory_budget(tmp_path: Path, big_uint8: Path) -> None:
    pipeline = tmp_path / "t.fbias.yaml"
    pipeline.write_text(yaml.safe_dump(THRESHOLD))
    out = tmp_path / "out"
    args = (str(pipeline), str(big_uint8), str(out), str(BUDGET))
    proc = run_capped(BATCH, *args, trace=True, timeout=600)
    assert "REPORT 1 done" in proc.stdout, proc.stdout + proc.stderr
    peak = traced_peak(proc)
    assert peak < BUDGET, f"peak {peak / 1e6:.0f} MB over a {BUDGET / 1e6:.0f} MB budget"
    record = json.loads((out / "big" / "run.json").read_text())
    assert record["mode"] == "chunked"
    assert [s["mode"] for s in record["steps"]] == ["chunked"]


CHAIN = """\
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline
import numpy as np
n = int(sys.argv[1])
steps = [
    {"id": f"s{i}", "op": "preprocess.gaussian", "inputs": {"image": f"s{i - 1}" if i else "image"},
     "params": {"sigma": 0.5}}
    for i in range(n)
]
p = Pipeline(name="chain", inputs={"image": {"kind": "image"}}, steps=steps,
             outputs={"last": f"s{n - 1}"})
img = np.random.default_rng(0).random((512, 512), dtype=np.float32)
res = run_pipeline(p, img, checksum=False)
print("LAST", res["last"].dtype, res["last"].shape)
"""


def test_long_chain_lets_go_of_intermediates() -> None:
    proc = run_capped(CHAIN, "300", trace=True, timeout=600)
    assert "LAST float32 (512, 512)" in proc.stdout, proc.stdout + proc.stderr
    peak = traced_peak(proc)  # each intermediate is 1 MB: 300 MB if all were kept
    assert peak < 30e6, f"peak {peak / 1e6:.0f} MB"


def test_step_that_fits_neither_way_is_refused_before_it_runs() -> None:
    from napari_fbias.pipeline.errors import MemoryLimitError

    testops.CONTEXT_CALLS.clear()
    img = testops.make_blobs((256, 256), seed=1)
    p = Pipeline(
        name="m",
        inputs={"image": {"kind": "image"}},
        steps=[{"id": "ctx", "op": "testing.context", "inputs": {"image": "image"}}],
        outputs={"t": "ctx"},
    )
    with pytest.raises(MemoryLimitError, match=r"step 'ctx' \(testing.context\) cannot run chunk"):
        run_pipeline(p, img, memory_limit=1_000_000)
    assert testops.CONTEXT_CALLS == []
    assert len(run_pipeline(p, img, memory_limit=10**9)["t"]) == 1


def test_fbias_run_memory_option_refuses_clearly(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "img.tif", testops.make_blobs((256, 256), seed=2))
    # segment.nuclei runs chunk-wise over the budget, and the run says so
    doc = dict(THRESHOLD, steps=[dict(THRESHOLD["steps"][0], op="segment.nuclei", params={})])
    (tmp_path / "n.fbias.yaml").write_text(yaml.safe_dump(doc))
    args = ["run", str(tmp_path / "n.fbias.yaml"), str(tmp_path / "img.tif")]
    proc = fbias_capped(*args, "-o", str(tmp_path / "n"), "--memory", "1MB")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "img: ran chunk-wise (larger than --memory): nuclei (segment.nuclei)" in proc.stdout
    # an operation with no chunk-wise strategy is refused, clearly
    local = dict(THRESHOLD["steps"][0], op="segment.local_threshold", params={})
    (tmp_path / "l.fbias.yaml").write_text(yaml.safe_dump(dict(THRESHOLD, steps=[local])))
    args = ["run", str(tmp_path / "l.fbias.yaml"), str(tmp_path / "img.tif")]
    proc = fbias_capped(*args, "-o", str(tmp_path / "a"), "--memory", "1MB")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "fbias: img: failed: step 'nuclei' (segment.local_threshold) cannot run chunk-wise" in (
        proc.stderr
    )
    assert "more than the memory budget (0.00 GB)" in proc.stderr
    assert "--memory" in proc.stderr
    proc = fbias_capped(*args, "-o", str(tmp_path / "b"), "--memory", "0.5GiB")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = fbias_capped(*args, "-o", str(tmp_path / "c"), "--memory", "lots")
    assert proc.returncode == 2 and "not a memory size" in proc.stderr


# --- declared memory of the built-in operations ------------------------------------------

SKIPPED = {"cellpose.segment"}  # model-bound; tracking ops need movies (declared per movie)


def _inputs(spec, image: np.ndarray, labels: np.ndarray) -> list[object]:
    return [labels if i.kind == "labels" else image for i in spec.inputs]


def _context(spec, ndim: int) -> dict[str, object]:
    out: dict[str, object] = {}
    if "axes" in spec.context:
        out["axes"] = "zyx"[-ndim:]
    if "spacing" in spec.context:
        out["spacing"] = (1.0,) * ndim
    return out


def _traced(func, *args, **kwargs) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        func(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", [(512, 512), (32, 96, 96)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_declared_op_memory_covers_measured_peaks(shape, dtype) -> None:
    from napari_fbias.ops.registry import list_ops
    from napari_fbias.pipeline.memory import FIXED_STEP_BYTES, op_bytes_per_pixel

    base = testops.make_blobs(shape, n=12, seed=3)
    image = (base / base.max() * 200).astype(dtype)
    labels = ndi.label(base > 300)[0].astype(np.int32)  # the blobs, not the noise
    size = int(np.prod(shape))
    over = []
    for spec in list_ops():
        if spec.name in SKIPPED or spec.category in ("testing", "track"):
            continue
        if spec.name in ("preprocess.select", "preprocess.max_projection"):
            continue  # they need a c / z axis; they copy at most their input
        args = _inputs(spec, image, labels)
        kwargs = _context(spec, len(shape))
        spec.func(*args, **kwargs)  # warm up: lazy imports, caches
        peak = _traced(spec.func, *args, **kwargs)
        first = labels if spec.inputs[0].kind == "labels" else image
        declared = op_bytes_per_pixel(spec, first.dtype) * size
        if peak > declared + FIXED_STEP_BYTES:
            over.append(f"{spec.name}: {peak / size:.1f} B/px > {declared / size:.1f} declared")
    assert not over, over


def test_runner_estimate_covers_a_looped_step() -> None:
    """A spatial op looped over time: one frame's work plus the stacked output."""
    from napari_fbias.ops.registry import get_op
    from napari_fbias.pipeline.memory import step_bytes
    from napari_fbias.pipeline.model import Step
    from napari_fbias.pipeline.runner import apply_step
    from napari_fbias.pipeline.values import Value

    movie = np.stack([testops.make_blobs((128, 128), seed=s) for s in range(20)])
    spec = get_op("segment.threshold")
    step = Step(id="t", op=spec.name, inputs={"image": "image"}, params={})
    args = [Value(movie, "image", "tyx")]
    apply_step(spec, step, args)  # warm up
    peak = _traced(apply_step, spec, step, args)
    assert peak <= step_bytes(spec, args)
    assert peak < 2 * movie.size * 4  # the int32 output once, not a list and a stacked copy
