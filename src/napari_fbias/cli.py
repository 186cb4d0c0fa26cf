"""The ``fbias`` command line: run, validate and list pipelines' operations (no Qt).

Each subcommand is one function registered with :func:`subcommand`; its
arguments are declared with :func:`arg`. Other modules add theirs the same
way (``export``, ``demo``, ``session``): define the function in a module listed
in :data:`COMMAND_MODULES` (imported when the parser is built) or here.
Errors print one line (``fbias: error: ...``) and exit with 2 for usage and
invalid pipelines, 1 when a run failed; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Modules that register more subcommands when imported (added by other features).
COMMAND_MODULES: tuple[str, ...] = ()

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class _Arg:
    flags: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class _Command:
    name: str
    func: Callable[[argparse.Namespace], int]
    help: str
    description: str
    epilog: str
    args: tuple[_Arg, ...] = field(default_factory=tuple)


_COMMANDS: dict[str, _Command] = {}


def arg(*flags: str, **options: Any) -> _Arg:
    """Describe one argument of a subcommand (``argparse.add_argument`` arguments)."""
    return _Arg(flags, options)


def subcommand(
    name: str, *, help: str, description: str = "", epilog: str = "", args: Sequence[_Arg] = ()
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``func(args) -> exit code`` as ``fbias NAME`` (decorator)."""

    def decorator(
        func: Callable[[argparse.Namespace], int],
    ) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = _Command(name, func, help, description or help, epilog, tuple(args))
        return func

    return decorator


class CliError(Exception):
    """A problem to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


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

Results go to OUTDIR/<image name>/: result.ome.zarr (the image with the
labels), tables as .csv, tracks as .csv and Cell Tracking Challenge folders,
and run.json (what was run, on which pixels, with which versions). Running
the same command again skips the images already done.
"""


@subcommand(
    "run",
    help="run a pipeline on one or more images",
    description="Run a pipeline file on images and write the results to a folder.",
    epilog=_RUN_EPILOG,
    args=[
        arg("pipeline", metavar="PIPELINE", help="the pipeline file (*.fbias.yaml)"),
        arg(
            "inputs",
            metavar="INPUT",
            nargs="+",
            help="images: OME-Zarr folders or URLs, TIFF files, a folder of images, or a "
            "pattern such as 'data/*.tif' (in quotes)",
        ),
        arg(
            "-o",
            "--output",
            dest="outdir",
            metavar="OUTDIR",
            required=True,
            help="folder for the results (created if needed; never inside your images)",
        ),
        arg(
            "--workers",
            type=int,
            metavar="N",
            help="process N images at a time on this computer (default 1: one after the "
            "other); with --cluster slurm, the number of SLURM jobs",
        ),
        arg(
            "--scheduler",
            metavar="ADDRESS",
            help="address of a running dask scheduler to send the work to",
        ),
        arg(
            "--cluster",
            choices=["slurm"],
            help="start workers on a cluster (slurm: via dask-jobqueue)",
        ),
        arg(
            "--no-resume",
            dest="resume",
            action="store_false",
            help="redo every image, replacing earlier results (default: skip finished ones)",
        ),
        arg(
            "--omero-user",
            metavar="USER",
            help="for omero:// inputs: log in as USER (the password is asked for, never "
            "stored); default: reuse the session of `omero login`, or the session key in "
            "the OMERO_SESSION_KEY environment variable",
        ),
        arg(
            "--omero-group",
            metavar="GROUP",
            help="for omero:// inputs: the OMERO group (name or id) to read from",
        ),
        arg(
            "--strict",
            action="store_true",
            help="fail an image whose OME-Zarr store lacks a chunk (e.g. a partial copy), "
            "naming the chunk (default: a missing chunk reads as zeros, as the Zarr spec says)",
        ),
        arg(
            "--memory",
            type=_memory_size,
            metavar="SIZE",
            help="memory budget per image, e.g. 4GB or 512MB (default: a quarter of this "
            "computer's memory); steps that would need more run chunk-wise, or fail clearly",
        ),
    ],
)
def cmd_run(args: argparse.Namespace) -> int:
    """Run a pipeline on images (``fbias run``)."""
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.batch import run_batch

    chosen = [o for o in ("scheduler", "cluster") if getattr(args, o)]
    if len(chosen) > 1:
        raise CliError("use either --scheduler or --cluster, not both")
    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be 1 or more")
    if args.scheduler and args.workers:
        raise CliError("--workers starts a local cluster; it cannot be used with --scheduler")
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
    bar = _progress_bar("images")
    try:
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
        )
    finally:
        bar.close()
    from napari_fbias.io.credentials import scrub_text

    for item in report.items:
        if item.status == "failed":
            print(scrub_text(f"fbias: {item.stem}: failed: {item.message}"), file=sys.stderr)
    print(f"{report.summary()} -> {report.outdir}")
    return EXIT_OK if report.ok else EXIT_FAILED


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


@subcommand(
    "validate",
    help="check a pipeline file and list every problem",
    description="Check a pipeline file without running it: operations, settings, data "
    "inputs, outputs. Every problem is listed, each with its step.",
    epilog="example:\n  fbias validate nuclei.fbias.yaml\n\nExit code 0 when the file "
    "is valid, 1 when it has problems.",
    args=[arg("pipeline", metavar="PIPELINE", help="the pipeline file (*.fbias.yaml)")],
)
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


@subcommand(
    "ops",
    help="list the operations a pipeline can use, with their settings",
    description="List the operations (the 'op' of a pipeline step) with their data "
    "inputs, output and settings (type, default, allowed range or choices).",
    epilog="examples:\n  fbias ops\n  fbias ops --category segment\n  fbias ops --json",
    args=[
        arg("--category", metavar="NAME", help="only this category (preprocess, segment, ...)"),
        arg("--json", action="store_true", help="machine-readable output"),
    ],
)
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


# --- fbias export --------------------------------------------------------------------------

_EXPORT_EPILOG = """\
examples:
  fbias export ~/.napari-fbias/sessions/2026-05-04-nuclei-1a2b3c4d -o delivery/
      the approach named in the solution (else every approach with steps)
  fbias export session.yaml -o delivery/ --approach A --approach C --zip
      approaches A and C, plus delivery.zip to send by e-mail

The bundle holds README.md (what the pipeline does, how to rerun it), the
pipeline file(s), run_pipeline.py, pipeline.ipynb, report.html (with figures),
session.yaml, requirements.lock.txt, ro-crate-metadata.json and
checksums.sha256. It never holds passwords or tokens, and holds the images
only with --include-images. Images are read (for figures, for
--include-images) only when an analyst opened them in this session; a
session.yaml named directly, or a session restored from one, gets no figures
for the images it names unless --read-sources is given.
"""


@subcommand(
    "export",
    help="export a session as a delivery bundle (pipeline, script, notebook, report)",
    description="Write the delivery bundle of an open-desk session: everything the user "
    "needs to understand and rerun the analysis.",
    epilog=_EXPORT_EPILOG,
    args=[
        arg(
            "session",
            metavar="SESSION",
            help="a session link: its folder (path, or URL in a session space such as "
            "s3://bucket/space/2026-12-05-nuclei-1a2b3c4d), a journal in it, or a session.yaml",
        ),
        arg(
            "-o",
            "--output",
            dest="outdir",
            metavar="DIR",
            required=True,
            help="the bundle folder to create (must not exist yet)",
        ),
        arg(
            "--approach",
            action="append",
            metavar="A",
            help="an approach to deliver (repeat for several); default: the one in the solution",
        ),
        arg("--zip", action="store_true", help="also write DIR.zip"),
        arg(
            "--include-images",
            action="store_true",
            help="copy the input images into the bundle (default: only refer to them)",
        ),
        arg(
            "--no-figures",
            dest="figures",
            action="store_false",
            help="do not rerun the approaches to draw figures for the report",
        ),
        arg(
            "--read-sources",
            action="store_true",
            help="read every image the session names, for figures and --include-images "
            "(default: only images an analyst opened in this session, recorded in its "
            "journals; not those that come only from a session.yaml, e.g. one received "
            "by e-mail)",
        ),
    ],
)
def cmd_export(args: argparse.Namespace) -> int:
    """Export a session's delivery bundle (``fbias export``)."""
    from napari_fbias.session.errors import SessionError
    from napari_fbias.session.export import export_bundle

    try:
        result = export_bundle(
            args.session,
            args.outdir,
            approaches=args.approach,
            zip=args.zip,
            include_images=args.include_images,
            figures=args.figures,
            read_sources=args.read_sources,
        )
    except SessionError as exc:
        raise CliError(str(exc)) from None
    from napari_fbias.io.credentials import scrub_text

    for note in result.notes:
        print(scrub_text(f"note: {note}"), file=sys.stderr)
    print(f"bundle of approach(es) {', '.join(result.approaches)} -> {result.folder}")
    if result.zip_path is not None:
        print(f"zip -> {result.zip_path}")
    return EXIT_OK


# --- fbias sessions ------------------------------------------------------------------------

_SESSIONS_EPILOG = """\
examples:
  fbias sessions                                   the sessions on this computer
  fbias sessions --space /shared/open-desk         a shared folder
  fbias sessions --space s3://facility/open-desk --user Ann --json
      Ann's sessions in an object store, each with its approaches, analysts and clients
  fbias sessions --analyst Marie --since 2026-11 --text cellpose

The space is --space, else $FBIAS_SPACE, else the local sessions folder. Credentials for
object stores come from the environment or your fsspec/boto configuration, never the URL."""


@subcommand(
    "sessions",
    help="list and search past open-desk sessions in a session space",
    description="List the sessions of a session space (local folder, shared folder or "
    "object store), newest first, optionally only those matching every filter given.",
    epilog=_SESSIONS_EPILOG,
    args=[
        arg("--space", metavar="SPACE", help="a folder or fsspec URL holding sessions"),
        arg("--user", default="", help="the user's name contains this"),
        arg("--lab", default="", help="the user's lab contains this"),
        arg("--analyst", default="", help="an analyst's name contains this"),
        arg(
            "--since", default="", metavar="DATE", help="created on or after (2026-11-01, 2026-11)"
        ),
        arg("--text", default="", help="any text of the record contains this"),
        arg("--json", action="store_true", help="print every session in full as JSON"),
    ],
)
def cmd_sessions(args: argparse.Namespace) -> int:
    """List and search sessions (``fbias sessions``)."""
    import json
    import warnings

    from napari_fbias.session.errors import SessionError
    from napari_fbias.session.search import (
        SessionQuery,
        conclusion,
        find_sessions,
        session_summary,
    )
    from napari_fbias.session.store import list_sessions

    query = SessionQuery(args.user, args.lab, args.analyst, args.since, args.text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # problems are listed with each session
            infos = find_sessions(list_sessions(space=args.space), query)
    except SessionError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    if args.json:
        print(json.dumps([session_summary(i) for i in infos], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not infos:
        print("no session matches" if any(vars(query).values()) else "no session here")
        return EXIT_OK
    for i in infos:
        who = ", ".join(i.analysts) or "no analyst named"
        print(f"{i.created[:16].replace('T', ' ')}  {i.title or '(untitled)'}  — {i.user} ({who})")
        print(f"    {conclusion(i)}")
        print(f"    {i.path}")
    return EXIT_OK


# --- fbias demo ----------------------------------------------------------------------------


@subcommand(
    "demo",
    help="run a complete open-desk session on the sample data (about a minute)",
    description="Record a scripted open-desk session on the bundled sample data, export "
    "its delivery bundle, rerun it with the command line and the exported script, and "
    "check that the results are identical. Needs no display.",
    epilog="example:\n  fbias demo -o fbias-demo/\n\nExit code 0 when every check "
    "passed, 1 otherwise.",
    args=[
        arg(
            "-o",
            "--output",
            dest="outdir",
            metavar="OUTDIR",
            default=None,
            help="folder for everything the demo writes (default: ./fbias-demo)",
        )
    ],
)
def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo session (``fbias demo``)."""
    from napari_fbias.demo import DemoError, run_demo

    try:
        report = run_demo(args.outdir)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK if report.ok else EXIT_FAILED


# --- plumbing ----------------------------------------------------------------------------


class _Bar:
    """A tqdm progress bar on stderr, updated with ``update_to(done, total, label)``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._bar: Any = None

    def update_to(self, done: int, total: int, label: str) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit=self.unit, file=sys.stderr, leave=False, disable=None
            )
        self._bar.set_postfix_str(label, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress_bar(unit: str) -> _Bar:
    return _Bar(unit)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``fbias`` argument parser with every registered subcommand."""
    from napari_fbias import __version__

    for mod in COMMAND_MODULES:
        importlib.import_module(mod)
    parser = argparse.ArgumentParser(
        prog="fbias",
        description="napari-fbias on the command line: run analysis pipelines made in "
        "napari on whole data sets, on a laptop or a cluster.",
        epilog="Run 'fbias COMMAND --help' for the options and examples of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"napari-fbias {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full error report (traceback) when something fails",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in _COMMANDS.values():
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description,
            epilog=cmd.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full error report (traceback) when something fails",
        )
        for a in cmd.args:
            p.add_argument(*a.flags, **a.options)
        p.set_defaults(_command=cmd)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.pipeline.errors import BatchError, PipelineError, PipelineRunError

    return (CliError, PipelineError, PipelineRunError, BatchError, FbiasIOError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fbias``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "_command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(command.func(args))
    except KeyboardInterrupt:
        print("fbias: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except _known_errors() as exc:
        if args.debug:
            raise
        code = getattr(exc, "code", None)
        code = code if isinstance(code, int) else EXIT_USAGE
        from napari_fbias.pipeline.errors import PipelineRunError

        if isinstance(exc, PipelineRunError):
            code = EXIT_FAILED
        print(f"fbias: error: {_one_line(exc)}", file=sys.stderr)
        return code
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"fbias: error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _one_line(exc: BaseException) -> str:
    from napari_fbias.io.credentials import scrub_text
    from napari_fbias.pipeline.errors import PipelineError

    if isinstance(exc, PipelineError):
        what = f"pipeline {exc.source}" if exc.source else "pipeline"
        if len(exc.problems) == 1:
            return scrub_text(f"{what}: {exc.problems[0]}")
        listed = "; ".join(str(p) for p in exc.problems)
        hint = f" (see 'fbias validate {exc.source}')" if exc.source else ""
        return scrub_text(f"{what} has {len(exc.problems)} problems: {listed}{hint}")
    return scrub_text(" ".join(str(exc).split()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
