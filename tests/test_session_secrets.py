"""No password, token or signature ever reaches the journal or the snapshot."""

from __future__ import annotations

import pytest

from napari_fbias.io.image import from_array
from napari_fbias.session import ImageRef, InvalidStepError, SessionRecorder
from napari_fbias.session.secrets import is_secret_name, sanitize_uri, scrub_text

PLANTED = "hunter2-Sup3rSecret"


@pytest.mark.parametrize(
    ("uri", "clean"),
    [
        ("https://bob:pw@example.org/a.zarr?x=1&token=abc", "https://example.org/a.zarr?x=1"),
        ("https://example.org/a.zarr?x=1", "https://example.org/a.zarr?x=1"),
        (
            "https://bucket.s3.amazonaws.com/a.zarr?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK"
            "&X-Amz-Signature=ff&X-Amz-Security-Token=tt",
            "https://bucket.s3.amazonaws.com/a.zarr?X-Amz-Algorithm=AWS4",
        ),
        ("omero://ann:pw@omero.example.org/Image:42", "omero://omero.example.org/Image:42"),
        ("omero://omero.example.org/Image:42?bsession=abc", "omero://omero.example.org/Image:42"),
        ("omero://omero.example.org/Image:42", "omero://omero.example.org/Image:42"),
        ("s3://key:secret@bucket/a.zarr", "s3://bucket/a.zarr"),
        ("https://h.org/x#access_token=abc", "https://h.org/x"),
        ("/home/ann/data/cells.ome.zarr", "/home/ann/data/cells.ome.zarr"),
    ],
)
def test_sanitize_uri(uri, clean):
    assert sanitize_uri(uri) == clean


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("api_key", True),
        ("apiKey", True),
        ("X-Amz-Signature", True),
        ("accessToken", True),
        ("omero_session", True),
        ("client_secret", True),
        ("keypoints", False),
        ("min_size", False),
        ("sigma", False),
        ("passes", False),
    ],
)
def test_is_secret_name(name, secret):
    assert is_secret_name(name) is secret


def test_scrub_text_cleans_urls_inside_sentences():
    text = f"data at https://ann:{PLANTED}@h.org/x.zarr?token={PLANTED} (see there)"
    assert scrub_text(text) == "data at https://h.org/x.zarr (see there)"


def test_planted_secrets_never_reach_disk(tmp_path):
    r = SessionRecorder.start(
        f"open desk https://u:{PLANTED}@h.org",
        user_name="Ann",
        question=f"why does https://h.org/i.zarr?api_key={PLANTED} fail?",
        folder=tmp_path / "s",
    )
    img = from_array(
        [[0, 1], [1, 0]] * 8,
        "yx",
        name="remote",
        source=f"https://ann:{PLANTED}@data.example.org/cells.zarr?token={PLANTED}&v=2",
    )
    name = r.add_image(img)
    r.add_image(ImageRef(name="o", source=f"omero://ann:{PLANTED}@omero.org/Image:7?key={PLANTED}"))
    with pytest.raises(InvalidStepError, match="secret"):
        r.record_step("preprocess.gaussian", {"password": PLANTED}, {"image": name}, "g")
    r.record_step("preprocess.gaussian", {}, {"image": name}, "g")
    r.set_notes(f"tried s3://AKIA:{PLANTED}@bucket/x")
    r.add_issue(f"token in https://h.org/?auth={PLANTED}")
    r.set_solution(f"https://x:{PLANTED}@h.org")
    r.set_field("title", f"https://x:{PLANTED}@h.org/t")
    snapshot = r.save()
    r.close()
    for path in (r.journal_path, snapshot):
        assert PLANTED not in path.read_text(), path.name
    s = r.session
    assert s.image("remote").source == "https://data.example.org/cells.zarr?v=2"
    assert s.image("o").source == "omero://omero.org/Image:7"


def test_recorded_text_is_bounded_and_printable(tmp_path):
    from napari_fbias.io.text_limits import MAX_NAME, MAX_TEXT

    r = SessionRecorder.start("t\x00itle\u202e", user_name="A" * 50_000, folder=tmp_path / "s")
    r.set_notes("n" * 100_000)
    r.add_issue("x\x1b[31m red")
    s = r.session
    r.close()
    assert s.title == "title" and len(s.user.name) <= MAX_NAME
    assert len(s.approach("A").notes) <= MAX_TEXT and "more characters" in s.approach("A").notes
    assert s.issues == ("x[31m red",)
