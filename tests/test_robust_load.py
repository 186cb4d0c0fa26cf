"""Load: a batch of 200 small images on a dask LocalCluster equals the serial run, file for file.

Every input gets exactly one complete result folder (no loss, no duplicate,
no leftover temporary folder), in input order in the report, and every
result file is byte-identical to the serial run's (``run.json`` compared
without its timings). A second run on the cluster skips all 200. (About 35 s on a loaded 2-core
machine, so not marked slow.)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import tifffile

import pipeline_testops as testops
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch

N_IMAGES = 200
PIPELINE = testops.classical_pipeline("load")
VOLATILE = {"started", "finished", "seconds"}


def digest(out: Path) -> dict[str, object]:
    """Every result file's sha256; run.json without its times."""
    files: dict[str, object] = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        key = str(p.relative_to(out))
        if p.name == "run.json":
            rec = json.loads(p.read_text())
            rec = {k: v for k, v in rec.items() if k not in VOLATILE}
            rec["steps"] = [(s["id"], s["op"], s["params"]) for s in rec["steps"]]
            files[key] = rec
        else:
            files[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


def test_200_images_on_a_local_cluster_equal_the_serial_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(N_IMAGES):
        tifffile.imwrite(data / f"img{i:03d}.tif", testops.make_blobs((32, 32), n=3, seed=i))
    pipeline = Pipeline.from_dict(PIPELINE)

    t0 = time.perf_counter()
    serial = run_batch(pipeline, data, tmp_path / "serial")
    t_serial = time.perf_counter() - t0
    seen: list[tuple[int, int, str]] = []
    t0 = time.perf_counter()
    parallel = run_batch(
        pipeline,
        data,
        tmp_path / "cluster",
        scheduler="local",
        n_workers=2,
        processes=False,
        progress=lambda *a: seen.append(a),
    )
    t_cluster = time.perf_counter() - t0
    print(f"200 images: serial {t_serial:.1f} s, LocalCluster(2) {t_cluster:.1f} s")

    stems = [f"img{i:03d}" for i in range(N_IMAGES)]
    assert serial.ok and parallel.ok, [i.message for i in parallel.items if i.status != "done"]
    assert [i.stem for i in parallel.items] == stems
    assert [i.status for i in parallel.items] == ["done"] * N_IMAGES
    assert sorted(n for n, _, _ in seen) == list(range(1, N_IMAGES + 1))
    assert sorted(s for _, _, s in seen) == stems  # each input reported once
    assert sorted(p.name for p in (tmp_path / "cluster").iterdir()) == stems  # no leftovers
    expected, got = digest(tmp_path / "serial"), digest(tmp_path / "cluster")
    assert expected.keys() == got.keys()
    different = [k for k in expected if expected[k] != got[k]]
    assert not different, different[:5]

    again = run_batch(
        pipeline, data, tmp_path / "cluster", scheduler="local", n_workers=2, processes=False
    )
    assert [i.status for i in again.items] == ["skipped"] * N_IMAGES
