"""An approach's recorded results as rows a person reads: name, value, unit.

Analysts note results as a mapping (``{"objects": {"A: nuclei": 57},
"median_area_um2": 52.1, "f1_vs_ground_truth": 0.93}``); the report shows
them as a table, never as Python text. Names lose their underscores, a unit
written as a suffix of the name (``_um2``, ``_px``, ``_s``...) moves to the
unit column, counts say what they count, and nested mappings become one row
per entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Name suffix -> unit, longest first (``speed_um_s`` is µm/s, not s).
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_um_per_s", "µm/s"),
    ("_um_s", "µm/s"),
    ("_px_per_frame", "pixels/frame"),
    ("_percent", "%"),
    ("_seconds", "s"),
    ("_pixels", "pixels"),
    ("_frames", "frames"),
    ("_um2", "µm²"),
    ("_um3", "µm³"),
    ("_px2", "pixels²"),
    ("_min", "min"),
    ("_pct", "%"),
    ("_sec", "s"),
    ("_um", "µm"),
    ("_nm", "nm"),
    ("_px", "pixels"),
    ("_s", "s"),
)
#: Last words of a name that say what is counted (``true_tracks`` counts tracks).
COUNTED = frozenset({"objects", "nuclei", "cells", "spots", "tracks", "labels", "divisions"})
#: First words of a name that make it a score between 0 and 1.
SCORES = frozenset({"f1", "precision", "recall", "iou", "jaccard", "dice"})


@dataclass(frozen=True)
class ResultRow:
    """One result: what it is, its value as text, and its unit (empty if not known)."""

    name: str
    value: str
    unit: str = ""


def label(key: Any) -> str:
    """Return a result name for people: underscores as spaces, first letter upper case."""
    text = " ".join(re.sub(r"_+", " ", str(key)).split())
    return text[:1].upper() + text[1:]


def split_unit(key: Any) -> tuple[str, str]:
    """Return ``(name, unit)`` of a result key.

    ``"median_area_um2"`` -> ``("Median area", "µm²")``; the unit is empty
    when the key does not say it.
    """
    text = str(key).strip()
    low = text.lower()
    for suffix, unit in UNIT_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return label(text[: -len(suffix)]), unit
    words = [w for w in re.split(r"[\s_]+", low) if w]
    if words and words[-1] in COUNTED:
        return label(text), words[-1]
    if words and words[0] in SCORES:
        return label(text), "score, 0 to 1"
    return label(text), ""


def value_text(value: Any) -> str:
    """Return a value as people write it (``yes``, ``0.9312``, ``12,480``, ``a, b``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{label(k)}: {value_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(value_text(v) for v in value)
    return str(value)


#: The result key under which a batch over plates is recorded: plate name -> plate result
#: (``pipeline.plate_tables.plate_result``); the report draws each as a heat map.
PLATES = "plates"


def plate_row(plate: Any, found: Any) -> ResultRow:
    """One row saying what a plate result holds (its numbers are in the heat map)."""
    from napari_fbias.pipeline.plate_tables import check_plate_result

    try:
        r = check_plate_result(found)
    except ValueError as exc:
        return ResultRow(f"Plate {plate}", f"not shown: {exc}", "")
    wells = [v for line in r["values"] for v in line if v is not None]
    mean = sum(wells) / len(wells) if wells else None
    text = f"{label(r.get('column', ''))}: mean {value_text(mean)} over {len(wells):,} wells"
    if r.get("failed"):
        text += f" ({value_text(r['failed'])} fields failed)"
    return ResultRow(f"Plate {plate}", text, "")


def result_rows(result: Mapping[str, Any]) -> list[ResultRow]:
    """Return the rows of an approach's result mapping, in its order.

    A nested mapping (``{"objects": {"A: nuclei": 57}}``) gives one row per
    entry, named ``"Objects: A: nuclei"``, with the unit of the outer key.
    """
    rows: list[ResultRow] = []
    for key, value in result.items():
        name, unit = split_unit(key)
        if key == PLATES and isinstance(value, Mapping):
            rows += [plate_row(plate, found) for plate, found in value.items()]
        elif isinstance(value, Mapping) and value:
            rows += [ResultRow(f"{name}: {k}", value_text(v), unit) for k, v in value.items()]
        else:
            rows.append(ResultRow(name, value_text(value), unit))
    return rows
