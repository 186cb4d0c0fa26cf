"""Errors of the OMERO client, and the translation of Ice/OMERO exceptions into them.

omero-py raises Ice and Glacier2 exceptions whose names say little to a
biologist (``Ice.ConnectionLostException``...). :func:`classify_exception`
recognises them by class name (no omero import needed, so the same code works
with the test fake) and :func:`translate` turns them into the errors below,
with the host and the action that failed in the message.
"""

from __future__ import annotations

from napari_fbias.extras import MissingExtraError
from napari_fbias.io.errors import FbiasIOError, UnreachableSourceError

#: How users install the optional OMERO support.
INSTALL_MESSAGE = (
    "OMERO support needs omero-py, which is not installed. Install it with "
    "`pip install 'napari-fbias[omero]'`; on Python >= 3.11 first build its zeroc-ice "
    "dependency with `scripts/build_omero_wheels.sh` (see docs/omero.md)."
)


class OmeroError(FbiasIOError):
    """Base class of every OMERO problem."""


class OmeroNotInstalledError(OmeroError, MissingExtraError):
    """omero-py (the ``omero`` extra) is not installed."""

    extra = "omero"

    def __init__(self, message: str = INSTALL_MESSAGE) -> None:
        super().__init__(message)


class OmeroUriError(OmeroError, ValueError):
    """A string is not an OMERO URI or OMERO.web link we understand."""


class OmeroConnectionError(OmeroError, UnreachableSourceError):
    """The server cannot be reached, or the session was lost or expired.

    ``reconnect()`` on the :class:`~napari_fbias.io.omero.connection.OmeroConnection`
    recovers from it without losing other state.
    """


class OmeroAuthenticationError(OmeroError):
    """The server refused the user name/password or session key."""


class OmeroNotLoggedInError(OmeroError):
    """No open connection to the host an ``omero://`` URI names."""


class OmeroObjectNotFoundError(OmeroError, LookupError):
    """An Image, Dataset... id does not exist or is not visible to this user/group."""


class OmeroPixelsError(OmeroError):
    """The pixel data of an image cannot be read (unsupported type, broken pyramid...)."""


class OmeroSendBackError(OmeroError):
    """Results could not be written back to OMERO."""


class OmeroPermissionError(OmeroError, PermissionError):
    """The user may not read or change an object (another group, read-only group...)."""


# --- classification of omero-py / Ice exceptions ---------------------------------------------

#: Class names (anywhere in the MRO) that mean "the connection or the session is gone".
_CONNECTION_LOST_NAMES = frozenset(
    {
        "ConnectionLostException",
        "ConnectionRefusedException",
        "ConnectFailedException",
        "ConnectTimeoutException",
        "ConnectionTimeoutException",
        "CloseConnectionException",
        "SocketException",
        "TimeoutException",
        "DNSException",
        "CommunicatorDestroyedException",
        "ObjectNotExistException",
        "SessionNotExistException",
        "SessionTimeoutException",
        "RemovedSessionException",
    }
)
#: Class names that mean "wrong credentials".
_AUTH_NAMES = frozenset(
    {"PermissionDeniedException", "CannotCreateSessionException", "AuthenticationException"}
)


def classify_exception(exc: BaseException) -> str | None:
    """Say what kind of OMERO failure ``exc`` is.

    Parameters
    ----------
    exc : BaseException
        Any exception raised by omero-py, Ice or the test fake.

    Returns
    -------
    str or None
        ``"connection"`` (lost connection, expired/removed session, server
        down), ``"auth"`` (credentials refused), ``"pyramid"`` (pyramid not
        generated yet), ``"permission"`` (not allowed) or None (anything else).
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _AUTH_NAMES:
        return "auth"
    if names & _CONNECTION_LOST_NAMES:
        return "connection"
    if "MissingPyramidException" in names:
        return "pyramid"
    if names & {"SecurityViolation", "PermissionDenied"}:
        return "permission"
    return None


def describe_exception(exc: BaseException) -> str:
    """Return a short, readable reason for an Ice/OMERO exception.

    Ice exceptions often have an empty ``str()``; their class name and, for
    server exceptions, the ``message``/``reason`` attribute say more.
    """
    name = type(exc).__name__
    detail = ""
    for attr in ("message", "reason", "serverExceptionClass"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value.strip():
            detail = value.strip()
            break
    if not detail:
        detail = str(exc).strip()
    # Ice prints multi-line reports; the first line is enough for a person.
    detail = detail.splitlines()[0] if detail else ""
    return f"{name}: {detail}" if detail else name


def translate(exc: BaseException, host: str, action: str) -> OmeroError | None:
    """Turn an omero-py/Ice exception into one of our errors, or None if it is not one.

    Parameters
    ----------
    exc : BaseException
        The exception caught.
    host : str
        Server the connection was for (named in the message).
    action : str
        What was being done, e.g. ``"reading Image:12 plane z=0 c=1 t=0"``.
    """
    kind = classify_exception(exc)
    reason = describe_exception(exc)
    if kind == "connection":
        return OmeroConnectionError(
            f"lost the connection to OMERO server {host} while {action} ({reason}); the server "
            "may have restarted or the session expired. Reconnect (OMERO widget: 'Reconnect'; "
            "Python: connection.reconnect()) and try again."
        )
    if kind == "auth":
        return OmeroAuthenticationError(
            f"OMERO server {host} refused the credentials while {action} ({reason}); check the "
            "user name and password, or log in again to get a fresh session key."
        )
    if kind == "pyramid":
        return OmeroPixelsError(
            f"OMERO server {host} is still generating the pyramid of this image ({reason}) "
            f"while {action}; try again in a few minutes"
        )
    if kind == "permission":
        return OmeroPermissionError(
            f"OMERO server {host} does not allow this while {action} ({reason}); check the "
            "image's group and your permissions there"
        )
    return None
