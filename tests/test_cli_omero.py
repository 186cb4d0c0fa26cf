"""``fbias run`` on OMERO inputs: log in, expand a Dataset, run every image (FAKE server).

No OMERO server can run here: the server is the FAKE gateway of ``tests/fakes``;
the client code, the CLI and the pipeline are the real ones.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline_testops as testops
from fakes.fake_blitz import FakeClient, FakeOmeroServer
from napari_fbias.cli import main
from napari_fbias.io.omero import connection as omero_connection
from napari_fbias.io.omero.connection import connections
from napari_fbias.pipeline import Pipeline

PASSWORD = "fake-pw-123"
PIPELINE = testops.classical_pipeline_yaml("blobs", measure=False)


@pytest.fixture
def server(monkeypatch):
    server = FakeOmeroServer("omero.fake.test")
    lab = server.add_group("lab")
    alice = server.add_user("alice", PASSWORD, [lab])
    ds = server.add_container("Dataset", "blobs", group=lab, owner=alice)
    server.named = {"ds": ds}
    server.arrays = {}
    for i in range(2):
        data = testops.make_blobs((40, 36), seed=i).astype(np.uint16)
        plane = data[None, None, None]
        iid = server.add_image(f"blob{i}", plane, group=lab, owner=alice, dataset=ds)
        server.arrays[iid] = data
    # every connection the CLI opens talks to this FAKE server
    monkeypatch.setattr(omero_connection, "default_backend", server.backend)
    yield server
    for c in set(connections().values()):
        c.close()


def _session_key(server: FakeOmeroServer) -> str:
    client = FakeClient(server, server.host, 4064)
    client.createSession("alice", PASSWORD)
    key = client.getSessionId()
    server.sessions[key].detached = True
    return key


def test_run_over_a_dataset_with_a_session_key(server, tmp_path, monkeypatch, capsys):
    pfile = tmp_path / "blobs.fbias.yaml"
    pfile.write_text(PIPELINE)
    monkeypatch.setenv("OMERO_SESSION_KEY", _session_key(server))
    out = tmp_path / "out"
    uri = f"omero://{server.host}/Dataset:{server.named['ds']}"
    assert main(["run", str(pfile), uri, "-o", str(out)]) == 0
    done = sorted(p.name for p in out.iterdir() if (p / "run.json").exists())
    assert len(done) == 2
    pipeline = Pipeline.load(pfile)
    for iid, data in server.arrays.items():
        (folder,) = [p for p in out.iterdir() if p.name.endswith(str(iid))]
        import zarr

        written = zarr.open_group(str(folder / "result.ome.zarr"), mode="r")
        labels = np.asarray(written["labels/nuclei/0"])
        expected = pipeline.run((data, "yx"))["nuclei"]
        np.testing.assert_array_equal(labels, expected)
    # the session key never reaches a file
    key = bytes(__import__("os").environ["OMERO_SESSION_KEY"], "utf-8")
    for f in out.rglob("*"):
        if f.is_file():
            assert key not in f.read_bytes(), f


def test_omero_inputs_refuse_parallel_workers(server, tmp_path, monkeypatch, capsys):
    pfile = tmp_path / "blobs.fbias.yaml"
    pfile.write_text(PIPELINE)
    monkeypatch.setenv("OMERO_SESSION_KEY", _session_key(server))
    uri = f"omero://{server.host}/Dataset:{server.named['ds']}"
    assert main(["run", str(pfile), uri, "-o", str(tmp_path / "o"), "--workers", "2"]) == 2
    assert "without --workers" in capsys.readouterr().err


def test_not_logged_in_is_one_clear_line(server, tmp_path, monkeypatch, capsys):
    pfile = tmp_path / "blobs.fbias.yaml"
    pfile.write_text(PIPELINE)
    monkeypatch.delenv("OMERO_SESSION_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OMERO_SESSIONDIR", raising=False)
    uri = f"omero://{server.host}/Image:1"
    code = main(["run", str(pfile), uri, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0
    assert "omero login" in err and "Traceback" not in err
