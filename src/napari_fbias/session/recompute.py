"""Show another analyst's result here: recompute an approach's recorded steps on this machine.

Reruns are bit for bit (each step goes through
:func:`~napari_fbias.pipeline.runner.compute_step`, the single-step path of the
napari widgets), so recomputing analyst A's steps on the same pixels gives A's
result. The pixels must be the same: every input image is opened from its
recorded source (a shared path, a URL, an ``omero://`` URI) and, when the
session recorded a checksum, checked against it. When an input cannot be
read here, or its pixels differ, :class:`CannotRecomputeError` says which and
why; nothing is shown that might differ from what A saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari_fbias.session import graph
from napari_fbias.session.errors import SessionError
from napari_fbias.session.events import order_steps
from napari_fbias.session.model import ImageRef, Session, StepInput

Opener = Callable[[str], Any]
Progress = Callable[[int, int, str], None]


class CannotRecomputeError(SessionError):
    """An approach cannot be recomputed here (an input unreadable or with other pixels)."""


def recompute_approach(
    session: Session,
    key: str,
    *,
    opener: Opener | None = None,
    verify: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Recompute approach ``key``; return its steps' results by step id (pipeline ``Value``).

    Parameters
    ----------
    session : Session
        The (merged) session record.
    key : str
        The approach to recompute; steps of other approaches it reads are
        recomputed too.
    opener : callable, optional
        Opens an image source (default :func:`napari_fbias.io.open.open_image`).
    verify : bool
        Check the pixels against the recorded checksums (default True).
    progress : callable, optional
        ``progress(i, n, step_id)`` before each step.

    Raises
    ------
    CannotRecomputeError
        When an input cannot be opened here or its pixels are not the recorded ones.
    """
    from napari_fbias.ops.registry import get_op
    from napari_fbias.pipeline.apply import compute_step
    from napari_fbias.pipeline.model import Step

    approach = session.approach(key)
    own = {s.id for s in approach.steps}
    wanted = own | graph.ancestors(session, own)
    steps = order_steps(tuple(s for _, s in session.all_steps() if s.id in wanted))
    images: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for i, st in enumerate(steps):
        if progress is not None:
            progress(i, len(steps), st.id)
        spec = get_op(st.op)
        args = []
        for decl in spec.inputs:
            ref = st.inputs.get(decl.name)
            args.append(
                None if ref is None else _read(session, ref, values, images, opener, verify)
            )
        values[st.id] = compute_step(spec, Step(st.id, st.op, {}, dict(st.params)), args)
    if progress is not None:
        progress(len(steps), len(steps), "")
    return {sid: values[sid] for sid in (s.id for s in approach.steps) if sid in values}


def _read(
    session: Session,
    ref: StepInput,
    values: dict[str, Any],
    images: dict[str, Any],
    opener: Opener | None,
    verify: bool,
) -> Any:
    from napari_fbias.pipeline.model import InputDecl
    from napari_fbias.pipeline.values import select

    if ref.step is not None:
        value = values[ref.step]
        kind = value.kind
    else:
        img = session.image(ref.image)  # type: ignore[arg-type]
        if img is None:
            raise CannotRecomputeError(f"image {ref.image!r} is not in the session record")
        if img.name not in images:
            images[img.name] = _open(img, opener, verify)
        value = images[img.name]
        kind = img.kind
    if not ref.select or not value.is_array:
        return value
    sel = ref.select
    decl = InputDecl(kind=kind, channel=sel.get("c"), t=sel.get("t"), z=sel.get("z"))
    return select(value, decl, ref.layer or ref.ref)


def _open(img: ImageRef, opener: Opener | None, verify: bool) -> Any:
    import numpy as np

    from napari_fbias.pipeline.provenance import array_sha256
    from napari_fbias.pipeline.values import Value

    if not img.source:
        raise CannotRecomputeError(
            f"image {img.name!r} has no recorded source: it was opened from memory on the "
            "analyst's machine, so it cannot be read here"
        )
    if opener is None:
        from napari_fbias.io.open import open_image as opener
    try:
        image = opener(img.source)
    except Exception as exc:
        raise CannotRecomputeError(
            f"image {img.name!r} cannot be read here from {img.source}: {exc}"
        ) from None
    data = np.asarray(image.data)
    if verify and img.checksum:
        got = "sha256:" + array_sha256(data)
        if got != img.checksum:
            raise CannotRecomputeError(
                f"image {img.name!r} at {img.source} has other pixels here than when it was "
                f"recorded (checksum {got[:19]}... instead of {img.checksum[:19]}...)"
            )
    scale = tuple(float(s) for s in image.scale)
    kind = "labels" if img.kind == "labels" else "image"
    return Value(data, kind, "".join(image.axes), scale, None)


def value_digest(value: Any) -> str:
    """Return a checksum of a result (pixels, or a table's CSV text) to compare across machines."""
    import hashlib

    from napari_fbias.pipeline.provenance import array_sha256

    data = getattr(value, "data", value)
    if hasattr(data, "to_csv"):
        return "sha256:" + hashlib.sha256(data.to_csv(index=False).encode()).hexdigest()
    return "sha256:" + array_sha256(data)
