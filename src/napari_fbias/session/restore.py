"""Bring back the work of a reopened session: its images, and its results recomputed.

A session records how each result was made, not its pixels. Reopening it
therefore opens every image again from its recorded source and recomputes
every approach's recorded steps with
:func:`~napari_fbias.session.recompute.recompute_approach` (bit for bit, the
pixels checked against the recorded checksums), so the result layers come
back exactly as they were.

:func:`restore_work` is meant for a worker thread: it never touches a
widget, and tells what it did through ``report`` as it goes (an image
opened, an approach recomputed, a problem, progress), so that the caller
shows each piece as soon as it is ready. A problem with one image or one
approach is reported and the rest goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_fbias.session import graph
from napari_fbias.session.model import ImageRef, Session
from napari_fbias.session.secrets import scrub_text

__all__ = [
    "ApproachRecomputed",
    "ImageOpened",
    "Problem",
    "Progress",
    "RestoreSummary",
    "image_layers",
    "restorable_approaches",
    "restore_work",
]

Opener = Callable[[str], Any]
Report = Callable[[object], None]


@dataclass(frozen=True)
class Progress:
    """How far the restore is: ``done`` of ``total`` units (images, steps), and what is next."""

    done: int
    total: int
    text: str


@dataclass(frozen=True)
class ImageOpened:
    """An image of the session opened again from its source (``image``: a MultiscaleImage)."""

    ref: ImageRef
    image: Any


@dataclass(frozen=True)
class ApproachRecomputed:
    """The results of approach ``key``'s steps, by step id (pipeline ``Value``)."""

    key: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """Something that could not be brought back (``what``: ``"image cells"``, ``"approach A"``)."""

    what: str
    message: str


@dataclass
class RestoreSummary:
    """What :func:`restore_work` brought back."""

    images: list[str] = field(default_factory=list)
    approaches: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def image_layers(ref: ImageRef) -> dict[str, Mapping[str, int]]:
    """Return the napari layers that show an image (its own name when none were recorded)."""
    return dict(ref.layers) or {ref.name: {}}


def restorable_approaches(session: Session) -> list[str]:
    """Return the approaches that have a result layer to bring back, in the session's order."""
    return [a.key for a in session.approaches if any(s.output_layer for s in a.steps)]


def _n_steps(session: Session, key: str) -> int:
    own = {s.id for s in session.approach(key).steps}
    return len(own | graph.ancestors(session, own))


def restore_work(
    session: Session,
    *,
    report: Report,
    present: Collection[str] = (),
    opener: Opener | None = None,
) -> RestoreSummary:
    """Open the session's images and recompute its approaches; tell ``report`` as it goes.

    Parameters
    ----------
    session : Session
        The session as reopened (every analyst's journals merged).
    report : callable
        Called (from this thread) with an :class:`ImageOpened`,
        :class:`ApproachRecomputed`, :class:`Problem` or :class:`Progress`
        value as soon as there is one.
    present : collection of str
        Layer names already shown: an image all of whose layers are present
        is not opened again.
    opener : callable, optional
        Opens an image source (default :func:`napari_fbias.io.open.open_image`).
        Each source is opened once; the results are recomputed from the same
        images.

    Returns
    -------
    RestoreSummary
        The images opened, the approaches recomputed and the problems met.
    """
    from napari_fbias.session.recompute import recompute_approach

    if opener is None:
        from napari_fbias.io.open import open_image as opener
    cache: dict[str, Any] = {}

    def cached(source: str) -> Any:
        if source not in cache:
            cache[source] = opener(source)
        return cache[source]

    present = frozenset(present)
    images = [
        ref
        for ref in session.images
        if ref.source and not all(name in present for name in image_layers(ref))
    ]
    keys = restorable_approaches(session)
    sizes = {key: _n_steps(session, key) for key in keys}
    total = len(images) + sum(sizes.values())
    done = 0
    out = RestoreSummary()

    def problem(what: str, message: str) -> None:
        found = Problem(what, scrub_text(message))
        out.problems.append(found)
        report(found)

    for ref in images:
        report(Progress(done, total, f"opening image {ref.name}"))
        try:
            image = cached(ref.source)
        except Exception as exc:  # any reader error: say so, go on with the rest
            problem(
                f"image {ref.name}",
                f"could not re-open image {ref.name!r} from {ref.source}: {exc}",
            )
        else:
            out.images.append(ref.name)
            report(ImageOpened(ref, image))
        done += 1
    for key in keys:
        start = done

        def step_progress(i: int, n: int, step_id: str, key: str = key, start: int = start) -> None:
            if step_id:
                report(
                    Progress(start + i, total, f"approach {key}: step {i + 1} of {n} ({step_id})")
                )

        try:
            values = recompute_approach(session, key, opener=cached, progress=step_progress)
        except Exception as exc:  # unreadable input, other pixels, a step that fails: say why
            problem(f"approach {key}", f"approach {key} cannot be recomputed here: {_reason(exc)}")
        else:
            out.approaches.append(key)
            report(ApproachRecomputed(key, values))
        done = start + sizes[key]
    report(Progress(total, total, "done"))
    return out


def _reason(exc: BaseException) -> str:
    from napari_fbias.pipeline.errors import StepError
    from napari_fbias.session.errors import SessionError

    if isinstance(exc, StepError):
        return exc.reason
    if isinstance(exc, (SessionError, ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
