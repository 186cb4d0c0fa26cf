"""The ``fbias`` command line: run, validate, ops, export, sessions, demo (no Qt).

One ``argparse`` parser (:mod:`.app`) with a subparser per command: each
command module declares its commands' arguments and help (``add_<command>``)
and does the work (``cmd_<command>(args) -> exit code``): :mod:`.pipelines`
(``run``, ``validate``, ``ops``) and :mod:`.sessions` (``export``,
``sessions``, ``demo``), over :mod:`.common`. Errors print one line
(``fbias: error: ...``) and exit with 2 for usage and invalid pipelines, 1
when a run failed; ``--debug`` shows the traceback. ``python -m
napari_fbias.cli`` is ``fbias``.
"""

from napari_fbias.cli.app import build_parser, main
from napari_fbias.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CliError", "build_parser", "main"]
