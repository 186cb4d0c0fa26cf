"""The HTML report: every part of the session, escaped, self-contained, responsive."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from napari_fbias.pipeline.values import Value
from napari_fbias.session.export.figures import (
    FigurePNG,
    count_objects,
    counts_figure,
    overlay_figure,
    plane,
    value_figures,
)
from napari_fbias.session.export.report import ApproachFigures, render_report
from napari_fbias.session.model import (
    Approach,
    ImageRef,
    Person,
    RecordedStep,
    Session,
    Solution,
    StepInput,
)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"'


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Collect:
    p = Collect()
    p.feed(html)
    return p


def make_session(text: str = "plain") -> Session:
    step = RecordedStep(
        id="nuclei",
        op="segment.nuclei",
        inputs={"image": StepInput(image="img", select={"c": 0}, layer=f"img {text}")},
        params={"smoothing_sigma": 1.5, "threshold_method": "otsu"},
        output_layer=f"A: nuclei {text}",
    )
    return Session(
        id="1234abcd-0000",
        title=f"Session {text}",
        user=Person(name=f"Ann {text}", lab="Lab"),
        question=f"How many? {text}",
        analysts=(f"Marie {text}", "Jean"),
        created="2026-05-04T10:00:00+00:00",
        updated="2026-05-04T11:00:00+00:00",
        images=(
            ImageRef(name="img", source=f"/data/{text}.ome.zarr", axes="cyx", shape=(2, 8, 8)),
        ),
        approaches=(
            Approach(
                key="A",
                title=f"classical {text}",
                analyst="Marie",
                steps=(step,),
                notes=f"notes {text}\n\nsecond paragraph",
                result={"objects": 3},
            ),
            Approach(key="B", title="cellpose", analyst="Jean"),
        ),
        solution=Solution(approach="A", text=f"Use A {text}"),
        issues=(f"issue {text}",),
        next_steps=(f"next {text}",),
    )


def small_figures() -> ApproachFigures:
    labels = np.zeros((40, 60), dtype=np.int32)
    labels[5:15, 5:15] = 1
    labels[20:30, 30:45] = 2
    image = np.random.default_rng(0).integers(0, 100, size=(40, 60)).astype(np.uint16)
    fig = overlay_figure(image, labels, "A_nuclei")
    return ApproachFigures(figures=[fig], counts={"A_nuclei": count_objects(labels)})


def test_report_has_every_part_of_the_session() -> None:
    html = render_report(
        make_session(),
        figures={"A": small_figures()},
        comparison=counts_figure({"A: A_nuclei": 2}),
        exported={"A": "pipeline.fbias.yaml"},
        commands=["fbias run pipeline.fbias.yaml INPUT... -o results"],
        generated="2026-05-04T12:00:00Z",
    )
    text = " ".join(parse(html).text)
    for part in (
        "Session plain",
        "How many? plain",
        "Ann plain, Lab",
        "Marie plain, Jean",
        "Use A plain",
        "issue plain",
        "next plain",
        "notes plain",
        "second paragraph",
        "smoothing_sigma",
        "otsu",
        "segment.nuclei",
        "Segment nuclei",  # the op's summary
        "/data/plain.ome.zarr",
        "(c=0)",
        "A_nuclei: 2",
        "fbias run pipeline.fbias.yaml INPUT... -o results",
        "proposed solution",
        "in this bundle",
        "No steps recorded.",
    ):
        assert part in text, part


def test_report_is_self_contained_and_responsive() -> None:
    html = render_report(make_session(), figures={"A": small_figures()})
    tags = parse(html).tags
    metas = {a.get("name") or a.get("http-equiv"): a.get("content") for t, a in tags if t == "meta"}
    assert metas["viewport"] == "width=device-width, initial-scale=1"
    assert "default-src 'none'" in metas["Content-Security-Policy"]
    assert "img-src data:" in metas["Content-Security-Policy"]
    for tag, attrs in tags:
        assert tag not in ("script", "link", "iframe", "object")
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                assert attrs[name].startswith("data:image/png;base64,"), (tag, attrs[name][:40])
    assert "url(" not in html and "@import" not in html and "http://" not in html
    assert "max-width" in html and "overflow-x: auto" in html
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == 1 and imgs[0]["width"] and imgs[0]["alt"]


def test_user_text_is_escaped_everywhere() -> None:
    html = render_report(make_session(XSS), figures={"A": small_figures()})
    p = parse(html)
    assert [t for t, _ in p.tags].count("script") == 0
    assert not any(k.startswith("on") for _, a in p.tags for k in a)
    assert [a["src"][:5] for t, a in p.tags if t == "img"] == ["data:"]
    joined = "".join(p.text)
    assert '<script>alert("x")</script>' in joined  # shown as text, not run


def test_figures_of_each_kind_of_result() -> None:
    labels = np.zeros((3, 30, 30), dtype=np.int32)
    labels[:, 5:10, 5:10] = 1
    image = Value(np.ones((3, 30, 30), np.uint16), "image", "tyx")
    figs = value_figures("cells", Value(labels, "labels", "tyx"), image)
    assert len(figs) == 1 and figs[0].title == "cells: 1 objects"
    assert figs[0].png.startswith(b"\x89PNG") and figs[0].size[0] > 100
    table = pd.DataFrame(
        {"label": [1, 2, 3], "area": [10, 20, 30], "eccentricity": [0.1, 0.5, 0.9]}
    )
    figs = value_figures("m", Value(table, "table", "yx"))
    assert [f.title for f in figs] == ["m: area", "m: eccentricity"]
    tracks = pd.DataFrame(
        {"track_id": [1, 1, 2, 2], "t": [0, 1, 0, 1], "y": [1, 2, 3, 4], "x": [4, 3, 2, 1.0]}
    )
    figs = value_figures("tr", Value(tracks, "tracks", "tyx"), image)
    assert figs[0].title == "tr: 2 tracks" and figs[1].title == "tr: track length"
    assert isinstance(figs[0], FigurePNG) and figs[0]._repr_png_() == figs[0].png


def test_plane_takes_first_time_first_channel_middle_z() -> None:
    data = np.arange(2 * 3 * 5 * 4 * 4).reshape(2, 3, 5, 4, 4)
    assert np.array_equal(plane(data, "tczyx"), data[0, 0, 2])
    assert np.array_equal(plane(data[:, 0, 0], "tyx", project_t=True), data[:, 0, 0].max(axis=0))
    with pytest.raises(ValueError, match="4 dimensions"):
        plane(np.zeros((2, 2, 2, 2)), "")
