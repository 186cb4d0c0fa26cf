"""A recorded session whose bundle has both kinds of count: nuclei (objects) and tracks.

Two analysts in two napari windows of one shared folder: Marie segments the
nuclei sample (approach A), Jean tracks spots in a short movie (approach B).
Used by the report tests (``test_export_report.py``) and the browser
screenshot (``test_report_browser.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.io.open import open_image
from napari_fbias.io.samples import load_spots_timelapse, sample_path
from napari_fbias.pipeline.provenance import array_sha256
from napari_fbias.session import SessionRecorder, open_session


def nuclei_image() -> Path:
    return sample_path("nuclei_batch") / "nuclei_01.ome.tif"


def write_movie(path: Path) -> Path:
    """A short crop of the spots time-lapse sample (8 x 128 x 128), as OME-Zarr."""
    movie, _ = load_spots_timelapse()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(
        path, np.asarray(movie.data[:8, :128, :128]), "tyx", scale=movie.scale, units=movie.units
    )
    return path


def record_two_kinds(root: Path) -> Path:
    """Record the session under ``root``; return its folder (a session link)."""
    movie = write_movie(root / "data" / "spots_movie.ome.zarr")
    marie = SessionRecorder.start(
        "Nuclei and spots",
        user_name="Ann Biologist",
        user_lab="Cell Lab",
        question="How many nuclei, and how do the spots move?",
        analysts=["Marie", "Jean"],
        folder=root / "session",
        fsync=False,
    )
    img = open_image(nuclei_image())
    name = marie.add_image(img, checksum="sha256:" + array_sha256(img.data))
    marie.add_approach("classical nuclei recipe", "Marie")
    marie.record_step("segment.nuclei", {}, {"image": name}, "A: nuclei")
    marie.set_result(
        {"objects": {"A: nuclei": 16}, "f1_vs_ground_truth": 0.9312, "median_area_um2": 52.14}
    )
    marie.set_solution("Use the nuclei recipe for the nuclei.", approach="A")
    marie.save()
    jean = open_session(marie.folder, analysts=["Jean"], fsync=False)
    mov = open_image(movie)
    m = jean.add_image(mov, checksum="sha256:" + array_sha256(mov.data))
    jean.add_approach("spot tracking", "Jean")
    jean.record_step("track.track_spots", {"memory": 1}, {"image": m}, "B: tracks")
    jean.set_result({"tracks": 12, "true_tracks": 13})
    jean.save()
    jean.close()
    marie.sync()
    marie.save()
    marie.close()
    return marie.folder
