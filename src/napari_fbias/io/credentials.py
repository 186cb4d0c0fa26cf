"""Keep credentials out of everything we write or say: URLs without passwords or tokens.

A URL may carry a password (``https://user:pass@host/...``), a token
(``?token=...``) or a signature (pre-signed S3 URLs). Readers open the real
URL but name the source with :func:`sanitize_uri` in images, records and
error messages; free text goes through :func:`scrub_text`, and
:func:`find_secrets` is the check run on every file of a delivery bundle.
Settings whose *name* says they hold a secret are recognised by
:func:`is_secret_name`. The session record uses these too
(:mod:`napari_fbias.session.secrets`).

What is secret (``docs/architecture.md``, "What counts as a secret"):

* all user information of a URL (user name and password), as split by
  :func:`napari_fbias.io.url_parts.split_url`;
* every query or fragment item that is not known to be harmless
  (:func:`harmless_item`).

All functions here take time linear in the length of their input.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from napari_fbias.io.url_parts import iter_url_spans, split_url

#: Name parts (split on ``_``, ``-``, ``.`` and case changes) that mark a secret.
SECRET_WORDS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pw",
        "pwd",
        "token",
        "jwt",
        "bearer",
        "secret",
        "key",
        "apikey",
        "credential",
        "credentials",
        "signature",
        "sig",
        "auth",
        "authorization",
        "code",
        "otp",
        "session",
        "sessionid",
        "bsession",
        "cookie",
    }
)

#: Query and fragment parameter names whose (short) values are kept in URLs
#: (lower case). Any other value is dropped unless it is a small number or a yes/no.
HARMLESS_QUERY_NAMES: frozenset[str] = frozenset(
    {
        "alt",
        "channel",
        "dl",
        "download",
        "egg",
        "format",
        "frame",
        "generation",
        "lang",
        "level",
        "md5",
        "page",
        "raw",
        "region",
        "resolution",
        "series",
        "sha1",
        "sha256",
        "sha512",
        "subdirectory",
        "v",
        "version",
        "versionid",
        "x-amz-algorithm",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-id",
    }
)
#: Longest value kept for a harmless parameter name.
HARMLESS_VALUE_MAX = 128

_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SMALL_VALUE = re.compile(r"-?[0-9]{1,3}(?:\.[0-9]{1,3})?|true|false|yes|no|on|off", re.I)


def is_secret_name(name: str) -> bool:
    """Return True when a setting or query parameter name looks like it holds a secret.

    Examples: ``password``, ``api_key``, ``X-Amz-Signature``, ``accessToken``,
    ``omero_session``, ``jwt``, ``pw`` are secret; ``keypoints``,
    ``min_size``, ``passes`` are not.
    """
    parts = {p.lower() for p in _PARTS.findall(name)}
    return bool(parts & SECRET_WORDS) or name.lower() in SECRET_WORDS


def harmless_item(item: str) -> bool:
    """Tell whether one ``name=value`` item of a query or fragment may be kept.

    It may when its name does not look secret and either the name is in
    :data:`HARMLESS_QUERY_NAMES` (and the value is short, with no ``@`` nor
    ``://``), or the value is a small number (at most 3 digits, e.g.
    ``x=1``, ``z=0.5``) or a yes/no. An item without ``=`` is kept only when
    it is a harmless name (``?download``) or a small number.
    """
    if not item:
        return True
    raw_name, sep, raw_value = item.partition("=")
    name, value = unquote_plus(raw_name), unquote_plus(raw_value)
    if is_secret_name(name):
        return False
    if not sep:
        return name.lower() in HARMLESS_QUERY_NAMES or bool(_SMALL_VALUE.fullmatch(name))
    if _SMALL_VALUE.fullmatch(value):
        return True
    return (
        name.lower() in HARMLESS_QUERY_NAMES
        and len(value) <= HARMLESS_VALUE_MAX
        and "@" not in value
        and "://" not in value
    )


def _keep_harmless(raw: str | None) -> tuple[str | None, int]:
    """Return ``raw`` (a query or fragment) with only its harmless items, and how many went."""
    if not raw:
        return raw, 0
    items = raw.split("&")
    kept = [it for it in items if harmless_item(it)]
    dropped = len(items) - len(kept)
    if not dropped:
        return raw, 0
    return ("&".join(kept) if any(kept) else None), dropped


def sanitize_uri(uri: str) -> str:
    """Return ``uri`` without user information or secret query / fragment items.

    Local paths are returned unchanged; ``omero://host/Image:ID`` URIs keep
    their host and image id. Applying it twice gives the same result.

    Parameters
    ----------
    uri : str
        A path, URL or ``omero://`` URI.

    Returns
    -------
    str
        The same location, without credentials.
    """
    parts = split_url(uri)
    if parts is None:
        return uri
    query, _ = _keep_harmless(parts.query)
    fragment, _ = _keep_harmless(parts.fragment)
    if not parts.userinfo and query == parts.query and fragment == parts.fragment:
        return uri
    return type(parts)(parts.scheme, "", parts.host, parts.path, query, fragment).join()


def secret_parts(url: str) -> list[str]:
    """Say (without quoting them) which secrets a URL holds; empty when none.

    Returns
    -------
    list of str
        E.g. ``["a user name or password", "2 query/fragment values"]``.
    """
    parts = split_url(url)
    if parts is None:
        return []
    found = ["a user name or password"] if parts.userinfo else []
    dropped = _keep_harmless(parts.query)[1] + _keep_harmless(parts.fragment)[1]
    if dropped:
        found.append(f"{dropped} query/fragment value{'s' if dropped > 1 else ''}")
    return found


def _clean_url(url: str) -> str:
    """:func:`sanitize_uri`, also of what the URL says once HTML references are decoded."""
    clean = sanitize_uri(url)
    if "&" in clean:
        decoded = html.unescape(clean)
        if decoded != clean and secret_parts(decoded):
            return sanitize_uri(decoded)
    return clean


def scrub_text(text: str) -> str:
    """Remove credentials from URLs written inside free text (notes, issues, messages...).

    URLs are found by :func:`~napari_fbias.io.url_parts.iter_url_spans` (a
    password holding a space or a quote included) and replaced by
    :func:`sanitize_uri` of themselves (of their HTML-decoded form when that
    one holds credentials: ``&commat;`` for ``@``).
    """
    if "://" not in text:
        return text
    out: list[str] = []
    pos = 0
    for start, end in iter_url_spans(text):
        out += [text[pos:start], _clean_url(text[start:end])]
        pos = end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class SecretFound:
    """A URL holding credentials, found in a text (the secret itself is not kept).

    Attributes
    ----------
    line, column : int
        Where the URL starts (1-based).
    scheme : str
        Its scheme (``https``...).
    what : tuple of str
        What it holds (see :func:`secret_parts`).
    """

    line: int
    column: int
    scheme: str
    what: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}:{self.column} ({self.scheme}:// URL with {', '.join(self.what)})"


def find_secrets(text: str) -> list[SecretFound]:
    """Return the URLs in ``text`` that hold credentials, by position.

    HTML character references in a URL are decoded first (``&amp;`` in a
    report), so that a URL counts as secret exactly when :func:`scrub_text`
    would change it.
    """
    if "://" not in text:
        return []
    found: list[SecretFound] = []
    line, line_start, counted = 1, 0, 0
    for start, end in iter_url_spans(text):
        url = text[start:end]
        what = secret_parts(html.unescape(url) if "&" in url else url)
        if not what:
            continue
        line += text.count("\n", counted, start)
        nl = text.rfind("\n", counted, start)
        line_start = nl + 1 if nl >= 0 else line_start
        counted = start
        scheme = url.split("://", 1)[0][:20]
        found.append(SecretFound(line, start - line_start + 1, scheme, tuple(what)))
    return found
