"""OMERO references: ``omero://`` URIs and OMERO.web links.

Accepted forms (kind names are case-insensitive)::

    omero://HOST[:PORT]/Image:ID          (also Dataset, Project, Screen, Plate, Well)
    https://HOST[/PREFIX]/webclient/?show=image-ID        (dataset-, project-, screen-,
                                                           plate-, well-ID)
    https://HOST[/PREFIX]/webclient/img_detail/ID/
    https://HOST[/PREFIX]/webgateway/img_detail/ID/
    https://HOST[/PREFIX]/iviewer/?images=ID[,ID...]

A URI never carries credentials; one with ``user:password@`` is refused so
that a password pasted into a URI does not end up in a session record.
Nothing here talks to a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from napari_fbias.io.omero.errors import OmeroUriError

#: Object kinds an URI may name, in their OMERO spelling.
KINDS: tuple[str, ...] = ("Image", "Dataset", "Project", "Screen", "Plate", "Well")
_KIND_BY_LOWER = {k.lower(): k for k in KINDS}
#: Default Glacier2 router port of an OMERO server (SSL).
DEFAULT_PORT = 4064

_OMERO_PATH = re.compile(r"^/*(?P<kind>[A-Za-z]+)[:/](?P<id>\d+)/*$")
_SHOW_ITEM = re.compile(r"^(?P<kind>[A-Za-z]+)-(?P<id>\d+)$")
_IMG_DETAIL = re.compile(r"/(?:webclient|webgateway)/img_detail/(?P<id>\d+)/?$")


@dataclass(frozen=True)
class OmeroRef:
    """A reference to one OMERO object.

    Parameters
    ----------
    host : str
        Server host name (for OMERO.web links: the web server's host name).
    port : int or None
        Ice/Glacier2 port when the URI gave one, None for the default.
    kind : str
        One of :data:`KINDS` (``"Image"``, ``"Dataset"``...).
    id : int
        Object id.
    """

    host: str
    port: int | None
    kind: str
    id: int

    @property
    def uri(self) -> str:
        """Canonical ``omero://HOST[:PORT]/Kind:ID`` form (what records store)."""
        return format_omero_uri(self.host, self.kind, self.id, port=self.port)

    def __str__(self) -> str:
        return self.uri


def format_omero_uri(host: str, kind: str, obj_id: int, *, port: int | None = None) -> str:
    """Build ``omero://HOST[:PORT]/Kind:ID``.

    The port is left out when it is None or the default (4064).
    """
    kind = _normalise_kind(kind, source=f"{kind}:{obj_id}")
    netloc = host if port in (None, DEFAULT_PORT) else f"{host}:{port}"
    return f"omero://{netloc}/{kind}:{int(obj_id)}"


def is_omero_uri(s: object) -> bool:
    """Return True when ``s`` looks like an ``omero://`` URI or an OMERO.web link.

    Cheap and never raises: meant for dispatchers such as ``open_image``.
    """
    if not isinstance(s, str):
        return False
    try:
        parse_omero_uris(s)
    except OmeroUriError:
        return False
    return True


def parse_omero_uri(s: str) -> OmeroRef:
    """Parse one OMERO URI or OMERO.web link.

    Parameters
    ----------
    s : str
        ``omero://host/Image:12``, ``https://host/webclient/?show=dataset-3``...

    Returns
    -------
    OmeroRef

    Raises
    ------
    OmeroUriError
        When ``s`` is not a form listed in this module's docstring, names no
        object, or names several (use :func:`parse_omero_uris` for those).
    """
    refs = parse_omero_uris(s)
    if len(refs) > 1:
        raise OmeroUriError(
            f"{s!r} names {len(refs)} objects ({', '.join(f'{r.kind}:{r.id}' for r in refs)}); "
            "open them one at a time or use parse_omero_uris()"
        )
    return refs[0]


def parse_omero_uris(s: str) -> list[OmeroRef]:
    """Parse an OMERO URI or web link that may name several objects.

    OMERO.web links may select several objects (``show=image-1|image-2``,
    ``iviewer/?images=1,2``); ``omero://`` URIs always name one.

    Raises
    ------
    OmeroUriError
        With the reason, when ``s`` is not an OMERO reference.
    """
    if not isinstance(s, str) or not s.strip():
        raise OmeroUriError(f"expected an OMERO URI or OMERO.web link, got {s!r}")
    text = s.strip()
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise OmeroUriError(f"{s!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("omero", "http", "https"):
        raise OmeroUriError(
            f"{s!r} is not an OMERO reference: expected omero://HOST/Image:ID or an OMERO.web "
            "link (https://HOST/webclient/?show=image-ID)"
        )
    if parts.username is not None or parts.password is not None:
        raise OmeroUriError(
            f"refusing an OMERO URI with credentials in it ({parts.hostname}); log in with the "
            "OMERO widget or `omero login` instead, and use omero://HOST/Image:ID"
        )
    host = parts.hostname
    if not host:
        raise OmeroUriError(f"{s!r} names no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise OmeroUriError(f"{s!r} has an invalid port: {exc}") from exc
    if scheme == "omero":
        return [_parse_omero_scheme(s, host, port, parts.path)]
    # Web links: the port is the web server's, not OMERO's router port.
    return _parse_web_link(s, host, parts.path, parts.query)


def _parse_omero_scheme(s: str, host: str, port: int | None, path: str) -> OmeroRef:
    m = _OMERO_PATH.match(path)
    if not m:
        raise OmeroUriError(
            f"{s!r}: expected omero://{host}/Kind:ID with Kind one of {', '.join(KINDS)}"
        )
    kind = _normalise_kind(m["kind"], source=s)
    return OmeroRef(host=host.lower(), port=port, kind=kind, id=int(m["id"]))


def _parse_web_link(s: str, host: str, path: str, query: str) -> list[OmeroRef]:
    host = host.lower()
    params = parse_qs(query)
    m = _IMG_DETAIL.search(path)
    if m:
        return [OmeroRef(host, None, "Image", int(m["id"]))]
    if re.search(r"/iviewer/?$", path) and "images" in params:
        ids = [i for v in params["images"] for i in v.split(",") if i.strip()]
        if not ids or not all(i.strip().isdigit() for i in ids):
            raise OmeroUriError(f"{s!r}: 'images=' must list image ids, e.g. images=12")
        return [OmeroRef(host, None, "Image", int(i)) for i in ids]
    if re.search(r"/webclient/?$", path) and "show" in params:
        refs = []
        for value in params["show"]:
            for item in value.split("|"):
                mi = _SHOW_ITEM.match(item.strip())
                if not mi:
                    raise OmeroUriError(f"{s!r}: cannot read 'show={item}' (expected kind-ID)")
                refs.append(
                    OmeroRef(host, None, _normalise_kind(mi["kind"], source=s), int(mi["id"]))
                )
        if refs:
            return refs
    raise OmeroUriError(
        f"{s!r} is not an OMERO.web link we understand: expected .../webclient/?show=image-ID, "
        ".../webclient/img_detail/ID/ or .../iviewer/?images=ID"
    )


def _normalise_kind(kind: str, *, source: str) -> str:
    try:
        return _KIND_BY_LOWER[kind.lower()]
    except KeyError:
        raise OmeroUriError(
            f"{source!r}: unsupported OMERO object kind {kind!r}; "
            f"expected one of {', '.join(KINDS)}"
        ) from None
