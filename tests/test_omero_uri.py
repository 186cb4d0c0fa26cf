"""OMERO URIs and OMERO.web links: parsing, formatting, refusing what is not one."""

from __future__ import annotations

import pytest

from napari_fbias.io.omero.errors import OmeroUriError
from napari_fbias.io.omero.uri import (
    OmeroRef,
    format_omero_uri,
    is_omero_uri,
    parse_omero_uri,
    parse_omero_uris,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("omero://omero.example.org/Image:12", OmeroRef("omero.example.org", None, "Image", 12)),
        ("omero://Omero.Example.org:4063/image:7", OmeroRef("omero.example.org", 4063, "Image", 7)),
        ("omero://h/Dataset:3", OmeroRef("h", None, "Dataset", 3)),
        ("omero://h/plate:5/", OmeroRef("h", None, "Plate", 5)),
        ("omero://h/Screen:9", OmeroRef("h", None, "Screen", 9)),
        ("omero://h/Project:1", OmeroRef("h", None, "Project", 1)),
        ("omero://h/Well:2", OmeroRef("h", None, "Well", 2)),
        (
            "https://idr.openmicroscopy.org/webclient/?show=image-9836842",
            OmeroRef("idr.openmicroscopy.org", None, "Image", 9836842),
        ),
        (
            "https://web.example.org/omero/webclient/?show=dataset-51",
            OmeroRef("web.example.org", None, "Dataset", 51),
        ),
        (
            "https://web.example.org/webclient/?show=plate-4&foo=1",
            OmeroRef("web.example.org", None, "Plate", 4),
        ),
        (
            "https://web.example.org/webclient/img_detail/123/?dataset=5",
            OmeroRef("web.example.org", None, "Image", 123),
        ),
        (
            "http://web.example.org:8080/webgateway/img_detail/77",
            OmeroRef("web.example.org", None, "Image", 77),
        ),
        (
            "https://web.example.org/iviewer/?images=42&dataset=3",
            OmeroRef("web.example.org", None, "Image", 42),
        ),
        ("  omero://h/Image:1  ", OmeroRef("h", None, "Image", 1)),
    ],
)
def test_parse_accepted_forms(text, expected):
    assert parse_omero_uri(text) == expected
    assert is_omero_uri(text)


def test_canonical_uri_round_trips_and_drops_default_port():
    ref = parse_omero_uri("https://web.example.org/webclient/?show=dataset-51")
    assert ref.uri == "omero://web.example.org/Dataset:51"
    assert parse_omero_uri(ref.uri) == ref
    assert format_omero_uri("h", "image", 3, port=4064) == "omero://h/Image:3"
    assert format_omero_uri("h", "Image", 3, port=4063) == "omero://h:4063/Image:3"
    assert str(OmeroRef("h", 4063, "Plate", 2)) == "omero://h:4063/Plate:2"


def test_links_selecting_several_objects():
    refs = parse_omero_uris("https://w.org/webclient/?show=image-1|image-2|dataset-3")
    assert [(r.kind, r.id) for r in refs] == [("Image", 1), ("Image", 2), ("Dataset", 3)]
    assert [r.id for r in parse_omero_uris("https://w.org/iviewer/?images=5,6")] == [5, 6]
    with pytest.raises(OmeroUriError, match="names 2 objects"):
        parse_omero_uri("https://w.org/iviewer/?images=5,6")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("/data/image.ome.zarr", "not an OMERO reference"),
        ("s3://bucket/img.zarr", "not an OMERO reference"),
        ("omero://h/Image:abc", "expected omero://h/Kind:ID"),
        ("omero://h/Roi:3", "unsupported OMERO object kind 'Roi'"),
        ("omero:///Image:3", "names no host"),
        ("omero://alice:secret@h/Image:3", "credentials"),
        ("https://w.org/webclient/?show=tag-3", "unsupported OMERO object kind 'tag'"),
        ("https://w.org/some/page", "not an OMERO.web link"),
        ("https://w.org/iviewer/?images=x", "must list image ids"),
        ("", "expected an OMERO URI"),
    ],
)
def test_rejects_with_the_reason(text, reason):
    with pytest.raises(OmeroUriError, match=reason):
        parse_omero_uri(text)
    assert not is_omero_uri(text)


def test_error_with_credentials_does_not_echo_the_password():
    with pytest.raises(OmeroUriError) as info:
        parse_omero_uri("omero://alice:hunter2@h/Image:3")
    assert "hunter2" not in str(info.value)


def test_is_omero_uri_never_raises_on_other_types():
    assert not is_omero_uri(None)
    assert not is_omero_uri(12)
