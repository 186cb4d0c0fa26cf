"""Errors of the pipeline layer, each in words a biologist can act on.

:class:`PipelineError` carries *every* problem found in a pipeline file at
once (``.problems``), each naming the step and the field it is about, so that
a user fixes the file in one go instead of one error at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pipeline.

    Parameters
    ----------
    step_id : str or None
        The step it is about (None for the file, its inputs or outputs).
    field : str
        Where in the step or file (``"op"``, ``"params.sigma"``, ``"outputs.nuclei"``...).
    message : str
        What is wrong and, where possible, how to fix it.
    """

    step_id: str | None
    field: str
    message: str

    def __str__(self) -> str:
        if self.step_id is not None:
            where = f"step {self.step_id!r}" + (f", {self.field}" if self.field else "")
        elif self.field and self.field != "file":
            where = self.field
        else:
            return self.message
        return f"{where}: {self.message}"


class PipelineError(ValueError):
    """A pipeline file or object that cannot be run, with all its problems.

    Parameters
    ----------
    problems : iterable of Problem
        Everything found wrong (at least one).
    source : str
        The file it came from, if any (named in the message).
    """

    def __init__(self, problems: Iterable[Problem], source: str = "") -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        what = f"pipeline {self.source}" if self.source else "pipeline"
        n = len(self.problems)
        head = f"{what} has {n} problem{'s' if n != 1 else ''}"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)

    def __str__(self) -> str:
        return self._message()


class PipelineRunError(RuntimeError):
    """Running a (valid) pipeline failed on some data."""


class InputError(PipelineRunError, ValueError):
    """An input given to :meth:`Pipeline.run` is missing, empty or does not fit."""


class StepError(PipelineRunError, ValueError):
    """An operation failed on this data; the message names the step and the op."""

    def __init__(self, step_id: str, op: str, message: str) -> None:
        self.step_id = step_id
        self.op = op
        self.reason = message
        super().__init__(f"step {step_id!r} ({op}): {message}")


class ChunkingError(PipelineRunError):
    """A step cannot run chunk-wise on an image too large to hold in memory."""


class MemoryLimitError(ChunkingError):
    """A step would need more memory than the budget, and cannot run chunk-wise."""


class BatchError(ValueError):
    """A batch cannot start (bad output folder, no inputs, no cluster...)."""
