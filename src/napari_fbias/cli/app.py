"""The ``fbias`` parser and entry point: one ``argparse`` subparser per command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from napari_fbias.cli.common import DEBUG_HELP, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, Command
from napari_fbias.cli.pipelines import add_ops, add_run, add_validate
from napari_fbias.cli.sessions import add_demo, add_export, add_sessions
from napari_fbias.cli.tune import add_tune

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the ``fbias`` argument parser: one subparser per command."""
    from napari_fbias import __version__

    parser = argparse.ArgumentParser(
        prog="fbias",
        description="napari-fbias on the command line: run analysis pipelines made in "
        "napari on whole data sets, on a laptop or a cluster.",
        epilog="Run 'fbias COMMAND --help' for the options and examples of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"napari-fbias {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (add_run, add_validate, add_ops, add_tune, add_export, add_sessions, add_demo):
        add(sub)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from napari_fbias.extras import MissingExtraError
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.pipeline.errors import BatchError, PipelineError, PipelineRunError

    return (CliError, PipelineError, PipelineRunError, BatchError, FbiasIOError, MissingExtraError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fbias``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args))
    except KeyboardInterrupt:
        print("fbias: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
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
