"""The ``fbias`` command line: exit codes, one-line errors, output, determinism."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import pipeline_testops as testops
from napari_fbias.cli import build_parser, main
from napari_fbias.pipeline import Pipeline

PIPELINE = testops.classical_pipeline_yaml()


@pytest.fixture
def files(tmp_path):
    pfile = tmp_path / "classical.fbias.yaml"
    pfile.write_text(PIPELINE)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        tifffile.imwrite(data / f"img{i}.tif", testops.make_blobs((40, 36), seed=i))
    return pfile, data


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == "napari-fbias 0.1.0"


def test_no_command_prints_help_and_exit_2(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().err


def test_help_texts_have_examples():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    run_help = sub.choices["run"].format_help()
    assert "examples:" in run_help and "fbias run nuclei.fbias.yaml images/ -o results/" in run_help
    assert "--no-resume" in run_help and "--cluster {slurm}" in run_help
    assert "fbias validate nuclei.fbias.yaml" in sub.choices["validate"].format_help()


def test_validate_valid_and_invalid(files, tmp_path, capsys):
    pfile, _ = files
    assert main(["validate", str(pfile)]) == 0
    assert "valid (3 steps, outputs: nuclei, props)" in capsys.readouterr().out
    bad = tmp_path / "bad.fbias.yaml"
    bad.write_text(
        PIPELINE.replace("sigma: 1.0", "sigma: -1")
        .replace("otsu", "otsuu")
        .replace("segment.threshold", "segment.threshhold")
    )
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "has 2 problems" in out
    assert "step 'smooth', params.sigma: -1.0 is below the minimum 0.0" in out
    assert "step 'nuclei', op: unknown operation 'segment.threshhold'" in out


def test_run_writes_results_and_exit_codes(files, tmp_path, capsys):
    pfile, data = files
    out = tmp_path / "out"
    assert main(["run", str(pfile), str(data), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"2 done, 0 skipped (already finished), 0 failed -> {out}" in captured.out
    for i in range(2):
        assert (out / f"img{i}" / "run.json").is_file()
    assert main(["run", str(pfile), str(data), "-o", str(out)]) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out
    tifffile.imwrite(data / "img2.tif", np.full((8, 8), np.nan, np.float32))
    assert main(["run", str(pfile), str(data), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "fbias: img2: failed: step 'smooth' (preprocess.gaussian)" in err
    assert "Traceback" not in err


def test_usage_and_validation_errors_are_one_line_exit_2(files, tmp_path, capsys):
    pfile, data = files
    cases = [
        (
            ["run", str(tmp_path / "missing.yaml"), str(data), "-o", str(tmp_path / "o")],
            "fbias: error: pipeline " + str(tmp_path / "missing.yaml") + ": file not found",
        ),
        (["run", str(pfile), str(data), "-o", str(data / "results")], "is inside the input"),
        (
            ["run", str(pfile), str(tmp_path / "nope.tif"), "-o", str(tmp_path / "o")],
            "input '" + str(tmp_path / "nope.tif") + "' not found",
        ),
        (
            ["run", str(pfile), str(data), "-o", str(tmp_path / "o"), "--workers", "0"],
            "--workers must be 1 or more",
        ),
        (
            [
                "run",
                str(pfile),
                str(data),
                "-o",
                str(tmp_path / "o"),
                "--scheduler",
                "tcp://x:1",
                "--cluster",
                "slurm",
            ],
            "use either --scheduler or --cluster",
        ),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    evil = tmp_path / "evil.fbias.yaml"
    evil.write_text("fbias_pipeline: 1\nname: !!python/object/apply:os.getcwd []\n")
    assert main(["run", str(evil), str(data), "-o", str(tmp_path / "o")]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_argument_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "p.yaml"])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


def test_debug_shows_the_traceback(files, tmp_path):
    from napari_fbias.pipeline import PipelineError

    with pytest.raises(PipelineError):
        main(["--debug", "run", str(tmp_path / "missing.yaml"), "x", "-o", str(tmp_path / "o")])


def test_slurm_without_jobqueue_is_a_clear_error(files, tmp_path, capsys):
    pytest.importorskip("distributed")
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        pfile, data = files
        assert (
            main(["run", str(pfile), str(data), "-o", str(tmp_path / "o"), "--cluster", "slurm"])
            == 2
        )
        assert "needs dask-jobqueue" in capsys.readouterr().err
    else:  # pragma: no cover
        pytest.skip("dask-jobqueue is installed")


def test_ops_listing_and_json(capsys):
    assert main(["ops", "--category", "segment"]) == 0
    text = capsys.readouterr().out
    assert "segment.threshold  (image: image) -> labels" in text
    assert "method: otsu | li | triangle | yen | manual = 'otsu'" in text
    assert "min_size: int [>= 0, <= 100000] = 0" in text
    assert "preprocess.gaussian" not in text
    assert main(["ops", "--json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    names = [o["name"] for o in ops]
    assert "preprocess.gaussian" in names and names == sorted(names)
    gauss = next(o for o in ops if o["name"] == "preprocess.gaussian")
    assert gauss["params"][0]["name"] == "sigma" and gauss["params"][0]["min"] == 0.0
    assert main(["ops", "--category", "nonsense"]) == 2
    assert "no operations in category 'nonsense'" in capsys.readouterr().err


def test_every_command_is_a_plain_argparse_subparser(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ["run", "validate", "ops", "tune", "export", "sessions", "demo"]
    for name, p in sub.choices.items():
        assert p.get_default("func").__name__ == f"cmd_{name}"
        assert "--debug" in p.format_help()
    with pytest.raises(SystemExit) as exc:
        main(["hello", "world"])
    assert exc.value.code == 2
    assert "invalid choice: 'hello'" in capsys.readouterr().err


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "run.json"
    }


def test_real_command_is_deterministic_and_matches_the_api(files, tmp_path):
    """The installed `fbias` script gives the same files as the Python API, bit for bit."""
    pfile, data = files
    exe = Path(sys.executable).with_name("fbias")
    proc = subprocess.run(
        [str(exe), "run", str(pfile), str(data / "img0.tif"), "-o", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    from napari_fbias.pipeline.batch import run_batch

    run_batch(Pipeline.load(pfile), data / "img0.tif", tmp_path / "api")
    assert _digest(tmp_path / "cli") == _digest(tmp_path / "api")
    from napari_fbias.io.ome_zarr_read import read_ome_zarr

    labels = read_ome_zarr(tmp_path / "cli" / "img0" / "result.ome.zarr").labels["nuclei"]
    expected = Pipeline.load(pfile).run(str(data / "img0.tif"))["nuclei"]
    np.testing.assert_array_equal(labels.data.compute(), expected)


@pytest.mark.slow
def test_workers_option_uses_a_local_cluster(files, tmp_path, capsys):
    pfile, data = files
    assert main(["run", str(pfile), str(data), "-o", str(tmp_path / "par"), "--workers", "2"]) == 0
    assert "2 done" in capsys.readouterr().out
    assert main(["run", str(pfile), str(data), "-o", str(tmp_path / "seq")]) == 0
    assert _digest(tmp_path / "par") == _digest(tmp_path / "seq")


def test_scratch_option_must_name_a_writable_folder(files, tmp_path, capsys):
    pfile, data = files
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "scratch"
    argv = ["run", str(pfile), str(data), "-o", str(tmp_path / "o"), "--scratch", str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"fbias: error: --scratch {bad}: cannot create or write this folder" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert blocker.read_text() == "not a folder"
    assert not (tmp_path / "o").exists()


def test_scratch_option_holds_the_scratch_data_of_the_run(tmp_path, monkeypatch, capsys):
    import os

    from napari_fbias.io.scratch import SCRATCH_ENV, ScratchArray
    from napari_fbias.io.stale_scratch import OWNER_FILE

    pfile = tmp_path / "p.fbias.yaml"
    pfile.write_text(testops.classical_pipeline_yaml(measure=False))
    tifffile.imwrite(tmp_path / "img.tif", testops.make_blobs((256, 256), seed=2))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(SCRATCH_ENV, str(blocker / "scratch"))  # unusable
    # the threshold reads the smoothed image twice: chunk-wise, that is kept on scratch disk
    argv = ["run", str(pfile), str(tmp_path / "img.tif"), "--memory", "1MB"]
    assert main([*argv, "-o", str(tmp_path / "a")]) == 1
    assert "could not keep the step's result on scratch disk" in capsys.readouterr().err

    # in the --scratch folder, one left by a killed process (its id now runs, started later)
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "elsewhere"))
    mine = ScratchArray((2, 2), np.uint8, (2, 2), "mine")
    owner = json.loads((Path(mine.path) / OWNER_FILE).read_text())
    stale = tmp_path / "scratch" / "fbias-scratch-stale-abc"
    stale.mkdir(parents=True)
    (stale / OWNER_FILE).write_text(json.dumps({**owner, "started": owner["started"] - 1000}))
    monkeypatch.setenv(SCRATCH_ENV, str(blocker / "scratch"))
    assert main([*argv, "-o", str(tmp_path / "b"), "--scratch", str(tmp_path / "scratch")]) == 0
    assert "ran chunk-wise (larger than --memory): smooth" in capsys.readouterr().out
    # the run's first scratch array under --scratch removed it
    assert not stale.exists()
    assert os.environ[SCRATCH_ENV] == str(blocker / "scratch")  # restored after the run
