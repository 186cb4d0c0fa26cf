"""Find, load and cache cellpose models, with cellpose's own loading code.

Works with cellpose 3 (``CellposeModel(model_type=...)`` for built-in names,
a size model for diameter estimation) and cellpose 4 (Cellpose-SAM:
``CellposeModel(pretrained_model="cpsam")``, no size model). A model is
named by a built-in name (``"cyto3"``, ``"nuclei"``, ``"cpsam"``...), by the
name of a file in cellpose's model folder (``CELLPOSE_LOCAL_MODELS_PATH``,
default ``~/.cellpose/models``), or by the path of a model file.

Cellpose downloads missing built-in weights on first use; when that fails (no
network, blocked URL) :class:`CellposeModelError` says which model, why, and
how to provide the weights by hand. Loaded models are kept in a small
in-process LRU cache keyed by (model, file identity, gpu), see
:func:`load_model` and :func:`clear_model_cache`.

Importing this module does not import cellpose or torch; the first load does, through
:func:`cellpose_models` (cellpose is the optional ``cellpose`` extra: without it, using
the operation says which extra to install).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

__all__ = [
    "CP3_BUILTIN_MODELS",
    "CellposeModelError",
    "LoadedModel",
    "cellpose_major",
    "cellpose_version",
    "clear_model_cache",
    "default_model_name",
    "load_model",
    "models_dir",
    "resolve_model",
]

#: Built-in model names of cellpose 3 (cellpose 4 ships only ``"cpsam"``).
CP3_BUILTIN_MODELS: tuple[str, ...] = (
    "cyto3",
    "nuclei",
    "cyto2_cp3",
    "tissuenet_cp3",
    "livecell_cp3",
    "yeast_PhC_cp3",
    "yeast_BF_cp3",
    "bact_phase_cp3",
    "bact_fluor_cp3",
    "deepbacs_cp3",
    "cyto2",
    "cyto",
)
#: Number of loaded models kept in memory.
MODEL_CACHE_SIZE = 2
#: Seconds to wait for cellpose's download server to answer (a HEAD request) before
#: giving up on missing weights; the ``FBIAS_CELLPOSE_DOWNLOAD_TIMEOUT`` environment
#: variable overrides it. Cellpose's own download has no time limit, and without a
#: network a name lookup alone can block for minutes.
DOWNLOAD_PROBE_TIMEOUT_S = 10.0


class CellposeModelError(RuntimeError):
    """A cellpose model could not be found, downloaded or loaded."""


def cellpose_version() -> str:
    """Version of the installed cellpose package (``"0"`` when not installed)."""
    try:
        return version("cellpose")
    except PackageNotFoundError:
        return "0"


def cellpose_major() -> int:
    """Major version of the installed cellpose (3 or 4; 0 when not installed)."""
    head = cellpose_version().split(".")[0]
    return int(head) if head.isdigit() else 0


def cellpose_models() -> Any:
    """Import and return ``cellpose.models`` (cellpose is the optional ``cellpose`` extra).

    Raises
    ------
    MissingExtraError
        When cellpose is not installed: the message names the extra to install.
    """
    from napari_fbias.extras import require

    return require("cellpose.models", "cellpose", what="the cellpose.segment operation")


def default_model_name() -> str:
    """Return the general-purpose model of the installed cellpose: cyto3 (3) or cpsam (4+)."""
    return "cpsam" if cellpose_major() >= 4 else "cyto3"


def models_dir() -> Path:
    """Folder where cellpose looks for (and downloads) model weights.

    This is cellpose's own ``models.MODEL_DIR``: ``CELLPOSE_LOCAL_MODELS_PATH``
    as it was when cellpose was imported, else ``~/.cellpose/models``.
    """
    return Path(cellpose_models().MODEL_DIR)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model name.

    Attributes
    ----------
    name : str
        What the user asked for.
    kind : str
        ``"builtin"`` (cellpose resolves and downloads it) or ``"file"``.
    path : pathlib.Path or None
        The model file, for ``kind == "file"``.
    """

    name: str
    kind: str
    path: Path | None = None

    @property
    def identity(self) -> tuple[Any, ...]:
        """Cache identity: the name, and for files their path, size and mtime."""
        if self.path is None:
            return (self.kind, self.name)
        st = self.path.stat()
        return (self.kind, str(self.path), st.st_size, st.st_mtime_ns)


def _builtin_names() -> list[str]:
    models = cellpose_models()
    names = list(models.MODEL_NAMES)
    try:
        names.extend(models.get_user_models())
    except OSError:  # unreadable gui_models.txt: only the built-in names
        pass
    return names


def resolve_model(model: str) -> ModelRef:
    """Decide whether ``model`` is a built-in name or a model file.

    Parameters
    ----------
    model : str
        Built-in name, name of a file in :func:`models_dir`, or a path.

    Returns
    -------
    ModelRef
        The resolved reference.

    Raises
    ------
    CellposeModelError
        If ``model`` is empty, names a missing file, is a cellpose 3 name
        while cellpose 4 is installed, or is neither a known name nor a file.
    """
    name = str(model).strip()
    if not name:
        raise CellposeModelError(
            "cellpose.segment: 'model' is empty; give a built-in model name "
            f"(e.g. {default_model_name()!r}) or the path of a model file"
        )
    path = Path(name).expanduser()
    if path.is_file():
        return ModelRef(name, "file", path.resolve())
    if path.is_dir():
        raise CellposeModelError(
            f"cellpose model {name!r} is a folder; give the path of the model file inside it"
        )
    builtin = _builtin_names()
    major = cellpose_major()
    if name in builtin:
        return ModelRef(name, "builtin")
    in_dir = models_dir() / name
    if in_dir.is_file():
        return ModelRef(name, "file", in_dir.resolve())
    if major >= 4 and name in CP3_BUILTIN_MODELS:
        raise CellposeModelError(
            f"cellpose model {name!r} belongs to cellpose 3, but cellpose {cellpose_version()} "
            "is installed, which only ships 'cpsam' (it would silently run 'cpsam' instead). "
            "Use model='cpsam', or install cellpose 3 (pip install 'cellpose<4')."
        )
    if os.sep in name or "/" in name or path.suffix:
        raise CellposeModelError(f"cellpose model file not found: {path}")
    raise CellposeModelError(
        f"unknown cellpose model {name!r}: not a built-in model of cellpose "
        f"{cellpose_version()} ({', '.join(sorted(set(builtin)))}), not a file in "
        f"{models_dir()} and not the path of a file"
    )


@dataclass
class LoadedModel:
    """A loaded cellpose model and what the operation needs to know about it.

    Attributes
    ----------
    ref : ModelRef
        Which model this is.
    gpu_requested : bool
        Whether the GPU was asked for.
    model : cellpose.models.CellposeModel
        The model, as cellpose built it.
    api : int
        Major version of the cellpose API (3 or 4).
    """

    ref: ModelRef
    gpu_requested: bool
    model: Any
    api: int
    _size_model: Any = field(default=None, repr=False)
    _size_checked: bool = field(default=False, repr=False)

    @property
    def key(self) -> tuple[Any, ...]:
        """Identity of the model for caches: (model identity, device)."""
        return (*self.ref.identity, str(self.device))

    @property
    def device(self) -> Any:
        """The torch device the model runs on."""
        return self.model.device

    def size_model(self) -> Any:
        """Cellpose 3's size model of this model (for diameter estimation), or None.

        Built-in cyto/cyto2/cyto3/nuclei models have one (downloaded on first
        use); a custom model has one when ``<model file>_size.npy`` exists.
        Cellpose 4 has none.

        Raises
        ------
        CellposeModelError
            If the size model of a built-in model is missing and cannot be downloaded.
        """
        if self._size_checked:
            return self._size_model
        if self.api >= 4:
            self._size_checked = True
            return None
        models = cellpose_models()
        target = self.ref.name if self.ref.kind == "builtin" else str(self.ref.path)
        try:
            path = models.size_model_path(target)
        except FileNotFoundError:
            path = None
        except OSError as exc:
            raise CellposeModelError(
                f"the size model of cellpose model {self.ref.name!r} (used to estimate the "
                f"diameter when diameter=0) is not in {models_dir()} and could not be "
                f"downloaded ({type(exc).__name__}: {exc}). Set 'diameter' to the typical "
                "object diameter in pixels, or put the size model file (e.g. "
                f"size_{self.ref.name}.npy) in {models_dir()}."
            ) from exc
        if path is not None:
            self._size_model = models.SizeModel(cp_model=self.model, pretrained_size=path)
        self._size_checked = True
        return self._size_model


_CACHE: OrderedDict[tuple[Any, ...], LoadedModel] = OrderedDict()
_LOCK = threading.RLock()


def clear_model_cache() -> None:
    """Forget every loaded model (frees their memory once nothing else holds them)."""
    with _LOCK:
        _CACHE.clear()


def cached_models() -> list[LoadedModel]:
    """Return the models held in the cache, least recently used first."""
    with _LOCK:
        return list(_CACHE.values())


def load_model(model: str, gpu: bool = False) -> LoadedModel:
    """Load a cellpose model with cellpose's own code, or return it from the cache.

    Parameters
    ----------
    model : str
        Built-in name, name of a file in :func:`models_dir`, or path of a file.
    gpu : bool
        Use the GPU (CUDA or Apple MPS) when one is available; otherwise the
        CPU is used and a warning is logged.

    Returns
    -------
    LoadedModel
        The loaded model; the device used is logged at INFO level.

    Raises
    ------
    CellposeModelError
        If the model is unknown, its weights are missing and cannot be
        downloaded, or the file is not a model this cellpose can load.
    """
    ref = resolve_model(model)
    key = (*ref.identity, bool(gpu))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    loaded = _load(ref, bool(gpu))
    with _LOCK:
        _CACHE[key] = loaded
        _CACHE.move_to_end(key)
        while len(_CACHE) > MODEL_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return loaded


def _expected_weights(name: str) -> Path:
    """Where cellpose 3/4 keeps the weights of a built-in model (for messages)."""
    if cellpose_major() < 4 and name in ("cyto", "cyto2", "nuclei"):
        return models_dir() / f"{name}torch_0"
    return models_dir() / name


def _load(ref: ModelRef, gpu: bool) -> LoadedModel:
    models = cellpose_models()
    api = 4 if cellpose_major() >= 4 else 3
    downloads = ref.kind == "builtin" and not _expected_weights(ref.name).exists()
    if downloads:
        reason = _probe_download(_download_url(models, ref.name))
        if reason is not None:
            raise CellposeModelError(_download_message(ref.name, reason))
    try:
        if ref.kind == "file":
            cp = models.CellposeModel(gpu=gpu, pretrained_model=str(ref.path))
        elif api >= 4:
            cp = models.CellposeModel(gpu=gpu, pretrained_model=ref.name)
        else:
            cp = models.CellposeModel(gpu=gpu, model_type=ref.name)
    except CellposeModelError:
        raise
    except OSError as exc:
        if downloads:
            raise CellposeModelError(
                _download_message(ref.name, f"{type(exc).__name__}: {exc}")
            ) from exc
        where = ref.path if ref.kind == "file" else _expected_weights(ref.name)
        raise CellposeModelError(
            f"could not read cellpose model file {where}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        where = ref.path if ref.kind == "file" else _expected_weights(ref.name)
        raise CellposeModelError(
            f"could not load cellpose model {ref.name!r} from {where} with cellpose "
            f"{cellpose_version()}: {type(exc).__name__}: {exc}. Is it a cellpose "
            f"{api} model file?"
        ) from exc
    device = cp.device
    if gpu and getattr(device, "type", "cpu") == "cpu":
        logger.warning("cellpose: GPU requested but none is available; running on the CPU")
    logger.info("cellpose: model %r (cellpose %s) runs on %s", ref.name, cellpose_version(), device)
    return LoadedModel(ref=ref, gpu_requested=gpu, model=cp, api=api)


def _download_url(models: Any, name: str) -> str:
    """URL cellpose downloads the weights of built-in model ``name`` from."""
    cp4_url = getattr(models, "_CPSAM_MODEL_URL", None)
    if cp4_url:
        return str(cp4_url)
    return f"{models._MODEL_URL}/{_expected_weights(name).name}"


def _probe_timeout() -> float:
    raw = os.environ.get("FBIAS_CELLPOSE_DOWNLOAD_TIMEOUT", "")
    try:
        return float(raw) if raw else DOWNLOAD_PROBE_TIMEOUT_S
    except ValueError:
        return DOWNLOAD_PROBE_TIMEOUT_S


def _probe_download(url: str) -> str | None:
    """Ask the download server about ``url`` (HEAD), within a time limit.

    Returns None when the server answered (even with an HTTP error: cellpose
    then tries and reports for itself), else why it could not be reached.
    """
    timeout = _probe_timeout()
    outcome: dict[str, BaseException] = {}

    def ask() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except urllib.error.HTTPError:
            pass  # the server answers
        except (OSError, ValueError) as exc:
            outcome["error"] = exc

    # A name lookup cannot be given a timeout: ask in a daemon thread and stop waiting.
    worker = threading.Thread(target=ask, name="fbias-cellpose-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    host = urlparse(url).hostname or url
    err = outcome.get("error")
    timed_out = isinstance(err, TimeoutError) or isinstance(
        getattr(err, "reason", None), TimeoutError
    )
    if worker.is_alive() or timed_out:
        return f"no answer from {host} within {timeout:g} s"
    if err is not None:
        return f"cannot reach {host}: {type(err).__name__}: {err}"
    return None


def _download_message(name: str, reason: str) -> str:
    return (
        f"the weights of cellpose model {name!r} are not in {models_dir()} and downloading "
        f"them failed ({reason}); is there no network access? To use "
        f"this model offline, copy its weights file to {_expected_weights(name)} (the folder "
        "is set by the CELLPOSE_LOCAL_MODELS_PATH environment variable, default "
        "~/.cellpose/models), or pass the path of a model file as 'model'."
    )
