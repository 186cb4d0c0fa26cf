"""``fbias export``, ``fbias sessions`` and ``fbias demo``: open-desk sessions."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from napari_fbias.cli.common import EXIT_FAILED, EXIT_OK, CliError, add_command

__all__ = [
    "add_demo",
    "add_export",
    "add_sessions",
    "cmd_demo",
    "cmd_export",
    "cmd_sessions",
]

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


def add_export(sub: Any) -> None:
    """Add ``fbias export`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "export",
        cmd_export,
        help="export a session as a delivery bundle (pipeline, script, notebook, report)",
        description="Write the delivery bundle of an open-desk session: everything the user "
        "needs to understand and rerun the analysis.",
        epilog=_EXPORT_EPILOG,
    )
    p.add_argument(
        "session",
        metavar="SESSION",
        help="a session link: its folder (path, or URL in a session space such as "
        "s3://bucket/space/2026-12-05-nuclei-1a2b3c4d), a journal in it, or a session.yaml",
    )
    p.add_argument(
        "-o",
        "--output",
        dest="outdir",
        metavar="DIR",
        required=True,
        help="the bundle folder to create (must not exist yet)",
    )
    p.add_argument(
        "--approach",
        action="append",
        metavar="A",
        help="an approach to deliver (repeat for several); default: the one in the solution",
    )
    p.add_argument("--zip", action="store_true", help="also write DIR.zip")
    p.add_argument(
        "--include-images",
        action="store_true",
        help="copy the input images into the bundle (default: only refer to them)",
    )
    p.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        help="do not rerun the approaches to draw figures for the report",
    )
    p.add_argument(
        "--read-sources",
        action="store_true",
        help="read every image the session names, for figures and --include-images "
        "(default: only images an analyst opened in this session, recorded in its "
        "journals; not those that come only from a session.yaml, e.g. one received "
        "by e-mail)",
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


def add_sessions(sub: Any) -> None:
    """Add ``fbias sessions`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "sessions",
        cmd_sessions,
        help="list and search past open-desk sessions in a session space",
        description="List the sessions of a session space (local folder, shared folder or "
        "object store), newest first, optionally only those matching every filter given.",
        epilog=_SESSIONS_EPILOG,
    )
    p.add_argument("--space", metavar="SPACE", help="a folder or fsspec URL holding sessions")
    p.add_argument("--user", default="", help="the user's name contains this")
    p.add_argument("--lab", default="", help="the user's lab contains this")
    p.add_argument("--analyst", default="", help="an analyst's name contains this")
    p.add_argument(
        "--since", default="", metavar="DATE", help="created on or after (2026-11-01, 2026-11)"
    )
    p.add_argument("--text", default="", help="any text of the record contains this")
    p.add_argument("--json", action="store_true", help="print every session in full as JSON")


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


def add_demo(sub: Any) -> None:
    """Add ``fbias demo`` to the subparsers ``sub``."""
    p = add_command(
        sub,
        "demo",
        cmd_demo,
        help="run a complete open-desk session on the sample data (about a minute)",
        description="Record a scripted open-desk session on the bundled sample data, export "
        "its delivery bundle, rerun it with the command line and the exported script, and "
        "check that the results are identical. Needs no display.",
        epilog="example:\n  fbias demo -o fbias-demo/\n\nExit code 0 when every check "
        "passed, 1 otherwise.",
    )
    p.add_argument(
        "-o",
        "--output",
        dest="outdir",
        metavar="OUTDIR",
        default=None,
        help="folder for everything the demo writes (default: ./fbias-demo)",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo session (``fbias demo``)."""
    from napari_fbias.demo import DemoError, run_demo

    try:
        report = run_demo(args.outdir)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK if report.ok else EXIT_FAILED
