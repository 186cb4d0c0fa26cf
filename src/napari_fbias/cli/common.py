"""What every ``fbias`` command shares: exit codes, the one-line error, the subparser, a bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Command",
    "ProgressBar",
    "add_command",
]

#: Exit codes: done, a run failed (or a check), usage or an invalid pipeline.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Help of ``--debug`` (on ``fbias`` and on every command).
DEBUG_HELP = "show the full error report (traceback) when something fails"
#: A command: ``cmd_<name>(args) -> exit code``.
Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A problem to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class ProgressBar:
    """A tqdm progress bar on stderr, updated with ``update_to(done, total, label)``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._bar: Any = None

    def update_to(self, done: int, total: int, label: str) -> None:
        """Show ``done`` of ``total`` finished, the last one ``label``."""
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit=self.unit, file=sys.stderr, leave=False, disable=None
            )
        if total != self._bar.total or done < self._bar.n:  # a new round (a dask compute)
            self._bar.reset(total=total)
        self._bar.set_postfix_str(label, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()


def add_command(
    sub: Any, name: str, func: Command, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """Add the subparser of ``fbias NAME``, run by ``func(args) -> exit code``."""
    p = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    p.set_defaults(func=func)
    return p
