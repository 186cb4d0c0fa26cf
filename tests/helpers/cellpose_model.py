"""A small, real cellpose model trained here, so that no test downloads weights.

:func:`build_test_model` trains a cellpose-3 ``CPnet`` (the architecture
``CellposeModel(pretrained_model=path)`` loads) for a few dozen steps on
synthetic nuclei with cellpose's own ``train.train_seg`` (torch on one
thread), then re-estimates the batch-norm statistics (a few forward passes:
with so few training steps the running statistics have not converged, and
without this the model predicts garbage in eval mode) and saves the weights
with cellpose's own ``CPnet.save_model``. Everything is seeded; the file is written atomically
and cached by a key of the recipe and the library versions, so a test
session trains once (about one to two minutes on two cores).

The model segments bright, roundish nuclei of ~12-20 px diameter. It is a
test fixture, not a useful model.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

#: Recipe of the test model; part of the cache key.
RECIPE: dict[str, object] = {
    "version": 1,
    "n_images": 8,
    "image_shape": (96, 96),
    "n_nuclei": 8,
    "radius_range": (6.0, 10.0),
    "diam_mean": 15.0,
    "n_epochs": 45,
    "batch_size": 4,
    "bsize": 48,
    "learning_rate": 0.01,
    "bn_batches": 12,
    "seed": 0,
}


#: Cellpose normalisation settings, complete (see ``cellpose_op.normalize_params``).
_NORMALIZE: dict[str, object] = {
    "lowhigh": None,
    "percentile": None,
    "normalize": True,
    "norm3D": True,
    "sharpen_radius": 0,
    "smooth_radius": 0,
    "tile_norm_blocksize": 0,
    "tile_norm_smooth3D": 1,
    "invert": False,
}


def training_images(
    n: int, shape: tuple[int, int], n_nuclei: int, radius_range: tuple[float, float], seed0: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Synthetic nuclei images and their labels (``float32`` images, ``int32`` labels)."""
    imgs: list[np.ndarray] = []
    lbls: list[np.ndarray] = []
    for s in range(n):
        img, lbl = nuclei_image(shape, n_nuclei, seed0 + s, radius_range=radius_range)
        imgs.append(img.astype(np.float32))
        lbls.append(lbl.astype(np.int32))
    return imgs, lbls


def nuclei_image(
    shape: tuple[int, int],
    n_nuclei: int,
    seed: int,
    radius_range: tuple[float, float] = (6.0, 10.0),
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic nuclei image and its labels (``io.synth`` if present, else discs)."""
    try:
        from napari_fbias.io.synth import make_nuclei_2d
    except ImportError:  # pragma: no cover - before io.synth existed
        return _discs(shape, n_nuclei, seed, radius_range)
    return make_nuclei_2d(shape, n_nuclei, seed, radius_range=radius_range)


def _discs(
    shape: tuple[int, int], n: int, seed: int, radius_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    k = 0
    for _ in range(50 * n):
        if k == n:
            break
        r = rng.uniform(*radius_range)
        cy, cx = rng.uniform(r + 1, shape[0] - r - 1), rng.uniform(r + 1, shape[1] - r - 1)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        if labels[disc].any():
            continue
        k += 1
        labels[disc] = k
    img = ndi.gaussian_filter((labels > 0) * 400.0, 1.0) + 100 + rng.normal(0, 10, shape)
    return np.clip(img, 0, None).astype(np.uint16), labels


def cache_key(recipe: dict[str, object] | None = None) -> str:
    """Key of the recipe and the versions that shape the trained weights."""
    import cellpose
    import torch

    from napari_fbias.ops.cellpose_models import cellpose_version

    payload = {
        "recipe": recipe or RECIPE,
        "cellpose": cellpose_version(),
        "torch": torch.__version__,
        "cellpose_path": os.path.dirname(cellpose.__file__),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def build_test_model(
    cache_dir: str | os.PathLike[str], recipe: dict[str, object] | None = None
) -> Path:
    """Return the path of the trained test model, training it once per cache key.

    Parameters
    ----------
    cache_dir : path-like
        Directory holding cached models (created if missing).
    recipe : dict, optional
        Training recipe (default :data:`RECIPE`).

    Returns
    -------
    pathlib.Path
        A cellpose-3 model file loadable by ``CellposeModel(pretrained_model=path)``.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"fbias_test_nuclei_{cache_key(recipe)}"
    if dest.exists():
        return dest
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # robust on a shared machine; see tests/test_ops_cellpose.py
    try:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            trained = _train(Path(tmp), recipe or RECIPE)
            os.replace(trained, dest)  # atomic: same directory tree, same file system
    finally:
        torch.set_num_threads(threads)
    return dest


def _train(workdir: Path, r: dict[str, object]) -> Path:
    import torch
    from cellpose import train, transforms
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(int(r["seed"]))  # type: ignore[arg-type]
    np.random.seed(int(r["seed"]))  # noqa: NPY002 - cellpose augments with np.random
    imgs, lbls = training_images(
        int(r["n_images"]),  # type: ignore[arg-type]
        tuple(r["image_shape"]),  # type: ignore[arg-type]
        int(r["n_nuclei"]),  # type: ignore[arg-type]
        tuple(r["radius_range"]),  # type: ignore[arg-type]
        seed0=1000,
    )
    net = CPnet(
        [2, 32, 64, 128, 256], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=float(r["diam_mean"])
    )  # type: ignore[arg-type]
    normalize = dict(_NORMALIZE)
    path, _, _ = train.train_seg(
        net,
        train_data=imgs,
        train_labels=lbls,
        channels=[0, 0],
        normalize=normalize,
        n_epochs=int(r["n_epochs"]),  # type: ignore[arg-type]
        batch_size=int(r["batch_size"]),  # type: ignore[arg-type]
        nimg_per_epoch=int(r["batch_size"]),  # type: ignore[arg-type]
        bsize=int(r["bsize"]),  # type: ignore[arg-type]
        learning_rate=float(r["learning_rate"]),  # type: ignore[arg-type]
        min_train_masks=1,
        save_path=str(workdir),
        model_name="fbias_test_nuclei",
    )
    # Re-estimate batch-norm statistics with the final weights.
    xs = []
    for img in imgs:
        x = transforms.convert_image(img, [0, 0], channel_axis=None, nchan=2)
        x = transforms.normalize_img(x, **normalize)
        xs.append(np.ascontiguousarray(x.transpose(2, 0, 1)))
    diams = net.diam_labels.item()
    rng = np.random.default_rng(int(r["seed"]))  # type: ignore[arg-type]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(int(r["bn_batches"])):  # type: ignore[arg-type]
            inds = rng.integers(0, len(xs), int(r["batch_size"]))  # type: ignore[arg-type]
            batch = [xs[i] for i in inds]
            rsc = np.full(len(batch), diams / net.diam_mean.item(), np.float32)
            xb = transforms.random_rotate_and_resize(
                batch,
                rescale=rsc,
                scale_range=0.5,
                xy=(int(r["bsize"]),) * 2,  # type: ignore[arg-type]
            )[0]
            net(torch.from_numpy(xb).float())
    for m in bns:
        m.momentum = 0.05
    net.eval()
    net.save_model(str(path))
    return Path(path)


def build_sized_model(model_path: str | os.PathLike[str]) -> Path:
    """Return a copy of ``model_path`` with a cellpose-3 size model beside it.

    The size model (``<copy>_size.npy``) is fitted with cellpose's own
    ``train.train_size`` on the training images (forward passes only, a few
    seconds), so that ``diameter=0`` runs cellpose's real diameter estimation.
    Cached next to ``model_path``.
    """
    import shutil

    import torch
    from cellpose import train
    from cellpose.resnet_torch import CPnet

    src = Path(model_path)
    dest = src.with_name(src.name + "_sized")
    size_file = Path(str(dest) + "_size.npy")
    if dest.exists() and size_file.exists():
        return dest
    with tempfile.TemporaryDirectory(dir=src.parent) as tmp:
        tmp_model = Path(tmp) / dest.name
        shutil.copyfile(src, tmp_model)
        torch.manual_seed(0)
        np.random.seed(0)  # noqa: NPY002 - cellpose augments with np.random
        net = CPnet([2, 32, 64, 128, 256], 3, sz=3, mkldnn=False, max_pool=True)
        net.load_model(str(tmp_model), device=torch.device("cpu"))
        net.eval()
        r = RECIPE
        imgs, lbls = training_images(
            int(r["n_images"]),  # type: ignore[arg-type]
            tuple(r["image_shape"]),  # type: ignore[arg-type]
            int(r["n_nuclei"]),  # type: ignore[arg-type]
            tuple(r["radius_range"]),  # type: ignore[arg-type]
            seed0=2000,
        )
        train.train_size(
            net,
            str(tmp_model),
            train_data=imgs,
            train_labels=lbls,
            channels=[0, 0],
            normalize=dict(_NORMALIZE),
            min_train_masks=1,
            batch_size=8,
            bsize=64,
            n_epochs=2,
            scale_range=0.5,
        )
        os.replace(Path(str(tmp_model) + "_size.npy"), size_file)
        os.replace(tmp_model, dest)
    return dest
