"""The delivery bundle: files, contents, provenance, atomicity, no secrets, no images."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from napari_fbias.io.open import open_image
from napari_fbias.io.samples import sample_path
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.provenance import array_sha256
from napari_fbias.session import SessionRecorder, approach_to_pipeline, load_snapshot
from napari_fbias.session.export import ExportError, export_bundle
from napari_fbias.session.export import bundle as bundle_mod
from napari_fbias.session.export.bundle import choose_approaches, find_secrets, scrub_session
from napari_fbias.session.export.rocrate import check_crate

EXPECTED = {
    "README.md",
    "checksums.sha256",
    "pipeline_A.fbias.yaml",
    "pipeline_A.ipynb",
    "pipeline_B.fbias.yaml",
    "pipeline_B.ipynb",
    "report.html",
    "requirements.lock.txt",
    "ro-crate-metadata.json",
    "run_pipeline_A.py",
    "run_pipeline_B.py",
    "session.yaml",
    f"wheels/napari_fbias-{version('napari-fbias')}-py3-none-any.whl",
}


def small_image_path() -> Path:
    return sample_path("nuclei_batch") / "nuclei_01.ome.tif"


def record_session(folder: Path, *, solution: str | None = "B") -> SessionRecorder:
    """A session on a small sample image: A = smooth + threshold + measure, B = nuclei recipe."""
    img = open_image(small_image_path())
    rec = SessionRecorder.start(
        "Nuclei <b>count</b>",
        user_name="Ann Biologist",
        user_lab="Cell Lab",
        question="How many nuclei per field?",
        analysts=["Marie Curie", "Jean Dupont"],
        folder=folder,
        fsync=False,
    )
    name = rec.add_image(img, checksum="sha256:" + array_sha256(img.data))
    rec.add_approach("smooth + threshold", "Jean Dupont")
    rec.record_step("preprocess.gaussian", {"sigma": 1.0}, {"image": name}, "A: smoothed")
    rec.record_step("segment.threshold", {"min_size": 10}, {"image": "A: smoothed"}, "A: nuclei")
    rec.record_step(
        "measure.regionprops", {}, {"labels": "A: nuclei", "image": name}, "A: measurements"
    )
    rec.set_notes("Quick, but merges touching nuclei.")
    rec.add_approach("classical nuclei recipe", "Marie Curie")
    rec.record_step("segment.nuclei", {}, {"image": name}, "B: nuclei")
    rec.set_result({"objects": 16})
    if solution:
        rec.set_solution("Use the nuclei recipe.", approach=solution)
    rec.add_issue("Nuclei at the border are cut.")
    rec.add_next_step("Run it on the whole plate.")
    rec.save()
    rec.close()
    return rec


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SessionRecorder, object]:
    root = tmp_path_factory.mktemp("bundle")
    rec = record_session(root / "session")
    result = export_bundle(rec.folder, root / "delivery", approaches=["A", "B"], zip=True)
    return rec, result


def test_bundle_holds_every_file_and_only_those(exported: tuple) -> None:
    _, result = exported
    assert set(result.files) == EXPECTED
    assert {p.name for p in result.folder.iterdir()} == {f.split("/")[0] for f in EXPECTED}
    assert result.approaches == ("A", "B")
    # no copy of the user's image
    assert not [f for f in result.files if f.endswith((".tif", ".tiff", ".zarr"))]


def test_pipelines_are_the_approaches(exported: tuple) -> None:
    rec, result = exported
    for key in ("A", "B"):
        loaded = Pipeline.load(result.pipelines[key])
        assert loaded.sha256() == approach_to_pipeline(rec.session, key).sha256()
    assert [s.op for s in Pipeline.load(result.pipelines["A"]).steps] == [
        "preprocess.gaussian",
        "segment.threshold",
        "measure.regionprops",
    ]


def test_readme_says_what_and_how(exported: tuple) -> None:
    _, result = exported
    text = (result.folder / "README.md").read_text()
    wheel = f"wheels/napari_fbias-{version('napari-fbias')}-py3-none-any.whl"
    assert "pip install -r requirements.lock.txt" in text and f"pip install {wheel}" in text
    assert 'pip install "napari-fbias==' not in text  # not published: it would not work
    assert "fbias run pipeline_A.fbias.yaml INPUT... -o results" in text
    assert "python run_pipeline_A.py INPUT... -o results" in text
    assert "pipeline_A.ipynb" in text and "Run pipeline" in text
    assert "**Gaussian**" in text and "`sigma` = 1.0" in text
    assert "Segment nuclei" in text  # the op summary, in words
    assert "How many nuclei per field?" in text
    assert "`nuclei_01`" in text and "256 x 256" in text
    assert "<b>" not in text and "&lt;b&gt;" in text  # the user's markup is inert


def test_session_record_is_included(exported: tuple) -> None:
    rec, result = exported
    snap = load_snapshot(result.folder / "session.yaml")
    assert snap.id == rec.session.id
    assert [a.key for a in snap.approaches] == ["A", "B"]
    assert snap.issues == ("Nuclei at the border are cut.",)


def test_requirements_lock_pins_installable_versions(exported: tuple) -> None:
    _, result = exported
    lines = (result.folder / "requirements.lock.txt").read_text().splitlines()
    wheel = f"wheels/napari_fbias-{version('napari-fbias')}-py3-none-any.whl"
    digest = hashlib.sha256((result.folder / wheel).read_bytes()).hexdigest()
    # napari-fbias itself: the wheel in the bundle, with its hash (pip checks it)
    assert f"file:{wheel}#sha256={digest}" in lines
    lines = [line for line in lines if not line.startswith("file:")]
    reqs = [Requirement(line) for line in lines if line and not line.startswith("#")]
    assert len(reqs) > 20
    for req in reqs:
        (spec,) = req.specifier
        assert spec.operator == "==" and "+" not in spec.version
        assert req.url is None and not req.marker
    pinned = {r.name: next(iter(r.specifier)).version for r in reqs}
    for dist in ("numpy", "scikit-image", "dask", "zarr", "pandas"):
        assert pinned[dist] == version(dist)
    assert "-e " not in "\n".join(lines) and "file:" not in "\n".join(lines)


def test_checksums_verify_with_sha256sum(exported: tuple) -> None:
    _, result = exported
    text = (result.folder / "checksums.sha256").read_text()
    listed = {line.split("  ", 1)[1] for line in text.splitlines() if not line.startswith("#")}
    assert listed == EXPECTED - {"checksums.sha256"}
    pixels = array_sha256(open_image(small_image_path()).data)
    assert f"# input image 'nuclei_01': pixels sha256:{pixels}" in text
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum is not installed")
    proc = subprocess.run(
        ["sha256sum", "--strict", "-c", "checksums.sha256"],
        cwd=result.folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == len(listed)


def test_ro_crate_is_a_workflow_run_crate(exported: tuple) -> None:
    rec, result = exported
    doc = json.loads((result.folder / "ro-crate-metadata.json").read_text())
    assert check_crate(doc) == []
    by_id = {e["@id"]: e for e in doc["@graph"]}
    root = by_id["./"]
    assert root["mainEntity"] == {"@id": "pipeline_A.fbias.yaml"}
    assert {p["@id"] for p in root["hasPart"]} == EXPECTED - {"ro-crate-metadata.json"}
    assert "ComputationalWorkflow" in by_id["pipeline_B.fbias.yaml"]["@type"]
    runs = [e for e in doc["@graph"] if e["@type"] == "CreateAction"]
    assert [r["instrument"]["@id"] for r in runs] == [
        "pipeline_A.fbias.yaml",
        "pipeline_B.fbias.yaml",
    ]
    agents = {by_id[a["@id"]]["name"] for r in runs for a in r["agent"]}
    assert agents == set(rec.session.analysts)
    assert runs[0]["startTime"] == rec.session.created
    image = by_id[runs[0]["object"][0]["@id"]]
    assert image["@type"] == "File" and image["name"] == "nuclei_01"
    # the checker catches a broken crate
    broken = dict(doc, **{"@graph": [e for e in doc["@graph"] if e["@type"] != "Person"]})
    assert any("Person" in p or "not described" in p for p in check_crate(broken))


def test_zip_holds_the_folder(exported: tuple) -> None:
    _, result = exported
    with zipfile.ZipFile(result.zip_path) as zf:
        names = set(zf.namelist())
        assert names == {f"delivery/{f}" for f in EXPECTED}
        assert zf.read("delivery/README.md") == (result.folder / "README.md").read_bytes()


def test_report_is_in_the_bundle_with_figures(exported: tuple) -> None:
    _, result = exported
    html = (result.folder / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 4  # overlays, histograms, comparison
    assert "Nuclei &lt;b&gt;count&lt;/b&gt;" in html and "<b>count" not in html
    assert "Marie Curie" in html and "Use the nuclei recipe." in html
    assert result.notes == ()


def test_default_is_the_proposed_approach_else_all(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s1", solution="B")
    assert choose_approaches(rec.session, None) == ["B"]
    assert choose_approaches(rec.session, ["A", "A"]) == ["A"]
    rec2 = record_session(tmp_path / "s2", solution=None)
    assert choose_approaches(rec2.session, None) == ["A", "B"]
    with pytest.raises(ExportError, match="no approach 'Z'"):
        choose_approaches(rec.session, ["Z"])


def test_single_approach_gets_plain_file_names(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    result = export_bundle(rec.folder / "session.yaml", tmp_path / "out", figures=False)
    assert result.approaches == ("B",)
    assert {"pipeline.fbias.yaml", "run_pipeline.py", "pipeline.ipynb"} <= set(result.files)
    html = (result.folder / "report.html").read_text()
    assert "data:image/png" not in html  # figures=False: no rerun


def test_existing_destination_is_left_alone(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("precious")
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(rec.folder, dest, figures=False)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert (dest / "mine.txt").read_text() == "precious"


def test_failed_export_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_fbias.session.export import report

    rec = record_session(tmp_path / "s")

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(report, "render_report", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        export_bundle(rec.folder, out, figures=False, zip=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_include_images_copies_the_local_image(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    result = export_bundle(rec.folder, tmp_path / "out", figures=False, include_images=True)
    copy = result.folder / "images" / "nuclei_01.ome.tif"
    assert copy.read_bytes() == small_image_path().read_bytes()
    assert "images/nuclei_01.ome.tif" in (result.folder / "checksums.sha256").read_text()
    crate = json.loads((result.folder / "ro-crate-metadata.json").read_text())
    action = next(e for e in crate["@graph"] if e["@type"] == "CreateAction")
    assert action["object"] == [{"@id": "images/nuclei_01.ome.tif"}]
    assert check_crate(crate) == []
    nb = json.loads((result.folder / "pipeline.ipynb").read_text())
    assert "INPUT = 'images/nuclei_01.ome.tif'" in "".join(nb["cells"][1]["source"])


def test_missing_image_gives_a_note_not_a_failure(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    snap = yaml.safe_load((rec.folder / "session.yaml").read_text())
    snap["images"][0]["source"] = str(tmp_path / "gone.ome.tif")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "session.yaml").write_text(yaml.safe_dump(snap))
    result = export_bundle(tmp_path / "moved" / "session.yaml", tmp_path / "out", read_sources=True)
    assert result.notes and all("could not be rerun" in n for n in result.notes)
    assert "gone.ome.tif" in result.notes[0]
    assert "could not be rerun" in (result.folder / "report.html").read_text()


def test_changed_pixels_are_reported(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    snap = yaml.safe_load((rec.folder / "session.yaml").read_text())
    snap["images"][0]["checksum"] = "sha256:" + "0" * 64
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "session.yaml").write_text(yaml.safe_dump(snap))
    result = export_bundle(
        tmp_path / "edited" / "session.yaml", tmp_path / "out", read_sources=True
    )
    assert any("'nuclei_01' differ from those recorded" in n for n in result.notes)
    assert "differ from those recorded" in (result.folder / "report.html").read_text()


def test_huge_images_are_not_rerun_for_figures(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    snap = yaml.safe_load((rec.folder / "session.yaml").read_text())
    snap["images"][0]["shape"] = [40000, 40000]
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "session.yaml").write_text(yaml.safe_dump(snap))
    result = export_bundle(tmp_path / "big" / "session.yaml", tmp_path / "out", read_sources=True)
    assert result.notes and all("too large to rerun" in n for n in result.notes)
    assert "40000 x 40000" in result.notes[0]


SECRETS = ("hunter2", "S3CR3T-TOKEN", "AKIAEXAMPLEKEY", "sessionkey-42", "pa55word")


def test_no_secret_reaches_the_bundle(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    snap = yaml.safe_load((rec.folder / "session.yaml").read_text())
    url = (
        "https://alice:hunter2@data.example.org/img.ome.zarr"
        "?token=S3CR3T-TOKEN&X-Amz-Credential=AKIAEXAMPLEKEY&frame=2"
    )
    snap["images"][0]["source"] = url
    snap["approaches"][0]["notes"] = "see https://bob:pa55word@omero.example.org/?bsession=x"
    snap["approaches"][1]["steps"][0]["params"]["api_token"] = "sessionkey-42"
    snap["timeline"].append({"time": "2026-01-01T00:00:00", "kind": "note", "url": url})
    snap["issues"].append("ask for omero://omero.example.org/Image:7?bsession=sessionkey-42")
    raw = tmp_path / "planted"
    raw.mkdir()
    (raw / "session.yaml").write_text(yaml.safe_dump(snap))
    assert "hunter2" in (raw / "session.yaml").read_text()
    result = export_bundle(
        raw / "session.yaml", tmp_path / "out", approaches=["A", "B"], zip=True, figures=False
    )
    for path in result.folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, (secret, path.name)
    zipped = result.zip_path.read_bytes()
    with zipfile.ZipFile(result.zip_path) as zf:
        for name in zf.namelist():
            assert not any(s.encode() in zf.read(name) for s in SECRETS)
    assert b"hunter2" not in zipped
    # the location itself is kept, without its credentials
    readme = (result.folder / "README.md").read_text()
    assert "data.example.org/img.ome.zarr?frame=2" in readme


def test_secret_scanner_finds_credentials() -> None:
    found = find_secrets("x https://u:p@h/x y")
    assert [(f.line, f.column, f.what) for f in found] == [(1, 3, ("a user name or password",))]
    assert "u:p" not in str(found[0])  # where, and what kind, never the secret itself
    assert find_secrets('"s3://b/k?X-Amz-Signature=abc"')
    assert find_secrets("<a href='https://h/x?a=1&amp;token=z'>")
    assert find_secrets("https://h/x?a=1 and omero://h/Image:1") == []


def test_scrub_session_keeps_everything_else(tmp_path: Path) -> None:
    rec = record_session(tmp_path / "s")
    assert scrub_session(rec.session) == rec.session


def test_approach_without_steps_cannot_be_exported(tmp_path: Path) -> None:
    rec = SessionRecorder.start("empty", folder=tmp_path / "s", fsync=False)
    rec.add_approach("nothing yet", "Jean")
    rec.close()
    with pytest.raises(ExportError, match="no approach with steps"):
        export_bundle(rec.folder, tmp_path / "out")
    with pytest.raises(ExportError, match="approach A has no steps"):
        export_bundle(rec.folder, tmp_path / "out", approaches=["A"])
    assert not (tmp_path / "out").exists()


def test_scan_refuses_a_leaking_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = record_session(tmp_path / "s")
    monkeypatch.setattr(bundle_mod, "scrub_session", lambda s: s)
    from napari_fbias.session.export import readme

    real = readme.readme_text
    monkeypatch.setattr(
        readme,
        "readme_text",
        lambda *a, **k: real(*a, **k) + "\nhttps://eve:leak@h.example.org/x\n",
    )
    with pytest.raises(ExportError, match="credentials found in README.md"):
        export_bundle(rec.folder, tmp_path / "out", figures=False)
    assert not (tmp_path / "out").exists()
