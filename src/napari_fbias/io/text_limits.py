"""Text as it may be recorded or exported: no credentials, no control characters, bounded.

Free text typed or pasted by people (names, notes, questions, URLs) ends up
in the session record and in every file of a delivery bundle. Three rules
apply to it, in this order, through :func:`bound_text`:

1. characters that hide or garble text are removed (:func:`printable_text`):
   NUL and other control characters except tab and line feed (a carriage
   return becomes a line feed), Unicode direction overrides and isolates
   (the "Trojan Source" characters) and lone surrogates (which cannot be
   written as UTF-8);
2. URLs lose their credentials (:func:`~napari_fbias.io.credentials.scrub_text`);
3. the text is cut to a length limit (:func:`limit_text`); what is cut is
   replaced by a marker naming its length and a short hash, so two long
   values that differ stay different.

The limits are named constants here (``docs/architecture.md``, "What counts
as a secret"). Every function takes time linear in the length of its input.
"""

from __future__ import annotations

import hashlib
import re

#: Names: user, lab, analyst, approach keys and titles, image and layer names,
#: step ids, result keys, session title.
MAX_NAME = 200
#: Free text: the question, notes, the solution, each issue and next step.
MAX_TEXT = 20_000
#: Image sources (paths, URLs).
MAX_URI = 4096
#: Slugs of RO-Crate ``@id`` values (``#person-<slug>``, ``#run-<slug>``).
MAX_SLUG = 64

_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 (but tab, LF, CR) and C1 controls
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\ud800-\udfff]"  # lone surrogates
)


def printable_text(text: str) -> str:
    """Return ``text`` without control, direction-override or surrogate characters.

    Tabs and line feeds stay; carriage returns (CR LF, CR) and the Unicode
    line and paragraph separators become line feeds.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    return _UNPRINTABLE.sub("", text)


def limit_text(text: str, max_chars: int) -> str:
    """Return ``text`` cut to at most ``max_chars`` characters.

    A cut text ends with ``… [N more characters, sha256 abcdef12]`` (N and
    the hash of the whole text), within the limit.

    Parameters
    ----------
    text : str
        Any text.
    max_chars : int
        The limit (at least 48, room for the marker).

    Returns
    -------
    str
        ``text`` itself when short enough.
    """
    if len(text) <= max_chars:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    keep = max_chars - len(f"… [{len(text)} more characters, sha256 {digest}]")
    keep = max(keep, 0)
    return f"{text[:keep]}… [{len(text) - keep} more characters, sha256 {digest}]"


def bound_text(text: str, max_chars: int) -> str:
    """Return free text as it may be recorded or exported (the three rules above).

    Parameters
    ----------
    text : str
        Text typed or pasted by someone.
    max_chars : int
        Its limit: :data:`MAX_NAME`, :data:`MAX_TEXT` or :data:`MAX_URI`.

    Returns
    -------
    str
        Without credentials in URLs, without control characters, at most
        ``max_chars`` characters long.
    """
    from napari_fbias.io.credentials import scrub_text

    cut = limit_text(scrub_text(printable_text(str(text))), max_chars)
    return scrub_text(cut)  # a URL cut short may now show a query item that is not harmless
