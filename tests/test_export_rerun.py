"""Reproducibility: the exported script, notebook and CLI give the session's results, bit for bit.

The session's layers are computed the way the napari workspace computes them
(the runner's single-step function on the layer data) and recorded; the
bundle is exported; then ``fbias run``, ``python run_pipeline_X.py`` and the
notebook (executed with nbclient) rerun it on the same images, and every
label image must be equal pixel for pixel and every table value for value.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_fbias.cli import main as cli_main
from napari_fbias.demo import HeadlessLayers
from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.io.open import open_image
from napari_fbias.io.samples import load_spots_timelapse, sample_path
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.provenance import array_sha256
from napari_fbias.session import SessionRecorder
from napari_fbias.session.export import export_bundle
from napari_fbias.session.export.verify import compare, compare_folder, read_result


class Delivered:
    def __init__(self, root: Path) -> None:
        self.root = root
        movie, _ = load_spots_timelapse()
        self.movie = root / "movie.ome.zarr"
        write_image(
            self.movie,
            np.asarray(movie.data[:8, :128, :128]),
            "tyx",
            scale=movie.scale,
            units=movie.units,
        )
        self.nuclei = sample_path("nuclei_batch") / "nuclei_02.ome.tif"
        rec = SessionRecorder.start(
            "rerun test", analysts=["Marie", "Jean"], folder=root / "session", fsync=False
        )
        self.layers = layers = HeadlessLayers(rec)
        img_n = open_image(self.nuclei)
        img_m = open_image(self.movie)
        n = layers.add_image(img_n, "sha256:" + array_sha256(img_n.data))
        m = layers.add_image(img_m, "sha256:" + array_sha256(img_m.data))
        rec.add_approach("nuclei recipe", "Marie")
        layers.run("segment.nuclei", {"image": n}, {"min_size": 20}, "A: nuclei")
        layers.run("measure.regionprops", {"labels": "A: nuclei", "image": n}, {}, "A: table")
        rec.add_approach("spots", "Jean")
        layers.run("track.track_spots", {"image": m}, {"memory": 1}, "B: tracks")
        rec.add_approach("per frame", "Jean")  # spatial ops looped over t by the runner
        layers.run("preprocess.gaussian", {"image": m}, {"sigma": 1.5}, "C: smooth")
        layers.run("segment.threshold", {"image": "C: smooth"}, {"min_size": 3}, "C: spots")
        layers.run("measure.regionprops", {"labels": "C: spots", "image": m}, {}, "C: table")
        rec.set_solution("A for nuclei", approach="A")
        rec.save()
        rec.close()
        self.session = rec.session
        self.result = export_bundle(
            rec.folder, root / "bundle", approaches=["A", "B", "C"], figures=False
        )
        self.sources = {"A": self.nuclei, "B": self.movie, "C": self.movie}

    def expected(self, key: str) -> dict[str, object]:
        """Output name -> the session layer it must equal."""
        pipeline = Pipeline.load(self.result.pipelines[key])
        layer_of = {st.id: st.output_layer for _, st in self.session.all_steps()}
        return {
            name: self.layers.values[layer_of[out.source]] for name, out in pipeline.outputs.items()
        }


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Delivered:
    return Delivered(tmp_path_factory.mktemp("rerun"))


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def test_session_layers_are_what_we_expect(delivered: Delivered) -> None:
    exp = delivered.expected("C")
    assert set(exp) == {"C_spots", "C_table"}
    assert exp["C_spots"].axes == "tyx" and exp["C_spots"].data.shape == (8, 128, 128)
    assert "t" in exp["C_table"].data.columns  # looped over time points
    assert set(delivered.expected("A")) == {"A_nuclei", "A_table"}
    assert set(delivered.expected("B")) == {"B_tracks"}


def test_auto_settings_are_recorded_and_delivered_as_auto(delivered: Delivered) -> None:
    """Approach A's nuclei step left smoothing and seed distance on auto: the session
    records what they came to, the pipeline keeps them automatic (re-measured per
    image), and the reruns below still give the session's labels bit for bit."""
    (step,) = [st for _, st in delivered.session.all_steps() if st.op == "segment.nuclei"]
    assert step.params["smoothing_sigma"] is None and step.params["min_distance"] is None
    assert step.params["min_size"] == 20 and "min_size" not in step.chosen
    assert step.chosen["smoothing_sigma"] > 0 and step.chosen["min_distance"] >= 1
    pipeline = Pipeline.load(delivered.result.pipelines["A"])
    (nuclei,) = [st for st in pipeline.steps if st.op == "segment.nuclei"]
    assert nuclei.params["smoothing_sigma"] is None and nuclei.params["min_distance"] is None


@pytest.mark.parametrize("key", ["A", "B", "C"])
def test_cli_reproduces_the_session(delivered: Delivered, key: str, tmp_path: Path) -> None:
    src = delivered.sources[key]
    code = cli_main(["run", str(delivered.result.pipelines[key]), str(src), "-o", str(tmp_path)])
    assert code == 0
    assert compare_folder(delivered.expected(key), tmp_path / _stem(src)) == []


@pytest.mark.parametrize("key", ["A", "B", "C"])
def test_script_reproduces_the_session(delivered: Delivered, key: str, tmp_path: Path) -> None:
    script = delivered.result.folder / f"run_pipeline_{key}.py"
    src = delivered.sources[key]
    proc = subprocess.run(
        [sys.executable, str(script), str(src), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{_stem(src)}: done" in proc.stdout
    folder = tmp_path / "out" / _stem(src)
    assert compare_folder(delivered.expected(key), folder) == []
    record = json.loads((folder / "run.json").read_text())
    pipeline = Pipeline.load(delivered.result.pipelines[key])
    assert record["pipeline"] == {"name": pipeline.name, "sha256": pipeline.sha256()}
    # fbias run recognises the script's results as its own (resume skips them)
    code = cli_main(
        ["run", str(delivered.result.pipelines[key]), str(src), "-o", str(tmp_path / "out")]
    )
    assert code == 0
    assert (folder / "run.json").read_text() == json.dumps(record, indent=2) + "\n"


def test_script_and_cli_write_the_same_files(delivered: Delivered, tmp_path: Path) -> None:
    src = delivered.sources["B"]
    pipe = delivered.result.pipelines["B"]
    script = delivered.result.folder / "run_pipeline_B.py"
    subprocess.run(
        [sys.executable, str(script), str(src), "-o", str(tmp_path / "s")],
        check=True,
        capture_output=True,
    )
    assert cli_main(["run", str(pipe), str(src), "-o", str(tmp_path / "c")]) == 0
    a, b = tmp_path / "s" / _stem(src), tmp_path / "c" / _stem(src)
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert "B_tracks_ctc/res_track.txt" in files_a
    for rel in files_a:
        if rel != "run.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_a_different_result_is_noticed(delivered: Delivered, tmp_path: Path) -> None:
    src = delivered.sources["A"]
    assert (
        cli_main(["run", str(delivered.result.pipelines["A"]), str(src), "-o", str(tmp_path)]) == 0
    )
    exp = dict(delivered.expected("A"))
    labels = exp["A_nuclei"].data.copy()
    labels[labels == 1] = 0
    exp["A_nuclei"] = labels
    problems = compare_folder(exp, tmp_path / _stem(src))
    assert len(problems) == 1 and "pixels differ" in problems[0]
    table = read_result(tmp_path / _stem(src), "A_table")
    changed = table.copy()
    changed.loc[0, "area"] += 1
    assert "column 'area' differs" in compare(changed, table, "t")


def _run_notebook(path: Path, source: Path, outdir: Path) -> dict:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    params = nb.cells[1]
    assert "parameters" in params.metadata.get("tags", [])
    params.source = f"INPUT = {str(source)!r}\nOUTDIR = {str(outdir)!r}\n"
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    return nb


@pytest.mark.parametrize("key", ["A", "C"])
def test_notebook_reproduces_the_session(delivered: Delivered, key: str, tmp_path: Path) -> None:
    src = delivered.sources[key]
    nb = _run_notebook(delivered.result.folder / f"pipeline_{key}.ipynb", src, tmp_path)
    assert compare_folder(delivered.expected(key), tmp_path / _stem(src)) == []
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 2  # the image, then a figure after the segmentation


def test_script_with_two_inputs_takes_the_second_as_an_option(tmp_path: Path) -> None:
    from napari_fbias.session.export.script import script_text

    pipeline = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "measure-given-labels",
            "inputs": {"image": {"kind": "image"}, "labels": {"kind": "labels"}},
            "steps": [
                {
                    "id": "measure",
                    "op": "measure.regionprops",
                    "inputs": {"labels": "labels", "image": "image"},
                }
            ],
            "outputs": {"table": {"from": "measure"}},
        }
    )
    script = tmp_path / "run_pipeline.py"
    script.write_text(script_text(pipeline))
    image = sample_path("nuclei_batch") / "nuclei_04.ome.tif"
    labels = sample_path("nuclei_batch_labels") / "nuclei_04.ome.tif"
    proc = subprocess.run(
        [sys.executable, str(script), str(image), "--labels", str(labels), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    expected = pipeline.run(str(image), labels=str(labels))
    assert compare_folder({"table": expected["table"]}, tmp_path / "nuclei_04") == []
    assert len(expected["table"]) == int(np.max(open_image(labels).data))
    # without the second input: a usage error naming it
    proc = subprocess.run(
        [sys.executable, str(script), str(image)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "--labels" in proc.stderr


def test_script_reports_bad_input_clearly(delivered: Delivered, tmp_path: Path) -> None:
    script = delivered.result.folder / "run_pipeline_A.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "missing.ome.tif"), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "missing.ome.tif" in proc.stderr and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    # a broken file among good ones: that image fails with its reason, the others are done
    broken = tmp_path / "broken.ome.tif"
    broken.write_bytes(b"II*\x00 this is not really a TIFF")
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(broken),
            str(delivered.sources["A"]),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "broken: failed:" in proc.stderr and "Traceback" not in proc.stderr
    assert "1 done, 1 failed" in proc.stdout
    assert (tmp_path / "out" / "nuclei_02" / "run.json").is_file()
    assert not (tmp_path / "out" / "broken").exists()
