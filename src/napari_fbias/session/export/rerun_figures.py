"""The report's figures: each approach rerun on the session's images, its results drawn.

Rerunning reads the images the session names, so an approach is rerun only
when every image it reads was opened in the session, or when the user
allowed reading any source (:mod:`.sources`). Otherwise, and when an image
cannot be opened or a step fails, the approach gets a note instead of figures.

The report stays small whatever the session holds (20 approaches of 100
steps would otherwise make about 2,000 figures, 300 MB of HTML and minutes
of drawing). The limits, all here:

* each approach shows the figures of its **last** results, at most
  :data:`MAX_FIGURES_PER_APPROACH`, fewer when many approaches share
  :data:`MAX_FIGURES` (each gets an equal share, at least one);
* the figures of the report weigh at most :data:`MAX_FIGURE_BYTES` (PNG);
* each comparison chart has at most :data:`MAX_CHART_BARS` bars.

Figures left out are never drawn (drawing is most of the time); the report
and the export's notes say how many were left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_fbias.io.column_table import ColumnTable
from napari_fbias.session.export.figures import FigurePNG
from napari_fbias.session.export.report import ApproachFigures
from napari_fbias.session.export.sources import SourceAccess
from napari_fbias.session.model import Session

__all__ = [
    "FIGURE_RERUN_LIMIT",
    "MAX_CHART_BARS",
    "MAX_FIGURES",
    "MAX_FIGURES_PER_APPROACH",
    "MAX_FIGURE_BYTES",
    "FigureBudget",
    "approach_figures",
    "comparison_figures",
]

#: Images larger than this (pixels x 2 bytes, from the session record) are not rerun for figures.
FIGURE_RERUN_LIMIT = 1 << 30
#: Most figures one approach shows (those of its last results).
MAX_FIGURES_PER_APPROACH = 12
#: Most figures of approaches in a report (the comparison charts come on top: at most two).
MAX_FIGURES = 60
#: Most bytes of figures (PNG, before base64) in a report: about 21 MB of HTML.
MAX_FIGURE_BYTES = 16 * 2**20
#: Most bars in one comparison chart (the comparison table lists every count).
MAX_CHART_BARS = 40


@dataclass
class FigureBudget:
    """What is left of the report's figure limits while approaches are drawn.

    Attributes
    ----------
    per_approach : int
        Figures one approach may show.
    figures : int
        Figures left for the whole report.
    nbytes : int
        Bytes of PNG left for the whole report.
    left_out : int
        Figures left out so far (not drawn).
    """

    per_approach: int
    figures: int
    nbytes: int
    left_out: int = 0

    @classmethod
    def for_report(cls, n_approaches: int) -> FigureBudget:
        """Return the budget of a report with ``n_approaches`` approaches to draw."""
        share = MAX_FIGURES // max(n_approaches, 1)
        return cls(
            per_approach=max(1, min(MAX_FIGURES_PER_APPROACH, share)),
            figures=MAX_FIGURES,
            nbytes=MAX_FIGURE_BYTES,
        )

    def take(self, plan: Sequence[Callable[[], FigurePNG]]) -> list[FigurePNG]:
        """Draw the last figures of ``plan`` that fit, in order; count the others as left out."""
        n = min(len(plan), self.per_approach, self.figures)
        out: list[FigurePNG] = []
        for draw in plan[len(plan) - n :]:
            fig = draw()
            if len(fig.png) > self.nbytes:
                continue
            self.nbytes -= len(fig.png)
            out.append(fig)
        self.figures -= len(out)
        self.left_out += len(plan) - len(out)
        return out

    def summary(self) -> str:
        """Say what was left out of the report (empty when nothing was)."""
        if not self.left_out:
            return ""
        return (
            f"report.html shows the figures of the last results of each approach only (at most "
            f"{self.per_approach} per approach, {MAX_FIGURES} in all, "
            f"{MAX_FIGURE_BYTES // 2**20} MiB); {self.left_out:,} figures were left out "
            "to keep it small: rerun a pipeline to see every result"
        )


def _no_figures(key: str, why: str) -> ApproachFigures:
    return ApproachFigures(
        note=f"No figures: approach {key} could not be rerun on its images ({why})."
    )


def approach_figures(
    session: Session, key: str, access: SourceAccess, budget: FigureBudget
) -> ApproachFigures:
    """Rerun an approach's pipeline on the session's images and draw its results.

    Problems (an image that may not be read, one that cannot be opened any
    more, a step that fails) do not stop the export: they become the
    ``note`` shown in the report. Only the figures ``budget`` allows are drawn.
    """
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.pipeline.errors import PipelineError, PipelineRunError
    from napari_fbias.session.errors import SessionError
    from napari_fbias.session.export.errors import ExportError
    from napari_fbias.session.export.pipeline_inputs import pipeline_images
    from napari_fbias.session.to_pipeline import approach_to_pipeline

    try:
        pipeline = approach_to_pipeline(session, key)
        images = pipeline_images(session, key, pipeline)
        sources = {}
        for name, image in images.items():
            ref = session.image(image)
            if ref is None or not ref.source:
                raise ExportError(f"image {image!r} has no recorded source")
            if ref.shape and 2 * math.prod(ref.shape) > FIGURE_RERUN_LIMIT:
                raise ExportError(
                    f"image {image!r} ({' x '.join(map(str, ref.shape))}) is too large to "
                    "rerun for the report; run the pipeline with `fbias run` to see its results"
                )
            sources[name] = ref.source
        refused = access.refused({images[n]: s for n, s in sources.items()})
        if refused:
            return ApproachFigures(
                note=f"No figures for approach {key}: {access.why(refused)}.", refused=refused
            )
        results = pipeline.run(**sources)
    except (
        SessionError,
        PipelineError,
        PipelineRunError,
        FbiasIOError,
        OSError,
        ValueError,
    ) as exc:
        return _no_figures(key, " ".join(str(exc).split()))
    except Exception as exc:  # figures are optional: a reader's bug must not stop the export
        return _no_figures(key, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    return _draw(session, images, results, budget)


def _draw(
    session: Session, images: Mapping[str, str], results: Any, budget: FigureBudget
) -> ApproachFigures:
    """Count and draw an approach's rerun results (the last ones the budget allows)."""
    from napari_fbias.session.export.figures import count_objects, figure_plan

    out = ApproachFigures()
    changed = []
    for name, image in images.items():
        ref = session.image(image)
        got = results.record["inputs"].get(name, {}).get("sha256")
        if ref is not None and ref.checksum and got and ref.checksum != f"sha256:{got}":
            changed.append(image)
    if changed:
        out.note = (
            "The figures were made from the images as they are now; the pixels of "
            + ", ".join(repr(c) for c in changed)
            + " differ from those recorded during the session."
        )
    first_image = next((v for v in results.inputs.values() if v.kind == "image"), None)
    plan: list[Callable[[], FigurePNG]] = []
    for name in results:
        value = results.value(name)
        fed = results.feeds.get(name, {})
        background = next((v for v in fed.values() if v.kind == "image"), first_image)
        plan += figure_plan(name, value, background)
        if value.kind == "labels":
            out.counts[name] = count_objects(value.data)
        elif value.kind == "tracks" and "track_id" in value.data.columns:
            out.tracks[name] = _n_tracks(value.data)
    before = budget.left_out
    out.figures = budget.take(plan)
    out.left_out = budget.left_out - before
    return out


def comparison_figures(figs: Mapping[str, ApproachFigures]) -> list[FigurePNG]:
    """Bar charts of what each approach found: one of objects, one of tracks (if any).

    A chart shows at most :data:`MAX_CHART_BARS` bars: the last results of
    each approach first (its final count), then earlier ones while room is left.
    """
    from napari_fbias.session.export.figures import counts_figure

    out = []
    for attr, title, unit in (
        ("counts", "Objects found per approach", "objects"),
        ("tracks", "Tracks found per approach", "tracks"),
    ):
        counts = _chart_bars({k: getattr(f, attr) for k, f in figs.items()})
        if counts:
            out.append(counts_figure(counts, title, unit))
    return out


def _chart_bars(per_approach: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Pick at most MAX_CHART_BARS bars, the last results of each approach first."""
    ranked: list[tuple[int, int, str, int]] = []  # (rank from the end, order, label, count)
    order = 0
    for key, counts in per_approach.items():
        names = list(counts)
        for rank, name in enumerate(reversed(names)):
            ranked.append((rank, order + len(names) - 1 - rank, f"{key}: {name}", counts[name]))
        order += len(names)
    kept = sorted(sorted(ranked)[:MAX_CHART_BARS], key=lambda r: r[1])
    return {label: n for _, _, label, n in kept}


def _n_tracks(tracks: Any) -> int:
    """Count the track ids of a tracks table (in memory, or on disk: its one column read)."""
    if isinstance(tracks, ColumnTable):  # only track_id is read, not the table
        return int(np.unique(tracks.column("track_id")).size)
    return int(tracks["track_id"].nunique())
