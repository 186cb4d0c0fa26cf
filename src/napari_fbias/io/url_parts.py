"""Split URLs as people paste them, and find them in free text, in linear time.

:func:`urllib.parse.urlsplit` follows RFC 3986: the authority ends at the
first ``/``, ``?`` or ``#``. A pasted password often holds one of them
(about half of AWS secret keys contain ``/``), so ``s3://KEY:ab/cd@bucket/x``
would leave ``cd`` in the "path". Here the user information is everything
before the **last** ``@`` that is followed by a host, whenever the URL shows
any sign of having user information (see :func:`userinfo_end`). This module
only knows the syntax; what counts as secret is decided in
:mod:`napari_fbias.io.credentials`.

Every function runs in time linear in the length of its input, whatever the
input (no regular expression here can backtrack more than a bounded amount).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

#: How far (characters, same line) a URL in free text may continue past a space
#: or a quote when its start looks like ``user:password`` (a password with a space).
USERINFO_LOOKAHEAD = 256
#: Longest scheme looked for before ``://`` in free text (real ones have a few letters).
SCHEME_MAX = 32

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(?::(?P<port>[0-9]{1,5}))?"
_HOST_FULL = re.compile(_HOST)
#: A host (and port) starting at a position and ending the authority.
_HOST_HERE = re.compile(_HOST + r"(?=[/?#]|\Z)")
_AUTH_END = re.compile(r"[/?#]")
#: Characters that end a URL in free text.
_TEXT_STOP = re.compile(r"[\s'\"<>\\`]")
#: Punctuation that ends a sentence rather than a URL.
_TRAILING = ".,;:!?)]}"


@dataclass(frozen=True)
class UrlParts:
    """The raw pieces of a URL (nothing decoded).

    Attributes
    ----------
    scheme : str
        ``https``, ``s3``, ``omero``...
    userinfo : str
        What comes before the ``@`` ending the user information ("" when none).
    host : str
        Host and port.
    path : str
        From the first ``/`` after the host up to ``?`` or ``#``.
    query : str or None
        After ``?`` (None when there is no ``?``).
    fragment : str or None
        After ``#`` (None when there is no ``#``).
    """

    scheme: str
    userinfo: str
    host: str
    path: str
    query: str | None
    fragment: str | None

    def join(self) -> str:
        """Return the URL these parts make."""
        out = f"{self.scheme}://"
        if self.userinfo:
            out += self.userinfo + "@"
        out += self.host + self.path
        if self.query is not None:
            out += "?" + self.query
        if self.fragment is not None:
            out += "#" + self.fragment
        return out


def is_scheme(text: str) -> bool:
    """Tell whether ``text`` is a URL scheme (a letter, then letters, digits, ``+.-``)."""
    return bool(text) and text[0].isascii() and text[0].isalpha() and set(text) <= _SCHEME_CHARS


def _valid_host(seg: str) -> re.Match[str] | None:
    return _HOST_FULL.fullmatch(seg)


def _last_host_at(rest: str, fallback: bool) -> int:
    """Index of the last ``@`` of ``rest`` followed by a host (else the last ``@``, or -1)."""
    last = j = rest.rfind("@")
    while j >= 0:
        if _HOST_HERE.match(rest, j + 1):
            return j
        j = rest.rfind("@", 0, j)
    return last if fallback else -1


def userinfo_end(rest: str) -> int:
    """Return the index of the ``@`` that ends the user information of ``rest``, or -1.

    ``rest`` is the URL after ``scheme://``. Let the first segment be what
    comes before the first ``/``, ``?`` or ``#``. The user information ends
    at the last ``@`` followed by a host (``host[:port]`` ending the string
    or followed by ``/``, ``?`` or ``#``) when

    * the first segment contains ``@`` (the plain case, ``user:pw@host``), or
      is not a ``host[:port]`` (``KEY:ab/cd@bucket``: ``KEY:ab`` cannot be a
      host and port) -- then, if no ``@`` is followed by a host, at the last
      ``@``;
    * the first segment is a ``host:port`` (a password starting with digits),
      is followed by ``?`` or ``#`` (a password holding them), or a ``:``
      comes after it (``user/x:pw@host``), and an ``@`` followed by a host
      comes after it.

    Otherwise there is none: a path holding ``@`` (``https://medium.com/@ann``)
    is no user information. When there is some, a path, query or fragment
    holding ``@`` after it is taken with it (the safe side).
    """
    if "@" not in rest:
        return -1
    m = _AUTH_END.search(rest)
    end0 = m.start() if m else len(rest)
    seg0 = rest[:end0]
    host = _valid_host(seg0) if seg0 else None
    if "@" in seg0 or (seg0 and host is None):
        return _last_host_at(rest, fallback=True)
    if (host is not None and host.group("port") is not None) or rest[end0 : end0 + 1] in ("?", "#"):
        return _last_host_at(rest, fallback=False)
    colon = rest.find(":", end0)
    if colon >= 0:
        at = _last_host_at(rest, fallback=False)
        return at if at > colon else -1
    return -1


def split_url(url: str) -> UrlParts | None:
    """Split ``scheme://[userinfo@]host[/path][?query][#fragment]``; None if not such a URL."""
    i = url.find("://")
    if i <= 0 or not is_scheme(url[:i]):
        return None
    rest = url[i + 3 :]
    at = userinfo_end(rest)
    userinfo = rest[:at] if at >= 0 else ""
    after = rest[at + 1 :]
    m = _AUTH_END.search(after)
    cut = m.start() if m else len(after)
    host, tail = after[:cut], after[cut:]
    q, h = tail.find("?"), tail.find("#")
    query = fragment = None
    if h >= 0 and (q < 0 or h < q):
        path, fragment = tail[:h], tail[h + 1 :]
    elif q >= 0:
        path = tail[:q]
        if h >= 0:
            query, fragment = tail[q + 1 : h], tail[h + 1 :]
        else:
            query = tail[q + 1 :]
    else:
        path = tail
    return UrlParts(url[:i], userinfo, host, path, query, fragment)


def _looks_like_userinfo_start(token_rest: str) -> bool:
    """``user:pa`` (not a ``host:port``) before a space or quote: a password may go on."""
    m = _AUTH_END.search(token_rest)
    seg0 = token_rest[: m.start()] if m else token_rest
    return ":" in seg0 and "@" not in seg0 and _valid_host(seg0) is None


def iter_url_spans(text: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of every URL (``scheme://...``) written in free text.

    A URL ends at white space, a quote, ``<``, ``>``, a backslash or a
    backtick; punctuation ending a sentence (``.,;:!?)]}``) is not part of it.
    When the URL so found has no ``@`` and starts like ``user:password``,
    it goes on to an ``@`` on the same line within
    :data:`USERINFO_LOOKAHEAD` characters (a password holding a space or a
    quote), and to the end of the host after it.
    """
    pos = 0
    n = len(text)
    while True:
        i = text.find("://", pos)
        if i < 0:
            return
        start, floor = i, max(pos, i - SCHEME_MAX)
        while start > floor and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < i and not (text[start].isascii() and text[start].isalpha()):
            start += 1
        if start == i:
            pos = i + 3
            continue
        m = _TEXT_STOP.search(text, i + 3)
        end = m.start() if m else n
        if end < n and _looks_like_userinfo_start(text[i + 3 : end]):
            window = text[end : min(n, end + USERINFO_LOOKAHEAD)]
            window = window.split("\n", 1)[0]
            other = window.find("://")
            if other >= 0:
                window = window[:other]
            at = window.rfind("@")
            if at >= 0:
                m = _TEXT_STOP.search(text, end + at + 1)
                end = m.start() if m else n
        while end > i + 3 and text[end - 1] in _TRAILING:
            end -= 1
        yield start, end
        pos = max(end, i + 3)
