"""Which session image each input of an approach's exported pipeline reads.

Used by the bundle (README, checksums, copies of the images) and by the
figures drawn by rerunning the approaches.
"""

from __future__ import annotations

from typing import Any

from napari_fbias.session.export.errors import ExportError
from napari_fbias.session.model import Session

__all__ = ["pipeline_images"]


def pipeline_images(session: Session, key: str, pipeline: Any) -> dict[str, str]:
    """Pipeline input name -> the session image it reads, for an approach's pipeline.

    The inputs of :func:`~napari_fbias.session.to_pipeline.approach_to_pipeline`
    are the images read, in order of first use; this follows the same order.

    Raises
    ------
    ExportError
        When the inputs cannot be matched to the session's images.
    """
    from napari_fbias.session import graph
    from napari_fbias.session.events import order_steps

    approach = session.approach(key)
    own = {s.id for s in approach.steps}
    wanted = own | graph.ancestors(session, own)
    steps = order_steps(tuple(s for _, s in session.all_steps() if s.id in wanted))
    seen: list[str] = []
    for st in steps:
        for i in st.inputs.values():
            if i.image is not None and i.image not in seen:
                seen.append(i.image)
    names = list(pipeline.inputs)
    if len(names) != len(seen):
        raise ExportError(
            f"approach {key}: its pipeline has {len(names)} inputs but its steps read "
            f"{len(seen)} images"
        )
    out = dict(zip(names, seen, strict=True))
    for name, image in out.items():
        ref = session.image(image)
        if ref is None or ref.kind != pipeline.inputs[name].kind:
            raise ExportError(f"approach {key}: input {name!r} does not match image {image!r}")
    return out
