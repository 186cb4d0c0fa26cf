"""The HTML report of a delivery bundle (``report.html``), for the user who asked.

One self-contained page: the question, who attended, each approach (and who
did it) with its results as a table, its steps, settings and figures, a chart
per kind of count (objects, tracks), the solution proposed, the issues raised
and the next steps, and how to rerun the pipeline. Images are named by their
file name; where they were read from is in a collapsed list (and on hover),
not in the main text. Figures are embedded as
``data:`` URIs, the style sheet is inline and a Content-Security-Policy
forbids any other request, so the page shows the same offline, by e-mail or
on a phone (viewport meta, a readable column width, tables that scroll).
Every piece of text from the session is escaped with :func:`html.escape`
after losing its control and direction-override characters (:func:`esc`).
"""

from __future__ import annotations

import html
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from string import Template
from typing import Any
from urllib.parse import urlsplit

from napari_fbias.io.text_limits import printable_text
from napari_fbias.ops.chosen import describe_chosen
from napari_fbias.session.export.figures import FigurePNG
from napari_fbias.session.export.results import PLATES, result_rows
from napari_fbias.session.model import Approach, Session

TEMPLATE_NAME = "report_template.html"


@dataclass
class ApproachFigures:
    """What the report shows for one approach besides its record.

    Attributes
    ----------
    figures : list of FigurePNG
        Overlays, histograms, track plots of its results.
    counts : dict of str to int
        Objects per labels result, for the comparison.
    tracks : dict of str to int
        Tracks per tracks result, for the comparison (never mixed with objects).
    note : str
        Why there are no figures (e.g. the images could not be opened).
    refused : list of str
        Images not read because they were not opened in the session (see
        :mod:`~napari_fbias.session.export.sources`).
    left_out : int
        Figures of its results left out to keep the report small.
    """

    figures: list[FigurePNG] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    tracks: dict[str, int] = field(default_factory=dict)
    note: str = ""
    refused: list[str] = field(default_factory=list)
    left_out: int = 0


def esc(text: Any) -> str:
    """Escape text for HTML (quotes too), without control or direction-override characters."""
    return html.escape(printable_text(str(text)), quote=True)


def _template() -> Template:
    text = (
        importlib.resources.files("napari_fbias.session.export")
        .joinpath(TEMPLATE_NAME)
        .read_text(encoding="utf-8")
    )
    return Template(text)


def _paragraphs(text: str) -> str:
    parts = [p.strip() for p in str(text).split("\n\n") if p.strip()]
    return "".join(f"<p>{esc(p).replace(chr(10), '<br>')}</p>" for p in parts)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a table in a scrolling wrapper; cells are HTML escaped by the caller."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    table = f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-wrap">{table}</div>'


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _selection(select: Mapping[str, int]) -> str:
    return " (" + ", ".join(f"{a}={n}" for a, n in select.items()) + ")" if select else ""


def _figures_html(figs: Sequence[FigurePNG]) -> str:
    items = []
    for f in figs:
        w, h = f.size
        cap = esc(f.title) + (f" &mdash; {esc(f.caption)}" if f.caption else "")
        items.append(
            f'<figure><img src="{f.data_uri()}" alt="{esc(f.title)}" width="{w}" height="{h}" '
            f'loading="eager"><figcaption>{cap}</figcaption></figure>'
        )
    return f'<div class="figures">{"".join(items)}</div>' if items else ""


def source_name(source: str) -> str:
    """Return the short name of an image source: its file name (and host for a URL).

    ``/home/ann/data/cells.ome.zarr`` -> ``cells.ome.zarr``;
    ``https://h.org/x/cells.ome.zarr`` -> ``cells.ome.zarr (h.org)``;
    ``omero://omero.example.org/Image:12`` -> ``Image:12 (omero.example.org)``.
    """
    text = str(source).strip()
    if not text:
        return ""
    if "://" in text:
        parts = urlsplit(text)
        name = [p for p in parts.path.split("/") if p]
        host = parts.hostname or ""
        base = name[-1] if name else host
        return f"{base} ({host})" if host and base != host else base
    name = [p for p in re.split(r"[\\/]+", text) if p]
    return name[-1] if name else text


def _sources_html(images: Sequence[Any]) -> str:
    """Return the images' full sources as a collapsed list (under the images table)."""
    items = "".join(
        f"<li>{esc(i.name)}: <code>{esc(i.source)}</code></li>" for i in images if i.source
    )
    if not items:
        return ""
    return (
        '<details class="sources"><summary>Where the images were read from</summary>'
        f"<ul>{items}</ul></details>"
    )


def author(session: Session, approach: Approach) -> str:
    """Say who did an approach (plain text), in a session one or several analysts shared.

    The recorded analyst; else the analyst of another approach recorded in
    the same napari (:attr:`Approach.client`); else the only analyst
    present; else says that it is not recorded. When several napari windows
    recorded the session, which one recorded the approach is added.
    """
    clients = {a.client for a in session.approaches if a.client}
    where = f" (recorded in napari {approach.client})" if len(clients) > 1 else ""
    if approach.analyst:
        return approach.analyst + where
    if approach.client:
        same = {
            a.analyst
            for a in session.approaches
            if a.client == approach.client and a.analyst and a is not approach
        }
        if len(same) == 1:
            return f"{same.pop()} (who recorded other approaches in the same napari)"
        return f"the analyst at napari {approach.client} (name not recorded)"
    if len(session.analysts) == 1:
        return f"{session.analysts[0]} (the only analyst present)"
    return "analyst not recorded"


def _results_table(approach: Approach, fig: ApproachFigures | None) -> str:
    rows = [[esc(r.name), esc(r.value), esc(r.unit)] for r in result_rows(approach.result)]
    if fig is not None:
        rows += [
            [esc(f"Objects found on rerun: {k}"), f"{v:,}", "objects"]
            for k, v in fig.counts.items()
        ]
        rows += [
            [esc(f"Tracks found on rerun: {k}"), f"{v:,}", "tracks"] for k, v in fig.tracks.items()
        ]
    if not rows:
        return ""
    return (
        '<h3>Results</h3><div class="results">'
        + _table(["Result", "Value", "Unit"], rows)
        + "</div>"
    )


#: Result key of an approach's scores against a ground truth (recorded by the Compare view).
TRUTH_KEY = "ground_truth"


def _score_text(value: Any) -> str:
    return (
        f"{value:.3f}"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else "&ndash;"
    )


def _truth_table(session: Session) -> str:
    """Return the scoreboard against ground truth: AP@0.5, F1, mean IoU per approach."""
    rows = []
    for a in session.approaches:
        gt = a.result.get(TRUTH_KEY)
        if not isinstance(gt, Mapping) or "ap50" not in gt:
            continue
        truth = esc(gt.get("truth", "")) + (" (partial)" if gt.get("partial") else "")
        rows.append([esc(a.key), esc(gt.get("layer", "")), truth, _score_text(gt.get("ap50")),
                     _score_text(gt.get("f1")), _score_text(gt.get("mean_iou"))])  # fmt: skip
    if not rows:
        return ""
    head = ["Approach", "Result scored", "Ground truth", "AP@0.5", "F1", "Mean IoU"]
    return "<h3>Scoreboard against ground truth</h3>" + _table(head, rows)


def _plate_heatmaps(approach: Approach) -> str:
    """Return the heat map of each plate the approach ran over (recorded by a napari batch)."""
    from napari_fbias.pipeline.plate_tables import check_plate_result, heatmap_png

    plates = approach.result.get(PLATES)
    if not isinstance(plates, Mapping):
        return ""
    figs = []
    for plate, found in list(plates.items())[:MAX_PLATES_SHOWN]:
        try:
            r = check_plate_result(found)
        except ValueError:
            continue  # said in the results table
        column = str(r.get("column", ""))
        title = f"Plate {plate}: {column}"
        caption = f"mean over each well's fields; {r.get('fields', '?')} fields"
        figs.append(FigurePNG(heatmap_png(r, title), title, caption))
    return ("<h3>Plates</h3>" + _figures_html(figs)) if figs else ""


#: Most plate heat maps drawn per approach.
MAX_PLATES_SHOWN = 8


def _found(counts: Mapping[str, int]) -> str:
    return "<br>".join(esc(f"{k}: {v:,}") for k, v in counts.items()) or "&ndash;"


def _steps_table(approach: Approach) -> str:
    from napari_fbias.ops.registry import UnknownOpError, get_op

    rows = []
    for i, st in enumerate(approach.steps, start=1):
        try:
            spec = get_op(st.op)
            what = f"<strong>{esc(spec.title)}</strong><br><code>{esc(st.op)}</code>"
            if spec.summary:
                what += f"<br>{esc(spec.summary)}"
        except UnknownOpError:
            what = f"<code>{esc(st.op)}</code>"
        reads = "<br>".join(
            esc(f"{k}: {v.layer or v.ref}") + esc(_selection(v.select))
            for k, v in st.inputs.items()
        )
        settings = "<br>".join(
            f"<code>{esc(k)}</code> = "
            + esc("auto" if v is None and k in st.chosen else _value_text(v))
            for k, v in st.params.items()
        )
        if st.chosen:  # what the automatic settings came to (ops/chosen.py)
            auto = esc(f"auto: chose {describe_chosen(st.chosen)}")
            settings = (settings + "<br>" if settings else "") + f"<em>{auto}</em>"
        made = esc(st.output_layer or "") + (" <em>(stale)</em>" if st.stale else "")
        rows.append([str(i), what, reads, settings or "&ndash;", made])
    return _table(["#", "Operation", "Reads", "Settings", "Result"], rows)


def render_report(
    session: Session,
    *,
    figures: Mapping[str, ApproachFigures] | None = None,
    charts: Sequence[FigurePNG] = (),
    exported: Mapping[str, str] | None = None,
    commands: Sequence[str] = (),
    generated: str = "",
    figures_note: str = "",
) -> str:
    """Return the report page of a session.

    Parameters
    ----------
    session : Session
        The session record (credentials already removed).
    figures : mapping of str to ApproachFigures, optional
        Per approach key: figures and counts of its results.
    charts : sequence of FigurePNG
        Charts comparing the approaches, one per kind of count (objects, tracks).
    exported : mapping of str to str, optional
        Approach key -> its pipeline file in the bundle.
    commands : sequence of str
        Commands to rerun the pipeline (shown verbatim, escaped).
    generated : str
        Time the report was made (UTC ISO).
    figures_note : str
        What the figures leave out, or why some are missing, for the whole
        report (shown above the comparison).

    Returns
    -------
    str
        The HTML page.
    """
    from napari_fbias import __version__

    figures = dict(figures or {})
    exported = dict(exported or {})
    s = session
    title = s.title or "Open-desk session"
    parts: list[str] = [f"<h1>{esc(title)}</h1>"]
    parts.append(
        f'<p class="meta">Open-desk session of {esc(s.created[:10] or "unknown date")} '
        f"&middot; report generated {esc(generated[:19].replace('T', ' '))} UTC</p>"
    )
    facts = []
    user = ", ".join(x for x in (s.user.name, s.user.lab) if x)
    if user:
        facts.append(("For", esc(user)))
    if s.question:
        facts.append(("Question", esc(s.question)))
    if s.analysts:
        facts.append(("Analysts", esc(", ".join(s.analysts))))
    facts.append(("Approaches tried", esc(str(len(s.approaches)))))
    if s.follows:
        f = s.follows
        facts.append(
            (
                "Follow-up of",
                f"{esc(f.get('title') or 'an earlier session')} of "
                f"{esc((f.get('created') or '')[:10] or 'unknown date')}"
                + (f" &middot; <code>{esc(f['link'])}</code>" if f.get("link") else ""),
            )
        )
    parts.append(
        '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    )
    if s.solution is not None and (s.solution.text or s.solution.approach):
        which = f" (approach {esc(s.solution.approach)})" if s.solution.approach else ""
        parts.append(
            f'<div class="box"><strong>Solution proposed{which}</strong>'
            f"{_paragraphs(s.solution.text)}</div>"
        )
    # images
    parts.append('<h2 id="images">Images</h2>')
    if s.images:
        rows = [
            [
                esc(i.name),
                esc(i.kind),
                esc(i.axes),
                esc(" x ".join(str(n) for n in i.shape)),
                f'<span title="{esc(i.source)}">{esc(source_name(i.source))}</span>'
                if i.source
                else "not recorded",
                f"<code>{esc(i.checksum or 'not recorded')}</code>",
            ]
            for i in s.images
        ]
        parts.append(_table(["Name", "Kind", "Axes", "Shape", "File", "Pixel checksum"], rows))
        parts.append(_sources_html(s.images))
    else:
        parts.append("<p>No image was recorded.</p>")
    # comparison
    parts.append('<h2 id="compare">Approaches compared</h2>')
    if figures_note:
        parts.append(f'<p class="note">{esc(figures_note)}</p>')
    rows = []
    for a in s.approaches:
        fig = figures.get(a.key, ApproachFigures())
        rows.append(
            [
                esc(a.key),
                esc(a.title) if a.title else "&ndash;",
                esc(author(s, a)),
                str(len(a.steps)),
                _found(fig.counts),
                _found(fig.tracks),
            ]
        )
    if rows:
        head = [
            "Approach",
            "Title",
            "By",
            "Steps",
            "Objects found on rerun",
            "Tracks found on rerun",
        ]
        parts.append(_table(head, rows))
    else:
        parts.append("<p>No approach was recorded.</p>")
    parts.append(_truth_table(s))
    if charts:
        parts.append(f'<div class="charts">{_figures_html(charts)}</div>')
    # each approach
    for a in s.approaches:
        badges = ""
        if s.solution is not None and s.solution.approach == a.key:
            badges += '<span class="badge">proposed solution</span>'
        if a.key in exported:
            badges += '<span class="badge soft">in this bundle</span>'
        head = f"Approach {esc(a.key)}" + (f": {esc(a.title)}" if a.title else "")
        parts.append(f'<h2 id="approach-{esc(a.key)}">{head}{badges}</h2>')
        meta = [f"by {esc(author(s, a))}"]
        if a.key in exported:
            meta.append(f"pipeline file <code>{esc(exported[a.key])}</code>")
        parts.append(f'<p class="meta">{" &middot; ".join(meta)}</p>')
        fig = figures.get(a.key)
        if a.notes:
            parts.append("<h3>Notes</h3>" + _paragraphs(a.notes))
        parts.append(_results_table(a, fig))
        parts.append(_plate_heatmaps(a))
        if a.steps:
            parts.append("<h3>Steps</h3>" + _steps_table(a))
        else:
            parts.append("<p>No steps recorded.</p>")
        if fig is not None and fig.figures:
            parts.append("<h3>Figures</h3>" + _figures_html(fig.figures))
        if fig is not None and fig.left_out:
            parts.append(
                f'<p class="note">{fig.left_out:,} more figures of this approach\'s results '
                "were left out to keep the report small (those shown are of its last results); "
                "rerun its pipeline to see them all.</p>"
            )
        if fig is not None and fig.note:
            parts.append(f'<p class="note">{esc(fig.note)}</p>')
    parts.append('<h2 id="issues">Issues raised</h2>')
    parts.append(
        "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in s.issues) + "</ul>"
        if s.issues
        else "<p>None recorded.</p>"
    )
    parts.append('<h2 id="next-steps">Next steps</h2>')
    parts.append(
        "<ol>" + "".join(f"<li>{esc(i)}</li>" for i in s.next_steps) + "</ol>"
        if s.next_steps
        else "<p>None recorded.</p>"
    )
    if commands:
        parts.append('<h2 id="rerun">Rerun the pipeline</h2>')
        parts.append(
            "<p>See <code>README.md</code> in this bundle for the installation; then:</p>"
            f"<pre>{esc(chr(10).join(commands))}</pre>"
        )
    footer = f"Made with napari-fbias {esc(__version__)} from session <code>{esc(s.id)}</code>."
    return _template().substitute(
        title=esc(title),
        generator=esc(f"napari-fbias {__version__}"),
        body="\n".join(parts),
        footer=footer,
    )
