"""``fbias tune``: tune a pipeline step from a few annotated objects, headless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from napari_fbias.cli.common import EXIT_OK, CliError, ProgressBar, add_command

__all__ = ["add_tune", "cmd_tune", "default_output", "format_board"]

_EPILOG = """\
examples:
  fbias tune nuclei.fbias.yaml image.tif annotated.tif
      tune the first step that gives labels on 5-20 objects painted in annotated.tif
      (a label image of the same size); writes nuclei.tuned.fbias.yaml
  fbias tune nuclei.fbias.yaml image.tif centres.csv --step 2 --trials 100
      points at object centres (a CSV with columns y, x or z, y, x)
  fbias tune nuclei.fbias.yaml image.tif annotated.tif --timeout 30 --json

Only the annotated region is scored: an object nobody annotated is never counted
as a false positive (--region box: every object inside the annotations' bounding
box was annotated). The search is seeded (--seed): the same inputs and number of
trials give the same result. The input pipeline is never changed.
"""


def add_tune(sub: Any) -> None:
    """Add ``fbias tune`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "tune",
        cmd_tune,
        help="tune a pipeline step's settings from a few annotated objects",
        description="Search the settings of one step of a pipeline so that its labels best "
        "match objects annotated on an image (AP@0.5 in the annotated region), print the "
        "scoreboard and write a new pipeline file with the best settings.",
        epilog=_EPILOG,
    )
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline file (*.fbias.yaml)")
    p.add_argument("image", metavar="IMAGE", help="the image (TIFF, OME-Zarr path or URL)")
    p.add_argument(
        "annotations",
        metavar="ANNOTATIONS",
        help="a label image of some annotated objects (same size as IMAGE), or a CSV of "
        "points at object centres (columns y, x or z, y, x)",
    )
    p.add_argument("--step", metavar="N", help="the step to tune: its number (1, 2...) or id")
    p.add_argument("--params", metavar="A,B", help="tune only these settings (comma-separated)")
    p.add_argument("--trials", type=int, default=60, metavar="N", help="settings tried (60)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop searching after S seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the search (0)")
    p.add_argument(
        "--region",
        choices=["objects", "box"],
        default="objects",
        help="where the annotation is complete: around the annotated objects (default) or "
        "their whole bounding box",
    )
    p.add_argument("--top", type=int, default=5, metavar="N", help="scoreboard length (5)")
    p.add_argument(
        "-o", "--out", metavar="FILE", help="the tuned pipeline (default PIPELINE.tuned.fbias.yaml)"
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def default_output(pipeline: Path) -> Path:
    """``nuclei.fbias.yaml`` -> ``nuclei.tuned.fbias.yaml`` (beside it)."""
    name = pipeline.name
    for suffix in (".fbias.yaml", ".fbias.yml", ".yaml", ".yml"):
        if name.endswith(suffix):
            return pipeline.with_name(name[: -len(suffix)] + ".tuned" + suffix)
    return pipeline.with_name(name + ".tuned.fbias.yaml")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_board(summary: dict[str, Any]) -> str:
    """Return the scoreboard of a tuning summary as aligned text."""
    lines = [
        f"tuned step {summary['step']} ({summary['op']}) on {summary['n_annotated']} annotated "
        f"{'objects' if summary['annotations'] == 'labels' else 'points'}: "
        f"{summary['trials']} trials in {summary['seconds']:.1f} s ({summary['stopped']}), "
        f"object diameter {summary['diameter_px']:.1f} px",
        f"  start     AP@0.5 {_num(summary['start']['ap'])}  F1 {_num(summary['start']['f1'])}"
        f"  mean IoU {_num(summary['start']['mean_iou'])}",
        "  rank trial  AP@0.5     F1  mean IoU  settings",
    ]
    for i, row in enumerate(summary["scoreboard"], start=1):
        settings = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        lines.append(
            f"  {i:>4} {row['trial']:>5}  {_num(row['ap']):>6} {_num(row['f1']):>6}  "
            f"{_num(row['mean_iou']):>8}  {settings}"
        )
    return "\n".join(lines)


def cmd_tune(args: argparse.Namespace) -> int:
    """Run ``fbias tune``."""
    from napari_fbias.pipeline.model import Pipeline
    from napari_fbias.pipeline.tune import TuneError, load_annotations, tune_pipeline

    src = Path(args.pipeline)
    out = Path(args.out) if args.out else default_output(src)
    if out.resolve() == src.resolve():
        raise CliError(f"{out} is the input pipeline: write the tuned one to another file")
    if out.exists() and not args.force:
        raise CliError(f"{out} already exists; choose another --out or pass --force")
    if args.trials < 1:
        raise CliError("--trials must be at least 1")
    pipeline = Pipeline.load(src)
    if not Path(args.annotations).exists():
        raise CliError(f"annotations {args.annotations}: no such file")
    bar = ProgressBar("trials")
    try:
        annotations = load_annotations(args.annotations)
        result = tune_pipeline(
            pipeline,
            args.image,
            annotations,
            step=args.step,
            params=[p.strip() for p in args.params.split(",") if p.strip()]
            if args.params
            else None,
            n_trials=args.trials,
            timeout=args.timeout,
            seed=args.seed,
            region=args.region,
            top=args.top,
            progress=bar.update_to,
        )
    except TuneError as exc:
        raise CliError(str(exc)) from None
    finally:
        bar.close()
    assert result.pipeline is not None
    if args.force and out.exists():
        result.pipeline.dump(out, overwrite=True)
    else:
        result.pipeline.dump(out)
    summary = {**result.summary(), "pipeline": str(out)}
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_board(summary))
        print(f"wrote {out}")
    return EXIT_OK
