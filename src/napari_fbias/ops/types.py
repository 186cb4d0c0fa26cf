"""Names for the kinds of data that flow between operations.

An operation's *data* parameters are annotated with these, its *settings*
are keyword-only parameters with plain types. The registry reads the
annotations to know what a step consumes and produces; the napari widgets map
them to napari layer types; nothing here imports napari.
"""

from __future__ import annotations

from typing import Literal, NewType

import numpy as np
import pandas as pd

#: Pixel intensities (any numeric dtype), spatial axes (``yx`` or ``zyx``) for
#: spatial operations, otherwise the axes the runner tells the op.
Image = NewType("Image", np.ndarray)
#: Integer object ids, 0 is background.
Labels = NewType("Labels", np.ndarray)
#: One row per object / measurement.
Table = NewType("Table", pd.DataFrame)
#: One row per detection, napari Tracks columns ``track_id, t, (z), y, x`` first.
Tracks = NewType("Tracks", pd.DataFrame)
#: One row per detected spot: ``t, (z), y, x`` plus features (trackpy columns).
Spots = NewType("Spots", pd.DataFrame)

DataKind = Literal["image", "labels", "table", "tracks", "spots"]

KIND_OF_TYPE: dict[object, DataKind] = {
    Image: "image",
    Labels: "labels",
    Table: "table",
    Tracks: "tracks",
    Spots: "spots",
}
ARRAY_KINDS: frozenset[str] = frozenset({"image", "labels"})
TABLE_KINDS: frozenset[str] = frozenset({"table", "tracks", "spots"})
