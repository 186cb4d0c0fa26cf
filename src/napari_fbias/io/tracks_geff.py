"""Writing tracks as GEFF, the graph exchange format for tracking (read by napari-geff, ultrack...).

A GEFF is a zarr group: one node per detection (``t``, ``(z)``, ``y``, ``x``
and the table's other numeric columns as node properties, ``track_id`` as the
tracklet), one edge from each detection to the next of its track, and one
edge from the last detection of a mother track to the first detection of
each daughter (a division: rows with ``parent_track_id``). The metadata are
the spec's own model (``geff-spec``); the arrays are written with zarr (v2, as
the reference ``geff`` package writes them; the tests read and validate every
output with that package), atomically, in the table's column order (the same
table gives the same bytes), and never over an existing output unless asked
to. The ``geff`` package itself is not a dependency: it pins ``numcodecs``
below what zarr 3 needs, behind a version marker that older pips cannot read.

Nothing here imports Qt, napari or the ops.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.io.atomic import atomic_dir
from napari_fbias.io.tracks_write import NAPARI_TRACK_COLUMNS

__all__ = ["track_graph", "write_geff"]

#: Columns kept out of the node properties (identifiers, not measurements).
_NOT_PROPS = frozenset({"parent_track_id", "label"})


def track_graph(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Return ``(node_ids, edges, props)`` of a tracks table.

    Node ids are the row positions of the table (0..n-1); ``edges`` is an
    ``(m, 2)`` array of (source, target) node ids: consecutive detections of
    a track (gaps bridged), then mother -> daughter for each division;
    ``props`` maps column name -> values (numeric columns only).

    Raises
    ------
    ValueError
        When the table lacks ``track_id``, ``t``, ``y``, ``x``, a track has two
        detections in one frame, or a daughter names a mother not in the table.
    """
    missing = [c for c in ("track_id", "t", "y", "x") if c not in tracks.columns]
    if missing:
        raise ValueError(f"write_geff: the tracks table has no column(s) {', '.join(missing)}")
    n = len(tracks)
    tid = tracks["track_id"].to_numpy().astype(np.int64)
    t = tracks["t"].to_numpy().astype(np.int64)
    order = np.lexsort((t, tid))
    same = tid[order][1:] == tid[order][:-1]
    if np.any(same & (t[order][1:] == t[order][:-1])):
        i = int(np.flatnonzero(same & (t[order][1:] == t[order][:-1]))[0])
        raise ValueError(f"write_geff: track {tid[order][i]} has two detections at t={t[order][i]}")
    edges = [np.stack([order[:-1][same], order[1:][same]], axis=1)]
    if "parent_track_id" in tracks.columns and n:
        first = {
            int(k): int(order[i]) for i, k in enumerate(tid[order]) if i == 0 or not same[i - 1]
        }
        last = {int(tid[order][i]): int(order[i]) for i in range(n)}  # the last one wins
        parents = tracks["parent_track_id"].to_numpy()
        division = []
        for track, node in first.items():
            p = parents[node]
            if p == p and int(p) > 0:
                if int(p) not in last:
                    raise ValueError(
                        f"write_geff: track {track} has parent track {int(p)}, not in the table"
                    )
                division.append((last[int(p)], node))
        if division:
            edges.append(np.asarray(division, dtype=np.int64))
    edge_ids = np.concatenate(edges).astype(np.int64) if n else np.empty((0, 2), np.int64)
    props = {
        str(c): tracks[c].to_numpy()
        for c in tracks.columns
        if c not in _NOT_PROPS and pd.api.types.is_numeric_dtype(tracks[c])
    }
    return np.arange(n, dtype=np.int64), edge_ids.reshape(-1, 2), props


def write_geff(
    dest: str | os.PathLike[str],
    tracks: pd.DataFrame,
    *,
    spacing: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    time_unit: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a tracks table as a GEFF zarr group at ``dest`` (e.g. ``tracks.geff``).

    Parameters
    ----------
    dest : path-like
        The GEFF folder to create; its parent must exist.
    tracks : pandas.DataFrame
        Tracks table (``track_id, t, (z), y, x`` in pixels, other numeric
        columns become node properties; ``parent_track_id`` gives divisions).
    spacing : sequence of float, optional
        Pixel size along ``(z), y, x``: written as the axes' scale, so readers
        can place the nodes in physical space.
    units : sequence of str or None, optional
        Units along ``(z), y, x`` (``"micrometer"``...).
    time_unit : str, optional
        Unit of ``t`` (default: frames).
    overwrite : bool
        Replace an existing ``dest`` (default: refuse).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    OutputExistsError
        If ``dest`` exists and ``overwrite`` is False.
    ValueError
        For a table that is not tracks (see :func:`track_graph`), or
        ``spacing``/``units`` that do not fit its spatial axes.
    """
    import zarr
    from geff_spec import Axis, GeffMetadata, PropMetadata

    node_ids, edge_ids, props = track_graph(tracks)
    spatial = [c for c in NAPARI_TRACK_COLUMNS[2:] if c in tracks.columns]
    for what, given in (("spacing", spacing), ("units", units)):
        if given is not None and len(given) != len(spatial):
            raise ValueError(
                f"write_geff: {what} has {len(given)} values for the {len(spatial)} spatial "
                f"axes {', '.join(spatial)}"
            )
    names = ["t", *spatial]
    scales = [1.0, *(float(x) for x in (spacing or [1.0] * len(spatial)))]
    unit_of = [time_unit or "frame", *(units or [None] * len(spatial))]
    types = ["time", *(["space"] * len(spatial))]
    axes = []
    for name, kind, unit, scale in zip(names, types, unit_of, scales, strict=True):
        values = np.asarray(props[name], dtype=np.float64)
        seen = values[np.isfinite(values)]
        lo, hi = (float(seen.min()), float(seen.max())) if seen.size else (None, None)
        axes.append(Axis(name=name, type=kind, unit=unit, scale=scale, min=lo, max=hi))
    # the table's column order, not a set's: the same table gives the same bytes in any process
    metadata = GeffMetadata(
        directed=True,
        axes=axes,
        node_props_metadata={
            name: PropMetadata(identifier=name, dtype=str(values.dtype))
            for name, values in props.items()
        },
        edge_props_metadata={},
        track_node_props={"tracklet": "track_id"},
    )

    def array(group: Any, name: str, data: np.ndarray) -> None:
        chunks = (max(len(data), 1), *data.shape[1:])
        group.create_array(name, data=data, chunks=chunks, write_data=True)

    with atomic_dir(dest, overwrite=overwrite) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        nodes, edges = root.create_group("nodes"), root.create_group("edges")
        array(nodes, "ids", node_ids)
        array(edges, "ids", edge_ids)
        node_props = nodes.create_group("props")
        for name, values in props.items():
            array(node_props.create_group(name), "values", np.ascontiguousarray(values))
        root.attrs["geff"] = metadata.model_dump(mode="json")
    return Path(dest)
