"""Which image sources an export may read: those the analysts opened in the session.

A session names its images by source (a path, a URL, an ``omero://`` URI).
An export reads them to draw the report's figures (it reruns the approaches)
and, with ``include_images``, to copy them into the bundle. A session record
received from someone else (a ``session.yaml`` sent by e-mail, a session
restored from one) could name any file on the analyst's machine or any URL,
and the export would read it into ``report.html``. So an export reads a
source only when the session's own journals say an analyst opened it.

The rule:

* **Opened in this session**: a source recorded by an ``image_added`` event
  in a journal of the session (in its session space): an analyst opened that
  image in napari (or a script called ``SessionRecorder.add_image``).
* **Foreign**: every other source -- the images of a ``session.yaml`` named
  directly, of a session folder holding only a ``session.yaml``, of the
  snapshot a journal was restored from (its first event,
  ``session_restored``), and of a :class:`~napari_fbias.session.model.Session`
  value (which does not say where it came from).

Foreign sources are read only when asked: ``export_bundle(...,
read_sources=True)``, ``fbias export --read-sources``. Otherwise the
approaches reading them get no figures and their images are not copied, and
the export's notes and the report say why and how to allow it.

The journals themselves are trusted: a session folder copied, journals and
all, from someone else counts as recorded here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_fbias.session.model import ImageRef, Session

__all__ = ["HOW_TO_ALLOW", "SourceAccess", "exported_source", "source_access"]

#: At most this many images are named when their sources are not read.
NAMES_SHOWN = 10
#: How to allow reading foreign sources (said in every refusal).
HOW_TO_ALLOW = (
    "if you trust where this session record came from, export again with "
    "`fbias export --read-sources` (Python: `export_bundle(..., read_sources=True)`)"
)


@dataclass(frozen=True)
class SourceAccess:
    """The image sources an export may read.

    Attributes
    ----------
    opened : frozenset of str
        Sources opened in the session (as they are in the cleaned session).
    read_all : bool
        Every source may be read (the user asked: ``read_sources=True``).
    origin : str
        Where the session's other sources come from, for messages (e.g.
        ``"the session.yaml named directly"``).
    """

    opened: frozenset[str] = frozenset()
    read_all: bool = False
    origin: str = "the session record"

    def allows(self, source: str) -> bool:
        """Return whether the export may read ``source``."""
        return self.read_all or (bool(source) and source in self.opened)

    def refused(self, images: Mapping[str, str]) -> list[str]:
        """Return the names of the images (name -> source) whose source may not be read."""
        return [name for name, source in images.items() if not self.allows(source)]

    def why(self, names: Iterable[str]) -> str:
        """Say why images were not read, and how to allow it (one sentence, no source)."""
        names = list(names)
        listed = ", ".join(repr(n) for n in names[:NAMES_SHOWN])
        if len(names) > NAMES_SHOWN:
            listed += f" and {len(names) - NAMES_SHOWN:,} more"
        return (
            f"image(s) {listed} were not opened in this session (no analyst recorded opening "
            f"them): they come only from {self.origin}, and an export does not read files or "
            f"URLs that a session record names; {HOW_TO_ALLOW}"
        )


def exported_source(source: str) -> str:
    """Return a recorded source as it is in the session the export writes (cleaned, bounded)."""
    from napari_fbias.session.export.clean import clean_value

    ref = ImageRef(name="image", source=str(source))
    return ImageRef.from_dict(clean_value(ref.to_dict())).source


def _journal_sources(link: str | os.PathLike[str]) -> tuple[frozenset[str], bool]:
    """Return the sources of every ``image_added`` event in a session's journals, and if any.

    Damaged journals are read up to the damage, as when the session is loaded
    (which already warned about them).
    """
    from napari_fbias.session.errors import JournalRecoveryWarning
    from napari_fbias.session.journal_tail import JournalTail
    from napari_fbias.session.shared import read_journals
    from napari_fbias.session.space import split_link

    space, name = split_link(link)
    tails: dict[str, JournalTail] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JournalRecoveryWarning)
        events = read_journals(space, name, tails)
    found: set[str] = set()
    for event in events:
        if event.get("event") != "image_added":
            continue
        image: Any = event.get("image")
        source = image.get("source") if isinstance(image, Mapping) else None
        if isinstance(source, str) and source:
            found.add(exported_source(source))
    return frozenset(found), bool(tails)


def source_access(
    session: Session | str | os.PathLike[str], *, read_sources: bool = False
) -> SourceAccess:
    """Return which sources an export of ``session`` may read (see the module doc).

    Parameters
    ----------
    session : Session or path
        What was given to the export: a Session value, a session link (its
        folder, a journal in it), or a ``session.yaml``.
    read_sources : bool
        Allow every source (the user trusts the record).
    """
    if read_sources:
        return SourceAccess(read_all=True)
    if isinstance(session, Session):
        return SourceAccess(origin="a Session value (it does not say who opened its images)")
    text = str(session)
    if "://" not in text:
        p = Path(text).expanduser()
        if p.suffix in (".yaml", ".yml") and not p.is_dir():
            return SourceAccess(origin=f"the session record {p.name} named directly")
    opened, has_journals = _journal_sources(session)
    if not has_journals:
        return SourceAccess(origin="the session folder's session.yaml (it has no journals)")
    return SourceAccess(
        opened=opened, origin="the snapshot the session was restored from (a session.yaml)"
    )
