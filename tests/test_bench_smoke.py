"""Every benchmark still runs (``--quick``) and prints well-formed result rows.

A smoke test, not a measurement: each bench runs in a subprocess at its CI
sizes and must exit 0, print the machine line and a markdown table whose
rows each have a number for ours, a ratio where there is a reference, and a
goal verdict. Their own consistency checks (ours and the reference give the
same pixels / labels / tracks) run inside the benches and fail them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
HEADER = "| bench | case | ours | reference | ours / reference | goal | met |"


def run_bench(name: str, *args: str, timeout: int = 600) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def rows(out: str, bench: str) -> list[list[str]]:
    """The table rows of ``bench``, checked for shape and content."""
    assert HEADER in out, out[-2000:]
    assert "<!-- machine: " in out and "nproc=" in out
    found = []
    for line in out.splitlines():
        if not line.startswith("| ") or line == HEADER:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 7, line
        b, case, ours, reference, ratio, goal, met = cells
        assert b == bench and case, line
        assert re.search(r"\d", ours), line
        if reference != "-":
            assert re.fullmatch(r"\d+\.\d\d", ratio), line
        assert met in ("yes", "**no**", "-"), line
        assert (met == "-") == (goal == "-"), line
        found.append(cells)
    assert found, f"no rows for {bench}"
    return found


def test_common_row_format() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from common import Row, fmt_bytes, fmt_seconds
    finally:
        sys.path.remove(str(BENCH))
    row = Row("x", "case", 0.0123, 0.0100, goal="<= 1.0x", met=False, note="n")
    assert row.markdown() == "| x | case (n) | 12.3 ms | 10.0 ms | 1.23 | <= 1.0x | **no** |"
    assert Row("x", "c", 2048.0, unit="B").markdown() == "| x | c | 2.0 KiB | - | - | - | - |"
    assert fmt_seconds(2.5) == "2.50 s" and fmt_seconds(5e-5) == "50 us"
    assert fmt_bytes(3 * 2**30) == "3.0 GiB"


def test_bench_record_quick() -> None:
    got = rows(run_bench("bench_record.py", "--quick"), "record")
    assert any("without fsync" in r[1] for r in got)


def test_bench_track_quick() -> None:
    out = run_bench("bench_track.py", "--quick")
    got = rows(out, "track")
    assert "4000 detections" in got[0][1]


def test_bench_track_ctc() -> None:
    pytest.importorskip("ctc_metrics")
    got = rows(run_bench("bench_track_ctc.py"), "track_ctc")
    scores = {case: float(ours) for _, case, ours, *_ in got}
    assert scores["spots sample, track.track_spots: DET"] >= 0.9
    assert scores["12 dividing cells, track_labels divisions=True: TRA"] == 1.0
    assert any(case.startswith("spots sample, laptrack direct") for case in scores)


def test_bench_export_quick() -> None:
    got = rows(run_bench("bench_export.py", "--quick"), "export")
    assert got[0][5] == "< 2 s"


@pytest.mark.slow
def test_bench_open_quick(tmp_path: Path) -> None:
    out = run_bench("bench_open.py", "--quick", "--data", str(tmp_path))
    cases = [r[1] for r in rows(out, "open")]
    assert "local: first view" in cases
    assert any(c.startswith("HTTP +50 ms/request: first view") for c in cases)
    assert "virtual" in out and "chunks written" in out


@pytest.mark.slow
@pytest.mark.qt
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (xvfb-run)")
def test_bench_open_quick_with_a_viewer(tmp_path: Path) -> None:
    out = run_bench("bench_open.py", "--quick", "--no-http", "--viewer", "--data", str(tmp_path))
    assert any("viewer.open to first drawn pixels" in r[1] for r in rows(out, "open"))


@pytest.mark.slow
def test_bench_segment_quick(tmp_path: Path) -> None:
    out = run_bench("bench_segment.py", "--quick", "--data", str(tmp_path))
    cases = [r[1] for r in rows(out, "segment")]
    assert any("Pipeline.run vs direct" in c for c in cases)
    assert any("2 vs 1 dask workers" in c for c in cases)


@pytest.mark.slow
def test_bench_chunked_memory_quick(tmp_path: Path) -> None:
    out = run_bench("bench_chunked_memory.py", "--quick", "--data", str(tmp_path))
    cases = [r[1] for r in rows(out, "chunked")]
    assert any("peak memory added" in c and "volume" in c for c in cases)
    assert any("vs in memory, same objects" in c for c in cases)


def test_chunked_passes_profiles_each_pass(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from bench_chunked_memory import make_image
    finally:
        sys.path.remove(str(BENCH))
    image = make_image(tmp_path / "img.ome.zarr", (512, 512), (128, 128), "yx")
    out = run_bench(
        "chunked_passes.py", "smooth+threshold+split", str(image), str(image), "--budget", "1MiB"
    )
    lines = [line.split() for line in out.splitlines() if line.strip().endswith("MiB added")]
    names = " ".join(" ".join(w[:-3]) for w in lines)
    assert "renumber_keys" in names and "write after pass" in names and names.endswith("peak")
    assert all(float(w[-3]) > -50 for w in lines)  # RSS added, in MiB


@pytest.mark.slow
def test_bench_nuclei_accuracy_quick() -> None:
    got = rows(run_bench("bench_nuclei_accuracy.py", "--quick", "--timing"), "nuclei accuracy")
    assert got[0][6] == "yes"  # the recipe beats plain otsu, even at smoke sizes


@pytest.mark.slow
def test_bench_cellpose_small() -> None:
    if not (BENCH / "bench_cellpose.py").is_file():
        pytest.skip("bench_cellpose.py is not there")
    out = run_bench(
        "bench_cellpose.py", "--size", "128", "--images", "1", "--repeats", "1", timeout=900
    )
    assert "overhead" in out.lower()


def test_bench_runner_overhead_small() -> None:
    if not (BENCH / "bench_runner_overhead.py").is_file():
        pytest.skip("bench_runner_overhead.py is not there")
    out = run_bench("bench_runner_overhead.py", "--size", "512", "--repeat", "1")
    assert "overhead" in out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # every benchmark at smoke size, one after the other
def test_run_all_quick() -> None:
    proc = subprocess.run(
        ["bash", str(BENCH / "run_all.sh"), "--quick"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "## all results" in out and "Not met:" in out and "Machine: " in out
    combined = out.split("## all results", 1)[1]
    for bench in ("open", "segment", "track", "record", "export"):
        assert f"| {bench} |" in combined, bench


def test_bench_shared_quick() -> None:
    got = rows(run_bench("bench_shared.py", "--quick"), "shared")
    cases = [r[1] for r in got]
    assert any(c.startswith("local folder: recorded on A -> visible on B") for c in cases)
    assert any(c.startswith("S3 +50 ms/request") for c in cases)
    assert any(c.startswith("merge 3 analysts") for c in cases)


def test_bench_record_history_quick() -> None:
    probe = ["git", "-C", str(REPO), "cat-file", "-e", "f8293ee^{commit}"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("needs the git history (the single-writer recorder of commit f8293ee^)")
    got = rows(run_bench("bench_record_history.py", "--quick"), "record_history")
    assert len(got) == 6  # new step, rerun, note; with and without fsync


def test_bench_tune_quick() -> None:
    pytest.importorskip("optuna")
    out = run_bench("bench_tune.py", "--quick", "--no-real")
    assert "| small nuclei r 3-5 px, 256x256 |" in out and "anisotropic 3D" in out
