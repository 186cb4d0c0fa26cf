"""cellpose.segment through the real cellpose: a small model trained here, no download.

The model comes from ``helpers.cellpose_model`` (trained once per machine with
cellpose's own ``train_seg``, cached in ``~/.cache/napari-fbias/test-models`` or
``$FBIAS_TEST_CACHE``). Every segmentation below runs the real
``CellposeModel.eval`` -> mask path; nothing in cellpose is mocked. The
cellpose-4 branch can only be checked as far as the argument mapping goes
(cellpose 4 cannot be installed next to this torch): see ``test_cp4_*``.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.cellpose_model import build_sized_model, build_test_model, nuclei_image
from helpers.http_server import silent_server
from napari_fbias.ops import cellpose_models as cpm
from napari_fbias.ops import cellpose_op as cpo
from napari_fbias.ops.cellpose_models import CellposeModelError
from napari_fbias.ops.cellpose_op import segment
from napari_fbias.ops.registry import get_op

cellpose_models = pytest.importorskip("cellpose.models")

#: Keyword arguments of ``CellposeModel.eval`` in cellpose 4.0 (copied from its
#: source, cellpose/models.py, 4.0.x); used to check the cellpose-4 mapping.
CP4_EVAL_PARAMS = frozenset(
    {
        "x", "batch_size", "resample", "channels", "channel_axis", "z_axis", "normalize",
        "invert", "rescale", "diameter", "flow_threshold", "cellprob_threshold", "do_3D",
        "anisotropy", "flow3D_smooth", "stitch_threshold", "min_size", "max_size_fraction",
        "niter", "augment", "tile_overlap", "bsize", "compute_masks", "progress",
    }
)  # fmt: skip
#: Keyword arguments of ``CellposeModel._compute_masks`` in cellpose 4.0.
CP4_MASK_PARAMS = frozenset(
    {
        "shape", "dP", "cellprob", "flow_threshold", "cellprob_threshold", "min_size",
        "max_size_fraction", "niter", "do_3D", "stitch_threshold",
    }
)  # fmt: skip


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread: on a shared, busy machine two OpenMP threads that wait
    for each other make the many small forward passes of 3D mode ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_path() -> Path:
    cache = os.environ.get("FBIAS_TEST_CACHE") or Path.home() / ".cache/napari-fbias/test-models"
    return build_test_model(cache)


@pytest.fixture(autouse=True)
def _fresh_flow_cache() -> Iterator[None]:
    cpo.clear_cache()
    yield
    cpo.clear_cache()


@pytest.fixture(scope="module")
def nuclei() -> tuple[np.ndarray, np.ndarray]:
    return nuclei_image((128, 128), 12, seed=11)


class ForwardCounter:
    """Counts forward calls of a model's network and records the input shapes."""

    def __init__(self, net) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self._handle = net.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.shapes.append(tuple(args[0].shape))

    @property
    def calls(self) -> int:
        return len(self.shapes)

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def forward_counter(model_path: Path) -> Iterator[ForwardCounter]:
    counter = ForwardCounter(cpm.load_model(str(model_path)).model.net)
    yield counter
    counter.remove()


def direct_eval(model_path: Path, img: np.ndarray, **kw) -> np.ndarray:
    """Masks from cellpose's own ``CellposeModel.eval`` on a grayscale 2D image."""
    cp = cellpose_models.CellposeModel(gpu=False, pretrained_model=str(model_path))
    norm = cpo.normalize_params(True, False, "2d")
    masks = cp.eval(img.astype(np.float32), channels=[0, 0], normalize=norm, **kw)[0]
    return masks


def matched(gt: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> int:
    """Number of ground-truth objects overlapped by one predicted object with IoU >= iou."""
    n = 0
    for g in range(1, int(gt.max()) + 1):
        inside = pred[gt == g]
        ids, counts = np.unique(inside[inside > 0], return_counts=True)
        if ids.size:
            p = ids[np.argmax(counts)]
            inter = counts.max()
            union = np.count_nonzero(gt == g) + np.count_nonzero(pred == p) - inter
            n += inter / union >= iou
    return n


# --- the operation as registered ----------------------------------------------------------
def test_registered_as_non_spatial_op_with_context_and_good_defaults() -> None:
    spec = get_op("cellpose.segment")
    assert spec.func is segment
    assert spec.output == "labels" and spec.category == "segment"
    assert not spec.spatial
    assert set(spec.context) == {"axes", "spacing"}
    assert spec.axes_out is not None and spec.axes_out("tczyx", {}) == "tzyx"
    d = spec.defaults()
    assert d["model"] == ("cpsam" if cpm.cellpose_major() >= 4 else "cyto3")
    assert d["diameter"] == 0.0 and d["flow_threshold"] == 0.4 and d["cellprob_threshold"] == 0.0
    assert d["gpu"] is False and d["do_3d"] is False and d["nuclear_channel"] == -1
    assert spec.param("flow_threshold").help  # tooltips come from the docstring


# --- argument mapping (cellpose 3 installed; cellpose 4 checked against its signature) -----
def _mapping_args(**over):
    args = dict(
        mode="2d", n_channels=1, diameter=0.0, normalize=True, invert=False, anisotropy=None,
        tile_overlap=0.1, batch_size=8, niter=None, flow_threshold=0.4,
        cellprob_threshold=0.0, min_size=15, max_size_fraction=0.4, stitch_threshold=0.0,
    )  # fmt: skip
    args.update(over)
    return args


@pytest.mark.parametrize("mode", ["2d", "planes", "stitch", "3d"])
def test_cp3_mapping_uses_only_arguments_the_installed_cellpose_takes(mode: str) -> None:
    eval_params = set(inspect.signature(cellpose_models.CellposeModel.eval).parameters)
    mask_params = set(inspect.signature(cellpose_models.CellposeModel._compute_masks).parameters)
    kw = cpo.eval_kwargs(3, **_mapping_args(mode=mode, n_channels=2, stitch_threshold=0.3))
    assert set(kw) <= eval_params
    assert kw["channels"] == [1, 2]
    assert kw["do_3D"] is (mode == "3d")
    assert kw["stitch_threshold"] == (0.3 if mode == "stitch" else 0.0)
    assert kw["channel_axis"] == (2 if mode == "2d" else 3)
    assert kw["z_axis"] == (None if mode == "2d" else 0)
    assert kw["normalize"]["norm3D"] is (mode in ("stitch", "3d"))
    mk = cpo.mask_kwargs(
        3, mode=mode, niter=200, flow_threshold=0.4, cellprob_threshold=0.0, min_size=15,
        max_size_fraction=0.4, stitch_threshold=0.3,
    )  # fmt: skip
    assert set(mk) <= mask_params
    assert cpo.eval_kwargs(3, **_mapping_args())["channels"] == [0, 0]


def test_cp4_mapping_has_no_channels_and_fits_the_cellpose4_signature() -> None:
    """Honest limit: cellpose 4 is not installed here, so only the mapping is checked."""
    for mode in ("2d", "stitch", "3d"):
        kw = cpo.eval_kwargs(4, **_mapping_args(mode=mode, n_channels=2, diameter=0.0))
        assert set(kw) | {"x"} <= CP4_EVAL_PARAMS
        assert "channels" not in kw and "interp" not in kw
        assert kw["diameter"] is None  # cellpose 4 divides by the diameter: never pass 0
        mk = cpo.mask_kwargs(
            4, mode=mode, niter=200, flow_threshold=0.4, cellprob_threshold=0.0, min_size=15,
            max_size_fraction=0.4, stitch_threshold=0.0,
        )  # fmt: skip
        assert set(mk) | {"shape", "dP", "cellprob"} <= CP4_MASK_PARAMS
    fake_cp4 = SimpleNamespace(api=4, model=SimpleNamespace())  # a fake LoadedModel
    assert cpo.auto_niter(fake_cp4, None, 0) == 200
    assert cpo.auto_niter(fake_cp4, 60.0, 0) == 400  # int(200 / (30 / 60))
    assert cpo.auto_niter(fake_cp4, 60.0, 50) == 50


def test_unsupported_arguments_are_dropped_for_other_cellpose_versions() -> None:
    def cp4_like_eval(x, diameter=None, do_3D=False):  # a stand-in signature
        return x

    kept = cpo._supported(cp4_like_eval, {"diameter": 3.0, "interp": True, "channels": [0, 0]})
    assert kept == {"diameter": 3.0}


# --- real segmentation ------------------------------------------------------------------
def test_segments_nuclei_as_int32_labels_like_cellpose_itself(
    model_path: Path, nuclei: tuple[np.ndarray, np.ndarray]
) -> None:
    img, truth = nuclei
    # diameter=0: cellpose's own size (what cellpose does called without a diameter)
    labels = segment(img, model=str(model_path), diameter=0)
    assert labels.dtype == np.int32 and labels.shape == img.shape
    n = int(labels.max())
    assert np.array_equal(np.unique(labels), np.arange(n + 1))  # 0 and 1..N, no gaps
    assert matched(truth, labels) >= int(truth.max()) // 2, "the trained model finds nuclei"
    assert np.array_equal(labels, direct_eval(model_path, img))


def test_two_full_runs_are_bit_identical(model_path: Path, nuclei) -> None:
    img, _ = nuclei
    first = segment(img, model=str(model_path))
    cpo.clear_cache()
    second = segment(img, model=str(model_path))
    assert cpo.cache_info()["misses"] == 1 and cpo.cache_info()["hits"] == 0
    assert np.array_equal(first, second)


def test_rethresholding_reuses_the_network_output(
    model_path: Path, nuclei, forward_counter: ForwardCounter
) -> None:
    img, _ = nuclei
    base = segment(img, model=str(model_path), diameter=0)  # cellpose's own size, as direct_eval
    net_calls = forward_counter.calls
    assert net_calls > 0
    changed = dict(diameter=0, flow_threshold=0.0, cellprob_threshold=-2.0, min_size=40)
    again = segment(img, model=str(model_path), **changed)
    assert forward_counter.calls == net_calls, "the network ran again"
    assert cpo.cache_info()["hits"] == 1
    assert not np.array_equal(again, base)  # the thresholds did change the result
    cpo.clear_cache()
    fresh = segment(img, model=str(model_path), **changed)
    assert forward_counter.calls > net_calls
    assert np.array_equal(again, fresh)
    assert np.array_equal(again, direct_eval(model_path, img, **changed))


def test_changing_a_network_setting_runs_the_network_again(
    model_path: Path, nuclei, forward_counter: ForwardCounter
) -> None:
    img, _ = nuclei
    segment(img, model=str(model_path))
    calls = forward_counter.calls
    segment(img, model=str(model_path), diameter=20.0)
    assert forward_counter.calls > calls
    calls = forward_counter.calls
    segment(img + 1, model=str(model_path))  # other pixels
    assert forward_counter.calls > calls


def test_large_image_is_tiled_by_cellpose(
    model_path: Path, forward_counter: ForwardCounter
) -> None:
    img, truth = nuclei_image((256, 240), 30, seed=3)
    labels = segment(img, model=str(model_path), tile_overlap=0.15)
    assert labels.shape == img.shape and labels.dtype == np.int32
    assert any(s[0] > 1 and s[-2:] == (224, 224) for s in forward_counter.shapes), (
        forward_counter.shapes
    )
    assert matched(truth, labels) >= int(truth.max()) // 2
    # objects are found on both sides of the tile seams
    assert labels[:, :100].max() > 0 and labels[:, 140:].max() > 0


def test_z_stack_stitched_and_plane_by_plane(model_path: Path, nuclei) -> None:
    img, _ = nuclei
    stack = np.stack([img, np.roll(img, 1, axis=1), np.roll(img, 2, axis=1)])
    stitched = segment(stack, model=str(model_path), stitch_threshold=0.25, axes="zyx")
    assert stitched.shape == stack.shape and stitched.dtype == np.int32
    n = int(stitched.max())
    assert n > 0
    spanning = [i for i in range(1, n + 1) if all((stitched[z] == i).any() for z in range(3))]
    assert len(spanning) >= n // 2, "objects continue through the planes"

    planes = segment(stack, model=str(model_path))  # axes inferred: zyx, no stitching
    ids = [set(np.unique(planes[z])) - {0} for z in range(3)]
    assert all(ids) and not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    assert np.array_equal(np.unique(planes), np.arange(int(planes.max()) + 1))


def test_true_3d_with_anisotropy_from_spacing(model_path: Path, nuclei) -> None:
    img, _ = nuclei
    small = img[:48, :48]
    stack = np.stack([small] * 4)
    labels = segment(stack, model=str(model_path), do_3d=True, spacing=(2.0, 1.0, 1.0))
    assert labels.shape == stack.shape and labels.dtype == np.int32
    assert labels.max() > 0
    info = cpo.cache_info()
    # same anisotropy given by hand: same network input, so the cached output is reused
    segment(stack, model=str(model_path), do_3d=True, anisotropy=2.0)
    assert cpo.cache_info()["hits"] == info["hits"] + 1


def test_channels_and_time_points(model_path: Path, nuclei) -> None:
    img, _ = nuclei
    noise = np.random.default_rng(0).normal(100, 5, img.shape).astype(np.float32)
    frame = np.stack([noise, img.astype(np.float32)])  # c=0 noise, c=1 nuclei
    movie = np.stack([frame, frame[:, ::-1]])  # tcyx
    labels = segment(movie, model=str(model_path), channel=1, axes="tcyx")
    assert labels.shape == (2, *img.shape)
    single = segment(img, model=str(model_path))
    assert np.array_equal(labels[0], single)
    assert labels[1].max() > 0 and labels[1].min() == 0
    with_nuc = segment(frame, model=str(model_path), channel=1, nuclear_channel=0, axes="cyx")
    assert with_nuc.shape == img.shape and with_nuc.dtype == np.int32


def test_blank_image_gives_empty_labels(model_path: Path) -> None:
    labels = segment(np.full((64, 64), 100, np.uint16), model=str(model_path))
    assert labels.dtype == np.int32 and labels.shape == (64, 64) and labels.max() == 0


def test_diameter_zero_uses_cellpose3_size_model(model_path: Path, nuclei, caplog) -> None:
    if cpm.cellpose_major() >= 4:
        pytest.skip("cellpose 4 has no size model")
    sized = build_sized_model(model_path)
    img, _ = nuclei
    with caplog.at_level(logging.INFO, logger="napari_fbias.ops.cellpose_op"):
        labels = segment(img, model=str(sized), diameter=0)
    estimates = [r for r in caplog.records if "estimated object diameter" in r.getMessage()]
    assert len(estimates) == 1
    diam = float(estimates[0].getMessage().split("diameter ")[1].split(" px")[0])
    assert 4 < diam < 100
    loaded = cpm.load_model(str(sized))
    assert loaded.size_model() is not None
    assert labels.dtype == np.int32 and labels.shape == img.shape


def test_auto_diameter_is_measured_on_the_image_and_recorded(model_path: Path, nuclei) -> None:
    """The default (None): the diameter measured on the image, reported, and used as given."""
    from napari_fbias.ops.chosen import collect_chosen

    assert get_op("cellpose.segment").param("diameter").default is None
    img, truth = nuclei
    with collect_chosen() as box:
        labels = segment(img, model=str(model_path))
    chosen = box.summary()
    sizes = np.bincount(truth.ravel())[1:]
    true_d = 2 * np.sqrt(sizes[sizes > 0].mean() / np.pi)
    assert set(chosen) >= {"diameter", "object_diameter"}
    assert abs(chosen["diameter"] - true_d) <= 0.25 * true_d, (chosen, true_d)
    # the number chosen, written in the step, gives the same masks: reruns are exact
    assert np.array_equal(labels, segment(img, model=str(model_path), diameter=chosen["diameter"]))
    assert matched(truth, labels) >= int(truth.max()) // 2


# --- models: cache, devices, errors ----------------------------------------------------------
def test_models_are_cached_lru_of_two(model_path: Path, tmp_path: Path, caplog) -> None:
    cpm.clear_model_cache()
    copies = []
    for i in range(3):
        p = tmp_path / f"copy{i}"
        shutil.copyfile(model_path, p)
        copies.append(p)
    a = cpm.load_model(str(copies[0]))
    assert cpm.load_model(str(copies[0])) is a
    cpm.load_model(str(copies[1]))
    cpm.load_model(str(copies[2]))
    assert [m.ref.path for m in cpm.cached_models()] == [copies[1], copies[2]]
    assert cpm.load_model(str(copies[0])) is not a  # evicted, loaded again
    with caplog.at_level(logging.INFO, logger="napari_fbias.ops.cellpose_models"):
        gpu = cpm.load_model(str(copies[0]), gpu=True)
    assert "runs on" in caplog.text
    if gpu.device.type == "cpu":
        assert "GPU requested but none is available" in caplog.text
    cpm.clear_model_cache()


@pytest.fixture
def empty_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cellpose's model folder pointed at an empty directory.

    ``CELLPOSE_LOCAL_MODELS_PATH`` is read by cellpose at import, so the folder
    it derived (``cellpose.models.MODEL_DIR``) is pointed there as well.
    """
    folder = tmp_path / "cellpose-models"
    folder.mkdir()
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(folder))
    monkeypatch.setattr(cellpose_models, "MODEL_DIR", folder)
    monkeypatch.setattr(cellpose_models, "MODEL_LIST_PATH", str(folder / "gui_models.txt"))
    monkeypatch.setenv("FBIAS_CELLPOSE_DOWNLOAD_TIMEOUT", "3")
    cpm.clear_model_cache()
    return folder


@pytest.mark.timeout(60)
def test_missing_weights_without_network_fail_fast_and_clearly(
    empty_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a host that never resolves (RFC 2606), whatever the machine's network
    monkeypatch.setattr(cellpose_models, "_MODEL_URL", "https://cellpose-weights.invalid/models")
    img = np.zeros((32, 32), np.float32)
    t0 = time.monotonic()
    with pytest.raises(CellposeModelError) as err:
        segment(img, model="cyto3")
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert "'cyto3'" in msg and str(empty_model_dir) in msg and "downloading" in msg
    assert "CELLPOSE_LOCAL_MODELS_PATH" in msg and "path of a model file" in msg
    assert not any(empty_model_dir.iterdir()), "no partial download left behind"


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_does_not_hang_loading(
    empty_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBIAS_CELLPOSE_DOWNLOAD_TIMEOUT", "2")
    with silent_server() as url:
        monkeypatch.setattr(cellpose_models, "_MODEL_URL", f"{url}/models")
        t0 = time.monotonic()
        with pytest.raises(CellposeModelError, match="no answer from 127.0.0.1 within 2 s"):
            cpm.load_model("cyto3")
        assert time.monotonic() - t0 < 20


@pytest.mark.timeout(60)
def test_failed_download_from_server_is_reported(
    empty_model_dir: Path, http_folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real HTTP server that does not have the file: cellpose's own download fails (404)."""
    monkeypatch.setattr(cellpose_models, "_MODEL_URL", http_folder.url_for("models"))
    with pytest.raises(CellposeModelError, match=r"'nuclei'.*HTTPError.*404"):
        cpm.load_model("nuclei")
    assert any("nucleitorch_0" in r for r in http_folder.requests)
    assert not any(empty_model_dir.iterdir())


@pytest.mark.timeout(120)
def test_builtin_name_is_downloaded_by_cellpose_when_served(
    empty_model_dir: Path,
    http_folder,
    model_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cellpose's own download + loader: the test model served as 'cyto3' from 127.0.0.1."""
    served = tmp_path / "models"  # http_folder serves tmp_path
    served.mkdir()
    shutil.copyfile(model_path, served / "cyto3")
    monkeypatch.setattr(cellpose_models, "_MODEL_URL", http_folder.url_for("models"))
    loaded = cpm.load_model("cyto3")
    assert (empty_model_dir / "cyto3").read_bytes() == model_path.read_bytes()
    assert loaded.ref.kind == "builtin"
    cpm.clear_model_cache()


def test_unknown_and_bad_models(tmp_path: Path) -> None:
    with pytest.raises(CellposeModelError, match="unknown cellpose model 'cyto99'"):
        segment(np.zeros((16, 16)), model="cyto99")
    with pytest.raises(CellposeModelError, match="model file not found"):
        segment(np.zeros((16, 16)), model=str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk_model"
    junk.write_text("not a model")
    with pytest.raises(CellposeModelError, match="could not load cellpose model"):
        segment(np.zeros((16, 16)), model=str(junk))
    with pytest.raises(CellposeModelError, match="empty"):
        segment(np.zeros((16, 16)), model=" ")


def test_cp3_names_are_refused_under_cellpose4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cellpose 4 would silently run cpsam for 'cyto3'; we refuse (version faked)."""
    monkeypatch.setattr(cpm, "cellpose_version", lambda: "4.0.6")
    monkeypatch.setattr(cpm, "_builtin_names", lambda: ["cpsam"])
    with pytest.raises(CellposeModelError, match="belongs to cellpose 3.*cpsam"):
        cpm.resolve_model("cyto3")
    assert cpm.default_model_name() == "cpsam"


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((2, 2, 16, 16)), {}, "got 4 dimensions"),
        (np.zeros((0, 16)), {}, "empty"),
        (np.full((16, 16), np.nan), {}, "no finite pixel"),
        (np.zeros((16, 16), complex), {}, "must hold numbers"),
        (np.zeros((2, 16, 16)), {"axes": "cyx", "channel": 2}, "channel=2"),
        (np.zeros((2, 16, 16)), {"axes": "cyx", "nuclear_channel": 0}, "both 0"),
        (np.zeros((16, 16)), {"nuclear_channel": 1}, "no channel axis"),
        (np.zeros((16, 16)), {"do_3d": True}, "needs a z-stack"),
        (np.zeros((3, 16, 16)), {"do_3d": True, "stitch_threshold": 0.2}, "choose one"),
        (np.zeros((3, 16, 16)), {"axes": "yxz"}, "must end with 'yx'"),
        (np.zeros((16, 16)), {"invert": True, "normalize": False}, "invert=True"),
    ],
)
def test_bad_input_is_refused_before_loading_a_model(image, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        segment(image, model="no-such-model-needed", **kwargs)


def test_partial_nan_is_filled_not_propagated(model_path: Path, nuclei) -> None:
    img, _ = nuclei
    img = img.astype(np.float32)
    img[:4, :4] = np.nan
    labels = segment(img, model=str(model_path))
    assert labels.max() > 0


def test_labels_are_renumbered_without_gaps_keeping_order() -> None:
    masks = np.array([[0, 3, 3], [7, 0, 3], [7, 9, 0]], np.uint16)
    out = cpo._sequential_int32(masks)
    assert out.dtype == np.int32
    assert np.array_equal(out, [[0, 1, 1], [2, 0, 1], [2, 3, 0]])
    already = np.array([[0, 1], [2, 2]], np.int32)
    assert cpo._sequential_int32(already) is already
    planes = cpo._unique_per_plane(np.array([[[1, 2]], [[1, 0]], [[0, 0]], [[2, 1]]]))
    assert planes.ravel().tolist() == [1, 2, 3, 0, 0, 0, 5, 4]
