"""Planted credentials never reach anything we write: files, records, bundles, logs.

One session is driven end to end with a test password, an OMERO session key
and an access token planted everywhere a user could put them (image URLs,
free text, settings, S3 options, the command line); then every file under
the test folder that we wrote (session journal and snapshot, pipeline files,
``run.json`` and result files of batches on a remote image, the delivery
bundle and its zip, the recent-files list) and everything printed or logged
is searched for the planted values. Only the inputs the test itself wrote
are exempt. See also ``test_session_secrets.py`` (the recorder's own rules).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.http_server import FolderServer
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch
from napari_fbias.session import ImageRef, SessionRecorder, approach_to_pipeline, load_session

PASSWORD = "hunter2-Pl4nted-Passw0rd"
SESSION_KEY = "0f1e2d3c-planted-omero-session-key"
TOKEN = "tok_PLANTED_9f8e7d6c5b4a"
SECRETS = (PASSWORD, SESSION_KEY, TOKEN)

PIPELINE = {
    "fbias_pipeline": 1,
    "name": "threshold",
    "inputs": {"image": {"kind": "image"}},
    "steps": [
        {"id": "smooth", "op": "preprocess.gaussian", "inputs": {"image": "image"}},
        {"id": "nuclei", "op": "segment.threshold", "inputs": {"image": "smooth"}},
        {"id": "props", "op": "measure.regionprops", "inputs": {"labels": "nuclei"}},
    ],
    "outputs": {"nuclei": {"from": "nuclei"}, "props": {"from": "props"}},
}


def leaks(root: Path, exempt: set[Path] = frozenset()) -> dict[str, list[str]]:
    """Files under ``root`` (zips opened too) that contain a planted secret."""
    found: dict[str, list[str]] = {}

    def check(name: str, data: bytes) -> None:
        hits = [s for s in SECRETS if s.encode() in data]
        if hits:
            found[name] = hits

    for path in root.rglob("*"):
        if not path.is_file() or any(path == e or e in path.parents for e in exempt):
            continue
        data = path.read_bytes()
        check(str(path.relative_to(root)), data)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    check(f"{path.relative_to(root)}!{member}", zf.read(member))
    return found


def in_text(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(0)
    data = rng.normal(100, 5, (48, 48)).astype(np.uint16)
    data[10:20, 10:20] += 300
    data[30:40, 25:38] += 300
    return Path(write_image(served / "cells.ome.zarr", data, "yx", chunks=(24, 24)))


def test_planted_secrets_reach_no_artifact_and_no_log(
    tmp_path: Path, image: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any, capfd: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))
    work = tmp_path / "work"
    work.mkdir()
    with FolderServer(image.parent) as server:
        # a URL with a user name and password (HTTP basic auth; the test server ignores it)
        url = server.url_for(image.name).replace("http://", f"http://ann:{PASSWORD}@")

        # --- a recorded session --------------------------------------------------------
        opened = read_ome_zarr(url)
        assert not in_text(repr(opened.describe())), "the image carries the password"
        rec = SessionRecorder.start(
            f"secrets https://ann:{PASSWORD}@example.org/",
            user_name="Ann",
            question=f"why does s3://bucket/x.zarr?X-Amz-Security-Token={TOKEN} fail?",
            folder=work / "session",
        )
        name = rec.add_image(opened)
        rec.add_image(
            ImageRef(
                name="omero",
                source=f"omero://ann:{PASSWORD}@omero.example.org/Image:7?bsession={SESSION_KEY}",
                axes="yx",
                shape=(48, 48),
            )
        )
        rec.add_approach("threshold", "Ann")
        rec.record_step("preprocess.gaussian", {"sigma": 1.0}, {"image": name}, "smooth")
        rec.record_step("segment.threshold", {}, {"image": "smooth"}, "nuclei")
        rec.set_notes(f"the data came from https://h.org/?access_token={TOKEN}")
        rec.add_issue(f"OMERO key omero://omero.example.org/?bsession={SESSION_KEY}")
        rec.set_solution(f"use https://ann:{PASSWORD}@example.org/", approach="A")
        rec.add_next_step(f"ask for https://example.org/data?api_key={TOKEN}")
        rec.save()
        rec.close()

        # --- pipeline files ------------------------------------------------------------
        session = load_session(work / "session")
        pipeline = approach_to_pipeline(session, "A")
        pipeline.dump(work / "from_session.fbias.yaml")
        authored = Pipeline.from_dict(PIPELINE).with_provenance(
            author=f"Ann <https://ann:{PASSWORD}@example.org>"
        )
        pipeline_file = authored.dump(work / "authored.fbias.yaml")

        # --- batches on the remote image: in this process and through the CLI -------------
        report = run_batch(
            Pipeline.from_dict(PIPELINE),
            url,
            work / "batch",
            storage_options={"client_kwargs": {"headers": {"X-Api-Token": TOKEN}}},
        )
        assert report.ok, [i.message for i in report.items]
        assert not in_text(repr(report))
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "napari_fbias.cli",
                "run",
                str(pipeline_file),
                url,
                "-o",
                str(work / "cli"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert cli.returncode == 0, cli.stderr
        # a failing remote input: the error message names the URL, without the password
        server.fail_after(0, status=500)
        failed = run_batch(Pipeline.from_dict(PIPELINE), url, work / "failed")
        assert [i.status for i in failed.items] == ["failed"]
        assert "127.0.0.1" in failed.items[0].message
        assert not in_text(failed.items[0].message), failed.items[0].message
        cli_failed = subprocess.run(
            [
                sys.executable,
                "-m",
                "napari_fbias.cli",
                "run",
                str(pipeline_file),
                url,
                "-o",
                str(work / "cli-failed"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert cli_failed.returncode == 1

    # --- the delivery bundle, zipped -------------------------------------------------------
    from napari_fbias.session.export import export_bundle

    export_bundle(work / "session", work / "bundle", zip=True, figures=False)
    assert (work / "bundle.zip").is_file()

    # --- the recent-files list of the Open widget --------------------------------------------
    from napari_fbias._qt.open_widget import recent_file, remember

    remember(url)
    assert recent_file().is_file()

    # --- nothing anywhere ------------------------------------------------------------------
    assert (work / "session" / "journals").is_dir()
    assert (work / "batch" / "cells" / "run.json").is_file()
    assert (work / "cli" / "cells" / "run.json").is_file()
    assert leaks(tmp_path, exempt={image.parent}) == {}
    for where, text in (
        ("fbias run", cli.stdout + cli.stderr),
        ("fbias run (failing)", cli_failed.stdout + cli_failed.stderr),
        ("logging", caplog.text),
        ("stdout/stderr", "".join(capfd.readouterr())),
    ):
        assert not in_text(text), f"{where}: {text[-2000:]}"


def test_the_scan_finds_a_planted_secret(tmp_path: Path) -> None:
    """The checks above can fail: a file and a zip member holding a secret are found."""
    (tmp_path / "a.txt").write_text(f"x {TOKEN} y")
    with zipfile.ZipFile(tmp_path / "b.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/readme.md", f"password={PASSWORD}")
    found = leaks(tmp_path)
    assert found == {"a.txt": [TOKEN], "b.zip!inner/readme.md": [PASSWORD]}
    assert in_text(f"key {SESSION_KEY}") == [SESSION_KEY]


def test_url_password_travels_as_basic_auth_not_in_the_url(
    tmp_path: Path, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password is still sent (HTTP basic auth), but no requested URL holds it."""
    import base64

    from helpers import http_server

    seen: list[tuple[str, str | None]] = []
    original = http_server._Handler.do_GET

    def recording(self: Any) -> None:
        seen.append((self.path, self.headers.get("Authorization")))
        original(self)

    monkeypatch.setattr(http_server._Handler, "do_GET", recording)
    with FolderServer(image.parent) as server:
        url = server.url_for(image.name).replace("http://", f"http://ann:{PASSWORD}@")
        img = read_ome_zarr(url)
        img.data.compute()
    expected = "Basic " + base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
    assert seen and all(auth == expected for _, auth in seen), seen
    assert not any(in_text(path) for path, _ in seen)
    assert img.source == server.url_for(image.name)
