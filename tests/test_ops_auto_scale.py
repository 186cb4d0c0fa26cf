"""Automatic scale (issue 15): size-dependent settings on "auto", on images the recipe never saw."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_fbias.ops.auto_scale import min_distance_for
from napari_fbias.ops.chosen import collect_chosen, describe_chosen
from napari_fbias.ops.metrics import average_precision
from napari_fbias.ops.registry import get_op
from napari_fbias.ops.segment import nuclei, remove_small_objects, watershed_split
from napari_fbias.pipeline import Pipeline

OLD = {"smoothing_sigma": 1.5, "min_size": 30, "min_distance": 5}


def crowded(d: float, shape=(320, 320), spacing=None, slope=1.5, seed=0):
    """Discs (balls) of diameter ``d`` (finest-axis px, +-15 %), centres >= 0.8 d apart.

    Neighbours touch and overlap (the truth splits them by nearest centre); lit
    unevenly (a tilt), blurred and noisy. ``spacing``: voxel size, for anisotropic 3D.
    """
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    sp = np.ones(ndim) if spacing is None else np.asarray(spacing, float)
    ext = np.asarray(shape) * sp
    one = np.pi / 4 * d * d if ndim == 2 else np.pi / 6 * d**3
    n = int(0.35 * np.prod(ext) / one)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(n * 50):
        if len(centres) >= n:
            break
        r = d / 2 * rng.uniform(0.85, 1.15)
        c = rng.uniform(r, ext - r)
        if ndim == 3:
            c[0] = rng.uniform(min(r, ext[0] / 2), max(ext[0] - r, ext[0] / 2))
        if all(
            np.linalg.norm(c - c2) >= 0.8 * (r + r2) for c2, r2 in zip(centres, radii, strict=True)
        ):
            centres.append(c)
            radii.append(r)
    grid = np.stack(
        np.meshgrid(*[np.arange(s) * p for s, p in zip(shape, sp, strict=True)], indexing="ij"), -1
    )
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, np.int32)
    img = np.zeros(shape)
    for k, (c, r) in enumerate(zip(centres, radii, strict=True), 1):
        dist = np.linalg.norm(grid - c, axis=-1) / r
        inside = (dist <= 1) & (dist < best)
        labels[inside], best[inside] = k, dist[inside]
        img[dist <= 1] = np.maximum(img[dist <= 1], rng.uniform(0.5, 1.0))
    img = ndi.gaussian_filter(img, tuple(max(1.0, d / 16) / p * min(sp) for p in sp))
    coords = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    img += slope * (0.3 * coords[-1] + 0.2 * coords[-2]) + rng.normal(0, 0.05, shape)
    return (img * 1000 + 200).astype(np.uint16), labels


def ap(truth: np.ndarray, found: np.ndarray) -> float:
    return average_precision(truth, found)[0.5]


@pytest.mark.parametrize(
    ("d", "bar", "margin"),
    [(8, 0.75, 0.2), (60, 0.95, 0.02)],
    ids=["small-8px", "large-60px"],
)
def test_nuclei_on_auto_follows_object_size_in_2d(d: float, bar: float, margin: float) -> None:
    img, truth = crowded(d, seed=d)
    with collect_chosen() as chosen:
        auto = nuclei(img)
    fixed = nuclei(img, **OLD)
    got = chosen.summary()
    assert abs(got["object_diameter"] / d - 1) < 0.25, got
    assert ap(truth, auto) >= bar, (ap(truth, auto), got)
    assert ap(truth, auto) >= ap(truth, fixed) + margin, (ap(truth, auto), ap(truth, fixed))
    assert set(got) == {"object_diameter", "smoothing_sigma", "min_size", "min_distance"}


@pytest.mark.parametrize("z_step", [2.0, 3.0, 4.0, 8.0])
def test_nuclei_on_auto_uses_the_voxel_size_of_an_anisotropic_volume(z_step: float) -> None:
    img, truth = crowded(24, shape=(24, 128, 128), spacing=(z_step, 1, 1), seed=int(z_step))
    spacing = (z_step, 1.0, 1.0)
    with collect_chosen() as chosen:
        auto = nuclei(img, spacing=spacing)
    got = chosen.summary()
    assert abs(got["object_diameter"] / 24 - 1) < 0.25, got
    # min_size counts voxels: a ball of the diameter holds z_step times fewer of them
    assert got["min_size"] < 0.1 * (np.pi / 6 * 24**3) / z_step
    assert ap(truth, auto) >= 0.8
    assert ap(truth, auto) >= ap(truth, nuclei(img, spacing=spacing, **OLD))


def test_explicit_numbers_are_used_as_given_and_nothing_is_chosen() -> None:
    img, _ = crowded(14, seed=1)
    with collect_chosen() as chosen:
        nuclei(img, **OLD)
    assert not chosen


def test_watershed_split_and_remove_small_objects_choose_from_the_labels() -> None:
    _, truth = crowded(30, seed=5)
    merged = ndi.label(truth > 0)[0].astype(np.int32)
    with collect_chosen() as chosen:
        split = watershed_split(merged)
    got = chosen.summary()
    assert abs(got["object_diameter"] / 30 - 1) < 0.3, got
    assert got["min_distance"] == min_distance_for(got["object_diameter"])
    assert ap(truth, split) > ap(truth, merged) + 0.2
    specks = truth.copy()
    specks[::40, ::40] = (
        truth.max() + 1 + np.arange(specks[::40, ::40].size).reshape(specks[::40, ::40].shape)
    )  # one-pixel debris
    with collect_chosen() as chosen:
        clean = remove_small_objects(specks)
    assert 1 < chosen.summary()["min_size"] < np.bincount(truth.ravel())[1:].min()
    assert np.array_equal(clean > 0, truth > 0) or ap(truth, clean) > 0.95


def test_new_steps_start_on_auto_and_old_steps_keep_their_numbers() -> None:
    spec = get_op("segment.nuclei")
    assert {p.name: p.default for p in spec.params if p.name in OLD} == dict.fromkeys(OLD)
    assert {k: spec.defaults()[k] for k in OLD} == OLD  # a step that leaves them out
    assert get_op("track.locate_spots").defaults()["diameter"] == 7
    assert get_op("segment.remove_small_objects").defaults()["min_size"] == 64


def _pipeline(params: dict) -> Pipeline:
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "auto",
            "inputs": {"image": {"kind": "image", "axes": "yx"}},
            "steps": [
                {
                    "id": "nuclei",
                    "op": "segment.nuclei",
                    "inputs": {"image": "image"},
                    "params": params,
                }
            ],
            "outputs": {"nuclei": "nuclei"},
        }
    )


def test_an_old_pipeline_that_leaves_settings_out_reruns_with_the_old_numbers() -> None:
    img, _ = crowded(40, seed=2)
    old_file = _pipeline({"threshold_method": "otsu"}).run(img)
    assert np.array_equal(old_file["nuclei"], nuclei(img, **OLD))
    assert "chosen" not in old_file.record["steps"][0]
    assert old_file.record["steps"][0]["params"]["smoothing_sigma"] == 1.5


def test_auto_is_recorded_in_the_run_record_and_reruns_bit_for_bit() -> None:
    img, _ = crowded(40, seed=3)
    pipe = _pipeline({"smoothing_sigma": None, "min_size": None, "min_distance": None})
    assert "smoothing_sigma: null" in pipe.dumps()
    first, second = pipe.run(img), Pipeline.loads(pipe.dumps()).run(img)
    assert np.array_equal(first["nuclei"], second["nuclei"])
    chosen = first.record["steps"][0]["chosen"]
    assert chosen == second.record["steps"][0]["chosen"]
    pinned = {k: chosen[k] for k in OLD}  # pinning the chosen values gives the same result
    assert np.array_equal(_pipeline(pinned).run(img)["nuclei"], first["nuclei"])
    assert "smoothing sigma" in describe_chosen(chosen)
    assert "(object diameter" in describe_chosen(chosen)


def test_the_project_samples_get_the_numbers_they_were_tuned_with() -> None:
    """nuclei_2d, the nuclei_batch images and cells_3d: auto = the old numbers, AP unchanged."""
    from napari_fbias.io.samples import load_cells_3d, load_nuclei_2d, load_nuclei_batch

    image, truth = load_nuclei_2d()
    cases = [(np.asarray(image.data), truth, None)]
    cases += [(np.asarray(im.data), lab, None) for im, lab in load_nuclei_batch()]
    cells, labels = load_cells_3d()
    cases.append((np.asarray(cells.data)[0], np.asarray(labels), (1.0, 0.3, 0.3)))
    for img, gt, spacing in cases:
        with collect_chosen() as chosen:
            auto = nuclei(img, spacing=spacing)
        got = chosen.summary()
        assert (got["smoothing_sigma"], got["min_distance"]) == (1.5, 5), got
        assert got["min_size"] == (30 if img.ndim == 2 else 177), got  # 3D: same AP as 30
        assert ap(gt, auto) >= ap(gt, nuclei(img, spacing=spacing, **OLD))


def test_small_objects_in_an_anisotropic_volume_are_not_cut_apart() -> None:
    """12 px nuclei, z step 4 (3 slices thick): seeds stay one z step apart at least."""
    spacing = (4.0, 1.0, 1.0)
    img, truth = crowded(12, shape=(24, 128, 128), spacing=spacing, seed=7)
    with collect_chosen() as chosen:
        auto = nuclei(img, spacing=spacing)
    got = chosen.summary()
    assert got["min_distance"] >= 4, got
    assert ap(truth, auto) >= 0.8
    assert ap(truth, auto) >= ap(truth, nuclei(img, spacing=spacing, **OLD))


def test_resolve_auto_is_what_the_operation_chooses() -> None:
    """The one function a chunk-wise run calls once on the whole image."""
    from napari_fbias.ops.auto_scale import resolve_auto

    img, _ = crowded(20, seed=3)
    with collect_chosen() as chosen:
        nuclei(img)
    params = {"smoothing_sigma": None, "min_size": 12, "min_distance": None}
    settings, got = resolve_auto("segment.nuclei", img, params)
    assert settings["min_size"] == 12 and "min_size" not in got
    mine = {k: v for k, v in chosen.summary().items() if k != "min_size"}
    assert got == mine
    assert settings["smoothing_sigma"] == got["smoothing_sigma"]
    assert resolve_auto("segment.threshold", img, {"method": "otsu"}) == ({"method": "otsu"}, {})


def test_remove_small_objects_chunk_wise_on_auto_counts_the_whole_image() -> None:
    import dask.array as da

    from napari_fbias.ops.chunks import remove_small_chunks

    _, truth = crowded(16, seed=4)
    specks = truth.copy()
    specks[::25, ::25] = (
        truth.max() + 1 + np.arange(specks[::25, ::25].size).reshape(specks[::25, ::25].shape)
    )
    with collect_chosen() as whole:
        expected = remove_small_objects(specks)
    with collect_chosen() as chunked:
        out = remove_small_chunks(
            None, da.from_array(specks, chunks=40), 0, {"min_size": None, "max_size": None}
        ).compute()
    assert chunked.summary() == whole.summary()
    assert np.array_equal(out, expected)


def test_an_old_session_step_with_its_numbers_reruns_with_them(tmp_path) -> None:
    """A step recorded before issue 15 holds every number (the widget sent them all)."""
    from napari_fbias.io.image import from_array
    from napari_fbias.session import SessionRecorder, open_session
    from napari_fbias.session.to_pipeline import approach_to_pipeline

    img, _ = crowded(40, seed=6)
    rec = SessionRecorder.start("old", folder=tmp_path / "s", fsync=False)
    name = rec.add_image(from_array(img, "yx", name="nuclei", source="/d/n.tif"))
    rec.add_approach("recipe", "Ann")
    rec.record_step("segment.nuclei", dict(OLD), {"image": name}, "A: nuclei")
    rec.save()
    rec.close()
    again = open_session(tmp_path / "s", fsync=False)
    (step,) = again.session.approaches[0].steps
    again.close()
    assert {k: step.params[k] for k in OLD} == OLD and step.chosen == {}
    pipeline = approach_to_pipeline(again.session, "A")
    result = pipeline.run(img)
    (out,) = pipeline.outputs
    assert np.array_equal(np.asarray(result[out]), nuclei(img, **OLD))
    assert "chosen" not in result.record["steps"][0]
