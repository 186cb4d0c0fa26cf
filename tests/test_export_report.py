"""The HTML report: every part of the session, escaped, self-contained, responsive."""

from __future__ import annotations

import io
import re
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
        charts=[counts_figure({"A: A_nuclei": 2})],
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


# --- issue 11, item 9: results as tables, one chart per kind, outlines, sources, who ------
class Tables(HTMLParser):
    """Every table of a page, with the id of the section (``h2``) it is in."""

    def __init__(self) -> None:
        super().__init__()
        self.section = ""
        self.tables: list[tuple[str, list[str], list[list[str]]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self.section = dict(attrs).get("id") or ""
        elif tag == "table":
            self.tables.append((self.section, [], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._head = [], tag == "th"
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            _, head, rows = self.tables[-1]
            if self._head and not head:
                head.extend(self._row)
            else:
                rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[tuple[str, list[str], list[list[str]]]]:
    p = Tables()
    p.feed(html)
    return p.tables


def body_text(html: str, *, without: str = "") -> str:
    """The page's text inside <main> (no style sheet), optionally without one element kind."""
    main = html[html.index("<main>") :]
    if without:
        main = re.sub(rf"<{without}\b.*?</{without}>", "", main, flags=re.S)
    return " ".join(parse(main).text)


def shared_session(**changes: object) -> Session:
    """Two analysts in two napari windows; B's analyst was not typed in."""
    base = make_session()
    a, b = base.approaches
    session = Session(
        **{
            **{f: getattr(base, f) for f in ("id", "title", "user", "question", "created")},
            "analysts": ("Marie", "Jean"),
            "images": (
                ImageRef(
                    name="img",
                    source="/home/marie/Desktop/project x/cells_01.ome.tif",
                    axes="cyx",
                    shape=(2, 8, 8),
                ),
                ImageRef(
                    name="movie",
                    source="https://data.example.org/lab/movie.ome.zarr",
                    kind="image",
                    axes="tyx",
                    shape=(4, 8, 8),
                ),
            ),
            "approaches": (
                Approach(
                    key="A",
                    title="classical",
                    analyst="Marie",
                    steps=a.steps,
                    client="c0ffee000001",
                    result={
                        "objects": {"A: nuclei": 57, "A: cells": 12480},
                        "f1_vs_ground_truth": 0.93124,
                        "median_area_um2": 52.1,
                        "done": True,
                    },
                ),
                Approach(key="B", title="tracking", client="beef00000002", result={"tracks": 7}),
                Approach(key="C", title="tracking again", analyst="Jean", client="beef00000002"),
            ),
            **changes,
        }
    )
    return session


def test_results_are_a_table_per_approach_not_python_text() -> None:
    html = render_report(shared_session())
    found = {sec: (head, rows) for sec, head, rows in tables(html) if head[:1] == ["Result"]}
    assert set(found) == {"approach-A", "approach-B"}  # C has no result: no table
    head, rows = found["approach-A"]
    assert head == ["Result", "Value", "Unit"]
    assert rows == [
        ["Objects: A: nuclei", "57", "objects"],
        ["Objects: A: cells", "12,480", "objects"],
        ["F1 vs ground truth", "0.9312", "score, 0 to 1"],
        ["Median area", "52.1", "µm²"],
        ["Done", "yes", ""],
    ]
    assert found["approach-B"][1] == [["Tracks", "7", "tracks"]]
    text = body_text(html)
    assert "{" not in text and "}" not in text and "': " not in text  # no Python repr


def test_result_rows_name_value_unit() -> None:
    from napari_fbias.session.export.results import ResultRow, result_rows

    rows = result_rows(
        {
            "speed_um_s": 0.5,
            "true_tracks": 13,
            "n_cells": 4,
            "area_px": 1e6,
            "score": None,
            "labels": [1, 2],
            "notes at https://h.org/x": "kept as text",
        }
    )
    assert rows == [
        ResultRow("Speed", "0.5", "µm/s"),
        ResultRow("True tracks", "13", "tracks"),
        ResultRow("N cells", "4", "cells"),
        ResultRow("Area", "1,000,000", "pixels"),
        ResultRow("Score", "none", ""),
        ResultRow("Labels", "1, 2", "labels"),
        ResultRow("Notes at https://h.org/x", "kept as text", ""),
    ]


def test_each_approach_says_which_analyst_did_it() -> None:
    html = render_report(shared_session())
    metas = re.findall(r'<h2 id="approach-(\w)">.*?<p class="meta">(.*?)</p>', html, re.S)
    by = {k: " ".join(parse(m).text) for k, m in metas}
    assert by["A"].startswith("by Marie (recorded in napari c0ffee000001)")
    # B's analyst was not typed in: the same napari recorded Jean's approach C
    assert by["B"].startswith("by Jean (who recorded other approaches in the same napari)")
    assert by["C"].startswith("by Jean (recorded in napari beef00000002)")
    compare = next(rows for sec, head, rows in tables(html) if sec == "compare")
    assert [r[2] for r in compare] == [
        "Marie (recorded in napari c0ffee000001)",
        "Jean (who recorded other approaches in the same napari)",
        "Jean (recorded in napari beef00000002)",
    ]
    # one napari, nobody named: the only analyst present; else it says it is not known
    alone = Approach(key="A", title="t")
    s = shared_session(approaches=(alone,), analysts=("Marie",))
    assert "by Marie (the only analyst present)" in body_text(render_report(s))
    s = shared_session(approaches=(alone,), analysts=())
    assert "by analyst not recorded" in body_text(render_report(s))


def test_image_sources_are_file_names_with_the_full_source_aside() -> None:
    html = render_report(shared_session())
    images = next((head, rows) for sec, head, rows in tables(html) if sec == "images")
    assert images[0][4] == "File"
    assert [r[4] for r in images[1]] == ["cells_01.ome.tif", "movie.ome.zarr (data.example.org)"]
    main_text = body_text(html, without="details")
    assert "/home/marie" not in main_text and "https://data.example.org" not in main_text
    # the full source: on hover, and in the collapsed list
    assert 'title="/home/marie/Desktop/project x/cells_01.ome.tif"' in html
    details = re.search(r"<details.*?</details>", html, re.S).group(0)
    assert "/home/marie/Desktop/project x/cells_01.ome.tif" in " ".join(parse(details).text)
    assert "https://data.example.org/lab/movie.ome.zarr" in " ".join(parse(details).text)


def test_source_name() -> None:
    from napari_fbias.session.export.report import source_name

    assert source_name("C:\\Users\\ann\\img.tif") == "img.tif"
    assert source_name("/data/x.ome.zarr/") == "x.ome.zarr"
    assert source_name("omero://omero.example.org/Image:12") == "Image:12 (omero.example.org)"
    assert source_name("s3://bucket/a/b.ome.zarr?v=2") == "b.ome.zarr (bucket)"
    assert source_name("") == ""


def bright_nuclei() -> tuple[np.ndarray, np.ndarray]:
    """White nuclei on a grey background; odd label ids (the pale colours of tab20)."""
    from skimage.draw import disk

    image = np.full((160, 160), 300.0)
    image[:16, :16] = 0  # something darker, so that the background is grey
    labels = np.zeros(image.shape, np.int32)
    for i, centre in enumerate([(45, 50), (45, 115), (110, 60), (115, 120)]):
        rr, cc = disk(centre, 16)
        labels[rr, cc] = 2 * i + 1
        image[rr, cc] = 1000
    return image, labels


def test_outlines_stand_out_on_bright_nuclei() -> None:
    from matplotlib.colors import rgb_to_hsv
    from matplotlib.image import imread
    from scipy.ndimage import binary_dilation
    from scipy.ndimage import label as ndimage_label

    image, labels = bright_nuclei()
    fig = overlay_figure(image, labels, "bright")
    rgb = imread(io.BytesIO(fig.png))[..., :3]
    hsv = rgb_to_hsv(rgb)
    white = rgb.min(axis=2) > 0.97
    parts, n = ndimage_label(white)
    page = {*parts[0], *parts[-1], *parts[:, 0], *parts[:, -1]}  # the page around the plot
    white = np.isin(parts, [k for k in range(1, n + 1) if k not in page])
    rim = binary_dilation(white, iterations=12) & ~white
    vivid = (hsv[..., 1] > 0.8) & (hsv[..., 2] > 0.8)
    dark = rgb.max(axis=2) < 0.15
    assert white.sum() > 4 * 1000  # the four nuclei are drawn white
    # around each white nucleus: a saturated line and a dark edge, not a pale line
    assert vivid[rim].mean() > 0.15, vivid[rim].mean()
    assert dark[rim].mean() > 0.15, dark[rim].mean()


def test_outline_overlay_colours_each_object_and_edges_it_dark() -> None:
    from napari_fbias.session.export.figures import outline_rgba

    _, labels = bright_nuclei()
    rgba = outline_rgba(labels)
    line = rgba[..., 3] == 1
    edge = (rgba[..., 3] > 0) & ~line
    assert line.any() and edge.any()
    assert np.all(labels[line] > 0)  # drawn inside the objects
    colours = rgba[line, :3]
    assert np.all(colours.max(axis=1) == 1) and np.all(colours.min(axis=1) == 0)  # saturated
    assert np.all(rgba[edge, :3] == 0)  # the edge is black
    per_label = {
        int(k): tuple(rgba[labels == k][rgba[labels == k][:, 3] == 1][0, :3]) for k in (1, 3)
    }
    assert per_label[1] != per_label[3]


def test_counts_chart_says_what_it_counts() -> None:
    fig = counts_figure({"B: tracks": 7}, "Tracks found per approach", "tracks")
    assert fig.title == "Tracks found per approach" and fig.caption == "B: tracks: 7 tracks"


@pytest.fixture(scope="module")
def bundle_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    from helpers.bundle_sessions import record_two_kinds
    from napari_fbias.session.export import export_bundle

    root = tmp_path_factory.mktemp("two_kinds")
    result = export_bundle(record_two_kinds(root), root / "bundle", approaches=["A", "B"])
    assert result.notes == ()
    return (result.folder / "report.html").read_text(encoding="utf-8")


def test_bundle_report_has_results_tables_and_one_chart_per_kind(bundle_report: str) -> None:
    html = bundle_report
    results = {sec: rows for sec, head, rows in tables(html) if head[:1] == ["Result"]}
    assert results["approach-A"][:3] == [
        ["Objects: A: nuclei", "16", "objects"],
        ["F1 vs ground truth", "0.9312", "score, 0 to 1"],
        ["Median area", "52.14", "µm²"],
    ]
    assert results["approach-A"][3][0] == "Objects found on rerun: A_nuclei"
    assert results["approach-B"][:2] == [
        ["Tracks", "12", "tracks"],
        ["True tracks", "13", "tracks"],
    ]
    assert results["approach-B"][2][0] == "Tracks found on rerun: B_tracks"
    # the comparison: one chart of objects, one of tracks, never one mixing them
    charts = re.search(r'<div class="charts">(.*?)</div></div>', html, re.S).group(1)
    imgs = [a for t, a in parse(charts).tags if t == "img"]
    assert [i["alt"] for i in imgs] == ["Objects found per approach", "Tracks found per approach"]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", charts)
    assert "A: A_nuclei: 16 objects" in captions[0] and "B_tracks" not in captions[0]
    assert "B: B_tracks: " in captions[1] and "tracks" in captions[1]
    assert "A_nuclei" not in captions[1]
    compare = next((head, rows) for sec, head, rows in tables(html) if sec == "compare")
    assert compare[0][4:] == ["Objects found on rerun", "Tracks found on rerun"]
    assert [r[2] for r in compare[1]] == [
        f"{name} (recorded in napari {c})"
        for name, c in re.findall(r"by (Marie|Jean) \(recorded in napari (\w+)\)", html)[:2]
    ]
    # image sources by file name; the machine's paths only in the collapsed list
    assert "/tmp" not in body_text(html, without="details").replace("/tmp/", "")
    images = next(rows for sec, head, rows in tables(html) if sec == "images")
    assert [r[4] for r in images] == ["nuclei_01.ome.tif", "spots_movie.ome.zarr"]


def test_report_shows_the_scoreboard_against_ground_truth() -> None:
    from dataclasses import replace

    s = make_session(XSS)
    a = replace(
        s.approaches[0],
        result={
            "objects": 3,
            "ground_truth": {"truth": f"gt {XSS}", "layer": f"A: nuclei {XSS}",
                             "partial": True, "ap50": 0.8125, "f1": 0.9, "mean_iou": 0.77},
        },
    )  # fmt: skip
    html = render_report(replace(s, approaches=(a, *s.approaches[1:])))
    assert "Scoreboard against ground truth" in html
    rows = [r for _, head, rows in tables(html) if "AP@0.5" in head for r in rows]
    assert rows and rows[0][3:] == ["0.812", "0.900", "0.770"]
    assert "<script>" not in html and "(partial)" in html
    # no ground truth recorded: no scoreboard
    assert "Scoreboard against ground truth" not in render_report(make_session())


def test_a_plate_result_is_a_row_and_a_heat_map() -> None:
    from dataclasses import replace

    good = {
        "column": "cells_objects",
        "rows": ["A", "B"],
        "columns": ["1", "2"],
        "values": [[3.0, 4.5], [5.0, None]],
        "fields": 6,
        "failed": 1,
    }
    hostile = {**good, "values": [["<script>", 1], [1, 1]]}
    base = shared_session()
    a = base.approaches[0]
    plates = {f"screen {XSS}": good, "broken": hostile}
    session = replace(
        base, approaches=(replace(a, result={"plates": plates}), *base.approaches[1:])
    )
    html = render_report(session)
    found = {sec: rows for sec, head, rows in tables(html) if head[:1] == ["Result"]}
    rows = found["approach-A"]
    assert rows[0] == [
        f"Plate screen {XSS}",
        "Cells objects: mean 4.167 over 3 wells (1 fields failed)",
        "",
    ]
    assert rows[1][0] == "Plate broken" and rows[1][1].startswith("not shown: ")
    assert "<h3>Plates</h3>" in html
    figures = [t for t in parse(html).tags if t[0] == "img" and "Plate" in (t[1].get("alt") or "")]
    assert len(figures) == 1  # the broken one is not drawn
    assert figures[0][1]["src"].startswith("data:image/png;base64,")
    assert "<script>" not in html.split("<main>", 1)[1]


def test_report_says_what_the_automatic_settings_chose_escaped() -> None:
    from dataclasses import replace

    s = make_session(XSS)
    a = s.approaches[0]
    step = replace(
        a.steps[0],
        params={"smoothing_sigma": None, "min_size": None, "threshold_method": "otsu"},
        chosen={"smoothing_sigma": 2.6, "min_size": 98, f"object_diameter{XSS}": 38.0},
    )
    html = render_report(replace(s, approaches=(replace(a, steps=(step,)), *s.approaches[1:])))
    text = re.sub(r"\s+", " ", body_text(html))
    assert "smoothing_sigma = auto" in text and "min_size = auto" in text
    assert "auto: chose smoothing sigma 2.6, min size 98 (object diameter" in text
    assert "<script>" not in html.split("<main>", 1)[1]
