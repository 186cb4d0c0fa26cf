"""One analyst of ``fbias demo``, recording from its own process into a shared session.

``python -m napari_fbias.demo_analyst LINK NAME`` joins the session at LINK
(as an analyst joining from their own napari would), opens the sample images,
records the approaches this analyst tries, and prints one JSON line per
approach: its key, what it found and a checksum of every result, so that
``fbias demo`` can check that recomputing the recorded steps on another
machine gives the very same results. Marie does the classical nuclei recipe;
Jean waits until Marie's approach is in the session (they agreed who does
what), then records threshold + watershed and spot tracking, at the same
time as Marie goes on.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from napari_fbias.io.column_table import as_frame


def _f1(gt: np.ndarray, labels: np.ndarray) -> float:
    from napari_fbias.ops.metrics import match_stats

    return round(float(match_stats(gt, labels, (0.5,))[0].f1), 3)


def _report(rec: Any, layers: Any, key: str, **found: Any) -> None:
    from napari_fbias.session.recompute import value_digest

    a = rec.session.approach(key)
    digests = {st.id: value_digest(layers.values[st.output_layer]) for st in a.steps}
    line = {"key": key, "title": a.title, "analyst": a.analyst, "digests": digests, **found}
    print("approach " + json.dumps(line), flush=True)


def marie(rec: Any, layers: Any, img: str) -> None:
    """Approach A: the classical nuclei recipe and a measurement."""
    from napari_fbias.io.samples import load_nuclei_2d

    _, truth = load_nuclei_2d()
    key = rec.add_approach("classical nuclei recipe", "Marie")
    lab = layers.run("segment.nuclei", {"image": img}, {}, f"{key}: nuclei")
    table = layers.run(
        "measure.regionprops",
        {"labels": f"{key}: nuclei", "image": img},
        {},
        f"{key}: measurements",
    )
    n, f1 = int(lab.data.max()), _f1(truth, lab.data)
    area = float(np.median(table.data["area_physical"]))
    rec.set_result({"objects": n, "f1_vs_ground_truth": f1, "median_area_um2": round(area, 1)})
    rec.set_notes(
        "Default nuclei recipe: smoothing, Otsu threshold, watershed split of touching "
        "nuclei, edge refinement. Looks right on every nucleus we checked."
    )
    _report(rec, layers, key, objects=n, f1=f1)


def jean(rec: Any, layers: Any, img: str) -> None:
    """Approaches B (threshold + watershed) and C (spot tracking), after Marie's A exists."""
    from napari_fbias.io.open import open_image
    from napari_fbias.io.samples import load_nuclei_2d, load_spots_timelapse, sample_path
    from napari_fbias.pipeline.provenance import array_sha256

    deadline = time.monotonic() + 120
    while not any(a.analyst == "Marie" for a in rec.session.approaches):
        if time.monotonic() > deadline:
            raise SystemExit("Marie's approach never arrived in the session")
        time.sleep(0.1)
        rec.sync()
    _, truth = load_nuclei_2d()
    _, truth_tracks = load_spots_timelapse()
    b = rec.add_approach("threshold + watershed", "Jean")
    layers.run("preprocess.gaussian", {"image": img}, {"sigma": 1.0}, f"{b}: smoothed")
    layers.run("segment.threshold", {"image": f"{b}: smoothed"}, {"min_size": 20}, f"{b}: mask")
    lab = layers.run(
        "segment.watershed_split",
        {"labels": f"{b}: mask", "image": f"{b}: smoothed"},
        {"min_distance": 4},
        f"{b}: nuclei",
    )
    n, f1 = int(np.count_nonzero(np.unique(lab.data))), _f1(truth, lab.data)
    rec.set_result({"objects": n, "f1_vs_ground_truth": f1})
    rec.set_notes("Simpler, but the outlines are looser and some nuclei are cut in two.")
    _report(rec, layers, b, objects=n, f1=f1)

    movie = open_image(sample_path("spots_timelapse"))
    mov = layers.add_image(movie, "sha256:" + array_sha256(movie.data))
    c = rec.add_approach("spot tracking", "Jean")
    tracks = layers.run("track.track_spots", {"image": mov}, {}, f"{c}: tracks")
    # the demo's movie is small: a tracks table on disk (ColumnTable) is read whole here
    n_c = int(as_frame(tracks.data)["track_id"].nunique())
    n_true = int(truth_tracks["track_id"].nunique())
    rec.set_result({"tracks": n_c, "true_tracks": n_true})
    rec.set_notes("trackpy with the defaults; blinking spots are bridged (memory 2 frames).")
    _report(rec, layers, c, tracks=n_c, true_tracks=n_true)


def main(argv: list[str] | None = None) -> int:
    """Join the session at ``argv[0]`` as analyst ``argv[1]`` and record their approaches."""
    from napari_fbias.demo import HeadlessLayers
    from napari_fbias.io.open import open_image
    from napari_fbias.io.samples import sample_path
    from napari_fbias.pipeline.provenance import array_sha256
    from napari_fbias.session import open_session

    link, name = (argv if argv is not None else sys.argv[1:])[:2]
    rec = open_session(link, analysts=[name])
    try:
        layers = HeadlessLayers(rec)
        nuclei = open_image(sample_path("nuclei_2d"))
        img = layers.add_image(nuclei, "sha256:" + array_sha256(nuclei.data))
        {"Marie": marie, "Jean": jean}[name](rec, layers, img)
        if not rec.flush(60):
            print(f"could not send everything: {rec.sync_status}", file=sys.stderr)
            return 1
    finally:
        rec.close()
    print(f"done {rec.client}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
