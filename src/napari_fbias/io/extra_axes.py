"""Extra axes of an OME-Zarr image, and the source syntax that picks one index of them.

NGFF 0.4 and 0.5 allow axes that are neither space, time nor channel (type
``custom``, another type, or none: ``angle``, ``phase``, ``view``...). The image
model stays ``tczyx``: one index along every extra axis is one image (the way a
bioformats2raw container holds several series). That image's source says
which index it is with a suffix at the end of the store's path::

    /data/spim.ome.zarr[angle=2]
    https://host/spim.ome.zarr[angle=2,view=0]?token=...   (before a URL's query)

Square brackets are not allowed unencoded in a URL's path (RFC 3986), so the
suffix cannot be mistaken for part of a URL, and it is not a query or
fragment, so :func:`~napari_fbias.io.credentials.sanitize_uri` keeps it
whatever the index. A local path is read as a suffix only when the path with
the suffix does not exist. This module is the one place that writes and
parses it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ExtraAxis",
    "extra_selections",
    "extra_stem",
    "split_extra",
    "with_extra",
]

_NAME = r"[^\[\]=,/?#\s]+"
_SUFFIX = re.compile(rf"\[({_NAME}=\d+(?:,{_NAME}=\d+)*)\](?=[?#]|\Z)")


@dataclass(frozen=True)
class ExtraAxis:
    """An axis of an OME-Zarr image that is not ``t``, ``c``, ``z``, ``y`` or ``x``.

    Attributes
    ----------
    name : str
        Its name in the metadata (``"angle"``).
    size : int
        Number of indices along it (at full resolution).
    type : str or None
        Its NGFF type (``"custom"``...), None when the metadata give none.
    unit : str or None
        Its unit, if the metadata give one.
    """

    name: str
    size: int
    type: str | None = None
    unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-safe dict."""
        return {"name": self.name, "size": self.size, "type": self.type, "unit": self.unit}


def split_extra(source: str | os.PathLike[str]) -> tuple[str, dict[str, int]]:
    """Split ``"store[angle=2]"`` into the store's source and ``{"angle": 2}``.

    A source without the suffix comes back as it is, with an empty selection;
    so does a local path that exists as written (a folder really named so).
    """
    s = os.fspath(source)
    found = None
    for m in _SUFFIX.finditer(s):
        found = m
    if found is None:
        return s, {}
    rest = s[found.end() :]
    if rest and "://" not in s:
        return s, {}  # a local path: the suffix ends it
    if "://" not in s and os.path.exists(s):
        return s, {}
    picks: dict[str, int] = {}
    for item in found.group(1).split(","):
        name, _, index = item.partition("=")
        picks[name] = int(index)
    return s[: found.start()] + rest, picks


def with_extra(source: str, picks: Mapping[str, int]) -> str:
    """Return ``source`` with the suffix that picks ``picks`` (before a URL's query)."""
    if not picks:
        return source
    suffix = "[" + ",".join(f"{k}={int(v)}" for k, v in picks.items()) + "]"
    if "://" in source:
        cut = min((i for i in (source.find("?"), source.find("#")) if i >= 0), default=-1)
        if cut >= 0:
            return source[:cut] + suffix + source[cut:]
    return source + suffix


def extra_stem(picks: Mapping[str, int]) -> str:
    """Result-folder suffix of one index: ``{"angle": 2}`` -> ``"_angle2"``."""
    safe = re.compile(r"[^A-Za-z0-9_.-]+")
    return "".join(f"_{safe.sub('-', k)}{int(v)}" for k, v in picks.items())


def extra_selections(axes: Sequence[ExtraAxis]) -> Iterator[dict[str, int]]:
    """Every index along the extra axes, the last axis varying fastest."""
    for combo in itertools.product(*(range(a.size) for a in axes)):
        yield {a.name: i for a, i in zip(axes, combo, strict=True)}
