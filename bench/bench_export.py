"""Benchmark: exporting a session's delivery bundle (goal: under 2 s without figures).

Records a session like the open-desk demo does (the ``nuclei_2d`` sample,
two approaches: the ``segment.nuclei`` recipe with measurements, and
gaussian -> threshold -> watershed split; a solution, issues and next
steps), then times :func:`napari_fbias.session.export.export_bundle` into a
fresh folder: without figures (pipeline, script, notebook, report,
session.yaml, environment lock, RO-Crate, checksums of files and of the
input pixels), and with figures (each approach rerun on its image and drawn)
for comparison. Both approaches are exported. Median of ``--repeat`` rounds.

How long recording a step takes is ``bench_record.py``.

    python bench/bench_export.py [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import Row, add_common_args, alternate, fmt_seconds, median, print_machine, print_rows


def record_session(folder: Path) -> Path:
    """Record a two-approach session on the nuclei sample; return its folder."""
    from napari_fbias.io.open import open_image
    from napari_fbias.io.samples import sample_path
    from napari_fbias.session import SessionRecorder

    image = open_image(sample_path("nuclei_2d"))
    rec = SessionRecorder.start(
        "export benchmark",
        user_name="Bench User",
        question="How many nuclei, how big?",
        analysts=["A. Analyst"],
        folder=folder,
    )
    name = rec.add_image(image)
    rec.add_approach("nuclei recipe", "A. Analyst")
    rec.record_step("segment.nuclei", {}, {"image": name}, "A: nuclei")
    rec.record_step(
        "measure.regionprops", {}, {"labels": "A: nuclei", "image": name}, "A: measurements"
    )
    rec.set_result({"objects": 60})
    rec.add_approach("threshold + watershed", "A. Analyst")
    rec.record_step("preprocess.gaussian", {"sigma": 1.0}, {"image": name}, "B: smooth")
    rec.record_step("segment.threshold", {"min_size": 20}, {"image": "B: smooth"}, "B: mask")
    rec.record_step(
        "segment.watershed_split", {}, {"labels": "B: mask", "image": "B: smooth"}, "B: nuclei"
    )
    rec.set_solution("Use approach A.", approach="A")
    rec.add_issue("Higher resolution images would help.")
    rec.add_next_step("Run the pipeline on the whole data set.")
    rec.save()
    rec.close()
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--no-figures-only", action="store_true", help="skip the figures run")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat

    from napari_fbias.session.export import export_bundle

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        session = record_session(root / "session")
        counter = iter(range(10**6))

        def export(figures: bool) -> None:
            result = export_bundle(
                session, root / f"bundle{next(counter)}", approaches=["A", "B"], figures=figures
            )
            if not (result.folder / "report.html").is_file():
                raise AssertionError("the bundle has no report")

        funcs = {"no figures": lambda: export(False)}
        if not (args.quick or args.no_figures_only):
            funcs["figures"] = lambda: export(True)
        times = alternate(funcs, repeat)
    plain = median(times["no figures"])
    rows = [Row("export", "bundle of 2 approaches, no figures", plain, goal="< 2 s", met=plain < 2)]
    if "figures" in times:
        with_figures = median(times["figures"])
        rows.append(
            Row(
                "export",
                "bundle of 2 approaches, with figures (reference: no figures)",
                with_figures,
                plain,
            )
        )
        print(f"export: {fmt_seconds(plain)} without figures, {fmt_seconds(with_figures)} with")
    print_machine()
    print_rows(rows, title=f"bench_export quick={args.quick} repeat={repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
