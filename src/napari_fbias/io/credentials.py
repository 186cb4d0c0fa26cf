"""Keep credentials out of everything we write or say: URLs without passwords or tokens.

A URL may carry a password (``https://user:pass@host/...``), a token
(``?token=...``) or a signature (pre-signed S3 URLs). Readers open the real
URL but name the source with :func:`sanitize_uri` in images, records and
error messages; free text goes through :func:`scrub_text`. Settings whose
*name* says they hold a secret are recognised by :func:`is_secret_name`.
The session record uses these too (:mod:`napari_fbias.session.secrets`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Name parts (split on ``_``, ``-``, ``.`` and case changes) that mark a secret.
SECRET_WORDS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "token",
        "secret",
        "key",
        "apikey",
        "credential",
        "credentials",
        "signature",
        "sig",
        "auth",
        "authorization",
        "session",
        "sessionid",
        "bsession",
        "cookie",
    }
)

_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def is_secret_name(name: str) -> bool:
    """Return True when a setting or query parameter name looks like it holds a secret.

    Examples: ``password``, ``api_key``, ``X-Amz-Signature``, ``accessToken``,
    ``omero_session`` are secret; ``keypoints``, ``min_size`` are not.
    """
    parts = {p.lower() for p in _PARTS.findall(name)}
    return bool(parts & SECRET_WORDS) or name.lower() in SECRET_WORDS


def sanitize_uri(uri: str) -> str:
    """Return ``uri`` without user name, password or secret query parameters.

    Local paths are returned unchanged; ``omero://host/Image:ID`` URIs keep
    their host and image id.

    Parameters
    ----------
    uri : str
        A path, URL or ``omero://`` URI.

    Returns
    -------
    str
        The same location, without credentials.
    """
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            _drop_secrets(parts.query),
            _drop_secrets(parts.fragment),
        )
    )


def _drop_secrets(query: str) -> str:
    """Remove ``name=value`` pairs with a secret-looking name from a query string."""
    if "=" not in query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_secret_name(k)]
    return query if len(kept) == len(pairs) else urlencode(kept)


def scrub_text(text: str) -> str:
    """Remove credentials from URLs written inside free text (notes, issues...)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: sanitize_uri(m.group(0)), text)
