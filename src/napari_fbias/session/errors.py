"""Errors and warnings of the session record.

Each says what went wrong and where (the file, the line, the step), in words
an analyst can act on.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class for every session-record problem."""


class InvalidStepError(SessionError, ValueError):
    """A step that cannot be recorded (unknown operation, bad settings or inputs)."""


class SessionFormatError(SessionError, ValueError):
    """A session file (journal line or snapshot) that is malformed or of an unknown schema."""


class JournalError(SessionError):
    """The journal cannot be read or written (corrupt line, folder not writable...)."""


class SessionLockedError(SessionError):
    """A journal file is already being written by another recorder (one writer per file).

    Sessions themselves are never locked: each recorder writes its own journal.
    """


class JournalRecoveryWarning(UserWarning):
    """A damaged journal was recovered (e.g. a half-written last line after a crash)."""
