"""``fbias run``, ``fbias validate`` and ``fbias ops``: pipelines and their operations."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from napari_fbias.cli.common import EXIT_FAILED, EXIT_OK, CliError, ProgressBar, add_command

__all__ = ["add_ops", "add_run", "add_validate", "cmd_ops", "cmd_run", "cmd_validate"]

# --- fbias run ---------------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_SIZE_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


def _memory_size(text: str) -> int:
    """Parse ``--memory``: a number of bytes with an optional unit (``4GB``, ``512 MiB``)."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _SIZE_UNITS or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a memory size; write e.g. 4GB, 512MB or 2GiB"
        )
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


_RUN_EPILOG = """\
examples:
  fbias run nuclei.fbias.yaml images/ -o results/
      every TIFF and OME-Zarr image in the folder images/, one after the other
  fbias run nuclei.fbias.yaml "images/*.ome.zarr" -o results/ --workers 4
      four images at a time on this computer
  fbias run nuclei.fbias.yaml https://example.org/image.ome.zarr -o results/
      an image on a web server
  fbias run nuclei.fbias.yaml images/ -o results/ --scheduler tcp://10.0.0.5:8786
      on a running dask cluster
  fbias run nuclei.fbias.yaml images/ -o results/ --cluster slurm --workers 10
      on a SLURM cluster (needs dask-jobqueue; see docs/cluster.md)
  fbias run nuclei.fbias.yaml screen.ome.zarr -o results/ --wells A1,B3 --fields 0
      fields of an OME-Zarr plate, then plate tables and a heat map

Results go to OUTDIR/<image name>/: result.ome.zarr (the image with the
labels), tables as .csv, tracks as .csv, Cell Tracking Challenge folders and
GEFF, and run.json (what was run, on which pixels, with which versions). A
plate's fields go to OUTDIR/<plate>_<well>_f<field>/, its tables to
OUTDIR/<plate>_plate_summary.csv, _objects.csv and _heatmap.png; the series
of a bioformats2raw container to OUTDIR/<name>_s<series>/. Running the same
command again skips the images already done.
"""


def add_run(sub: Any) -> None:
    """Add ``fbias run`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "run",
        cmd_run,
        help="run a pipeline on one or more images",
        description="Run a pipeline file on images and write the results to a folder.",
        epilog=_RUN_EPILOG,
    )
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline file (*.fbias.yaml)")
    p.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="+",
        help="images: OME-Zarr folders or URLs, TIFF files, a folder of images, or a "
        "pattern such as 'data/*.tif' (in quotes)",
    )
    p.add_argument(
        "-o",
        "--output",
        dest="outdir",
        metavar="OUTDIR",
        required=True,
        help="folder for the results (created if needed; never inside your images)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="process N images at a time on this computer (default 1: one after the "
        "other); with --cluster slurm, the number of SLURM jobs",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running dask scheduler to send the work to",
    )
    p.add_argument(
        "--cluster",
        choices=["slurm"],
        help="start workers on a cluster (slurm: via dask-jobqueue)",
    )
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="redo every image, replacing earlier results (default: skip finished ones)",
    )
    p.add_argument(
        "--omero-user",
        metavar="USER",
        help="for omero:// inputs: log in as USER (the password is asked for, never "
        "stored); default: reuse the session of `omero login`, or the session key in "
        "the OMERO_SESSION_KEY environment variable",
    )
    p.add_argument(
        "--omero-group",
        metavar="GROUP",
        help="for omero:// inputs: the OMERO group (name or id) to read from",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail an image whose OME-Zarr store lacks a chunk (e.g. a partial copy), "
        "naming the chunk (default: a missing chunk reads as zeros, as the Zarr spec says)",
    )
    p.add_argument(
        "--memory",
        type=_memory_size,
        metavar="SIZE",
        help="memory budget per image, e.g. 4GB or 512MB (default: a quarter of this "
        "computer's memory); steps that would need more run chunk-wise, or fail clearly",
    )
    p.add_argument(
        "--scratch",
        metavar="DIR",
        help="folder for intermediate results of chunk-wise runs (default: $FBIAS_SCRATCH, "
        "else the system temp folder); on a cluster, a folder every worker shares",
    )
    p.add_argument(
        "--wells",
        metavar="WELLS",
        help="for OME-Zarr plates: only these wells, e.g. A1,B3 (default: every well)",
    )
    p.add_argument(
        "--fields",
        metavar="N,...",
        help="for OME-Zarr plates: only these fields of each well, e.g. 0 (default: all)",
    )
    p.add_argument(
        "--series",
        metavar="N,...",
        help="for bioformats2raw containers: only these series, e.g. 0,2 (default: all)",
    )
    p.add_argument(
        "--extra",
        metavar="AXIS=N,...",
        help="for images with extra axes (e.g. angle): only these indices, e.g. angle=0,2; "
        "several axes separated by ';' (default: every index, each run as its own image)",
    )
    p.add_argument(
        "--heatmap",
        metavar="COLUMN",
        help="for plates: the plate-summary column of the heat map (default: the first "
        "object count); plate tables and the heat map go to OUTDIR/<plate>_plate_*",
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run a pipeline on images (``fbias run``)."""
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.batch import run_batch
    from napari_fbias.pipeline.block_progress import BlockProgress
    from napari_fbias.pipeline.inputs import Selection

    chosen = [o for o in ("scheduler", "cluster") if getattr(args, o)]
    if len(chosen) > 1:
        raise CliError("use either --scheduler or --cluster, not both")
    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be 1 or more")
    if args.scheduler and args.workers:
        raise CliError("--workers starts a local cluster; it cannot be used with --scheduler")
    scratch = _scratch_folder(args.scratch) if args.scratch else None
    pipeline = Pipeline.load(args.pipeline)
    scheduler = args.scheduler
    if scheduler is None and args.cluster is None and (args.workers or 1) > 1:
        scheduler = "local"
    if _connect_omero(args.inputs, user=args.omero_user, group=args.omero_group):
        if scheduler is not None or args.cluster is not None:
            raise CliError(
                "omero:// inputs are read through this process's OMERO connection: run them "
                "without --workers/--scheduler/--cluster"
            )
    bar = ProgressBar("images")
    tasks = ProgressBar("tasks")  # inside a step: each dask pass over a large image's blocks
    in_process = scheduler is None and args.cluster is None
    watch = (
        BlockProgress(lambda done, total: tasks.update_to(done, total, "dask tasks"))
        if in_process
        else contextlib.nullcontext()
    )
    try:
        with watch, _scratch_env(scratch):
            report = run_batch(
                pipeline,
                args.inputs,
                args.outdir,
                scheduler=scheduler,
                cluster=args.cluster,
                n_workers=args.workers,
                resume=args.resume,
                progress=bar.update_to,
                strict=args.strict,
                memory_limit=args.memory,
                select=Selection.parse(
                    args.wells or "", args.fields or "", args.series or "", args.extra or ""
                ),
                heatmap=args.heatmap,
            )
    finally:
        tasks.close()
        bar.close()
    from napari_fbias.io.credentials import scrub_text

    for item in report.items:
        if item.status == "failed":
            print(scrub_text(f"fbias: {item.stem}: failed: {item.message}"), file=sys.stderr)
        elif item.status == "done" and item.message:  # replaced results, blocks on the cluster
            print(scrub_text(f"fbias: {item.stem}: {item.message}"))
    _say_chunk_wise(report)
    print(f"{report.summary()} -> {report.outdir}")
    for path in report.plate_files:
        print(f"plate: {path}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _scratch_folder(text: str) -> str:
    """Check ``--scratch``: a folder that exists or can be created, and is writable."""
    import tempfile
    from pathlib import Path

    folder = Path(text).expanduser().absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(
            f"--scratch {folder}: cannot create or write this folder ({reason})"
        ) from exc
    return str(folder)


@contextlib.contextmanager
def _scratch_env(folder: str | None) -> Iterator[None]:
    """Set ``FBIAS_SCRATCH`` to ``folder`` (if given) for the run, then restore it."""
    from napari_fbias.io.scratch import SCRATCH_ENV

    if folder is None:
        yield
        return
    before = os.environ.get(SCRATCH_ENV)
    os.environ[SCRATCH_ENV] = folder
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SCRATCH_ENV, None)
        else:
            os.environ[SCRATCH_ENV] = before


def _say_chunk_wise(report: Any) -> None:
    """Name the steps that ran chunk-wise (the input was larger than the memory budget)."""
    from napari_fbias.pipeline.chunked import chunked_steps
    from napari_fbias.pipeline.outputs import read_run_record

    for item in report.items:
        if item.status == "done" and item.folder:
            steps = chunked_steps(read_run_record(item.folder))
            if steps:
                steps_text = ", ".join(steps)
                print(f"fbias: {item.stem}: ran chunk-wise (larger than --memory): {steps_text}")


def _connect_omero(inputs: list[str], *, user: str | None, group: str | None) -> bool:
    """Log in to every OMERO server named by ``inputs``; return True if there is one.

    With ``user`` the password is asked for on the terminal (kept only for the
    login call); otherwise ``OMERO_SESSION_KEY`` is joined, or the session that
    ``omero login`` holds is reused. Nothing secret is written anywhere.
    """
    from napari_fbias.io.open import is_omero_source

    omero_inputs = [s for s in inputs if is_omero_source(s)]
    if not omero_inputs:
        return False
    from napari_fbias.io.omero import omero_available
    from napari_fbias.io.omero.availability import INSTALL_MESSAGE
    from napari_fbias.io.omero.connection import OmeroConnection, connections
    from napari_fbias.io.omero.uri import parse_omero_uri

    if not omero_available():
        raise CliError(INSTALL_MESSAGE)
    hosts = sorted({parse_omero_uri(s).host for s in omero_inputs})
    key = os.environ.get("OMERO_SESSION_KEY")
    gid: int | str | None = int(group) if group and group.lstrip("-").isdigit() else group
    for host in hosts:
        if host in connections():
            continue
        ref_port = next(
            (parse_omero_uri(s).port for s in omero_inputs if parse_omero_uri(s).host == host),
            None,
        )
        if user:
            import getpass

            password = getpass.getpass(f"OMERO password for {user}@{host}: ")
            OmeroConnection.login(host, user, password, port=ref_port, group=gid)
            del password
        elif key:
            OmeroConnection.join(host, key, port=ref_port, group=gid)
        else:
            OmeroConnection.from_cli_session(host=host, group=gid)
    return True


# --- fbias validate ----------------------------------------------------------------------


def add_validate(sub: Any) -> None:
    """Add ``fbias validate`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "validate",
        cmd_validate,
        help="check a pipeline file and list every problem",
        description="Check a pipeline file without running it: operations, settings, data "
        "inputs, outputs. Every problem is listed, each with its step.",
        epilog="example:\n  fbias validate nuclei.fbias.yaml\n\nExit code 0 when the file "
        "is valid, 1 when it has problems.",
    )
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline file (*.fbias.yaml)")


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a pipeline file (``fbias validate``)."""
    from napari_fbias.pipeline import Pipeline, PipelineError

    try:
        pipeline = Pipeline.load(args.pipeline)
    except PipelineError as exc:
        print(str(exc))
        return EXIT_FAILED
    print(
        f"{args.pipeline}: valid ({len(pipeline.steps)} steps, outputs: "
        f"{', '.join(pipeline.outputs)})"
    )
    return EXIT_OK


# --- fbias ops ---------------------------------------------------------------------------


def add_ops(sub: Any) -> None:
    """Add ``fbias ops`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "ops",
        cmd_ops,
        help="list the operations a pipeline can use, with their settings",
        description="List the operations (the 'op' of a pipeline step) with their data "
        "inputs, output and settings (type, default, allowed range or choices).",
        epilog="examples:\n  fbias ops\n  fbias ops --category segment\n  fbias ops --json",
    )
    p.add_argument(
        "--category", metavar="NAME", help="only this category (preprocess, segment, ...)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_ops(args: argparse.Namespace) -> int:
    """List operations (``fbias ops``)."""
    from napari_fbias.ops.registry import list_ops

    ops = list_ops(args.category)
    if args.category and not ops:
        known = sorted({s.category for s in list_ops()})
        raise CliError(
            f"no operations in category {args.category!r} (categories: {', '.join(known)})"
        )
    if args.json:
        import json

        print(json.dumps([s.to_dict() for s in ops], indent=2, default=str))
        return EXIT_OK
    for spec in ops:
        ins = ", ".join(f"{i.name}: {i.kind}" + ("" if i.required else "?") for i in spec.inputs)
        print(f"{spec.name}  ({ins}) -> {spec.output}")
        if spec.summary:
            print(f"    {spec.summary}")
        for p in spec.params:
            print(f"    {_describe_param(p)}")
        print()
    return EXIT_OK


def _describe_param(p: Any) -> str:
    if p.choices is not None:
        kind = " | ".join(str(c) for c in p.choices)
    elif p.type is tuple:
        item = getattr(p.item_type, "__name__", "value")
        kind = f"list of {item}" + (f" ({p.length})" if p.length else "")
    else:
        kind = p.type.__name__
    if p.optional:
        kind += " or null"
    bounds = []
    if p.minimum is not None:
        bounds.append(f">= {p.minimum}")
    if p.maximum is not None:
        bounds.append(f"<= {p.maximum}")
    text = f"{p.name}: {kind}"
    if bounds:
        text += f" [{', '.join(bounds)}]"
    text += " (required)" if p.required else f" = {p.default!r}"
    if p.help:
        text += f"  -- {p.help}"
    return text
