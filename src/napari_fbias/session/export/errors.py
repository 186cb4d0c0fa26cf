"""Errors of the export: each names the session, approach or file concerned."""

from __future__ import annotations

from napari_fbias.session.errors import SessionError


class ExportError(SessionError, ValueError):
    """A delivery bundle (or one of its files) cannot be made.

    The message says why, in words an analyst can act on: no approach with
    steps, an operation that cannot be written as a script, a destination
    that exists already...
    """
