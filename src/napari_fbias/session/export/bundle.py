"""The delivery bundle: everything a user takes home from an open-desk session.

:func:`export_bundle` writes a folder (and optionally a ``.zip`` of it)::

    README.md                what the pipeline does, how to install and rerun it
    pipeline.fbias.yaml      the pipeline (pipeline_<key>.fbias.yaml for several approaches)
    run_pipeline.py          the same steps as a readable Python script
    pipeline.ipynb           the same steps as a notebook, with figures
    report.html              the session report with figures (self-contained)
    session.yaml             the session record
    requirements.lock.txt    exact package versions (napari-fbias: the wheel below, with its hash)
    wheels/                  the wheel of the napari-fbias that made the bundle (:mod:`.wheel`)
    ro-crate-metadata.json   RO-Crate (Workflow Run Crate style) metadata
    checksums.sha256         checksums of the files and of the input images' pixels
    images/                  copies of the input images (only with include_images)

The folder is built in a temporary sibling and renamed into place when
complete; an existing destination is never overwritten unless asked, and
temporary folders left by killed exports are removed (:mod:`.staging`).
Nothing secret goes in: the session is cleaned first (:mod:`.clean`: URLs
lose user information and query values not known to be harmless, settings
named like a secret are dropped, control characters go, every field is
bounded), and every text file is checked again before the rename
(:func:`~napari_fbias.io.credentials.find_secrets`); ``images/`` (the user's
own images) and ``wheels/`` (napari-fbias's own code, nothing from the
session) are not scanned. The export reads only the image sources the
analysts opened in the session, unless asked (:mod:`.sources`), and the
report's figures are bounded (:mod:`.rerun_figures`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_fbias.io.credentials import SecretFound, find_secrets
from napari_fbias.session.export.errors import ExportError
from napari_fbias.session.export.pipeline_inputs import pipeline_images
from napari_fbias.session.export.readme import ExportedApproach
from napari_fbias.session.export.report import ApproachFigures
from napari_fbias.session.export.sources import SourceAccess
from napari_fbias.session.export.wheel import WHEELS_DIR, PackageSource
from napari_fbias.session.model import Session

CHECKSUMS = "checksums.sha256"
_IMAGE_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif")
#: At most this many places are named when the final scan refuses a bundle.
LEAKS_SHOWN = 10

__all__ = ["ExportResult", "export_bundle", "find_secrets", "scrub_session"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_bundle` wrote.

    Attributes
    ----------
    folder : Path
        The bundle folder.
    zip_path : Path or None
        The ``.zip`` of it, when asked for.
    approaches : tuple of str
        Keys of the exported approaches (the first is the main one).
    pipelines : dict of str to Path
        Approach key -> its pipeline file.
    files : tuple of str
        Every file of the bundle (relative POSIX paths).
    notes : tuple of str
        Things worth knowing (figures that could not be made, images not copied).
    """

    folder: Path
    zip_path: Path | None
    approaches: tuple[str, ...]
    pipelines: dict[str, Path]
    files: tuple[str, ...]
    notes: tuple[str, ...] = ()


# --- the session, cleaned --------------------------------------------------------------
def scrub_session(session: Session) -> Session:
    """Return the session without credentials anywhere in it (see :mod:`.clean`).

    Every string (values and keys) loses the credentials of the URLs it holds
    and its control characters, and is cut to its field's limit; settings
    (``params``) whose name looks secret are dropped.
    """
    from napari_fbias.session.export.clean import clean_session

    return clean_session(session)


def load_any_session(source: Session | str | os.PathLike[str]) -> Session:
    """Return a Session, loading it from a session folder, journal or snapshot if needed."""
    if isinstance(source, Session):
        return source
    from napari_fbias.session.store import load_session

    return load_session(source)


# --- which approaches, which images ----------------------------------------------------
def choose_approaches(session: Session, keys: Sequence[str] | None) -> list[str]:
    """Return the approaches to export: those named, else the proposed one, else all with steps.

    Raises
    ------
    ExportError
        For an unknown approach, one without steps, or a session with none.
    """
    with_steps = [a.key for a in session.approaches if a.steps]
    if keys:
        out: list[str] = []
        for k in keys:
            try:
                a = session.approach(k)
            except KeyError as exc:
                raise ExportError(str(exc.args[0])) from None
            if not a.steps:
                raise ExportError(f"approach {k} has no steps: there is no pipeline to export")
            if k not in out:
                out.append(k)
        return out
    sol = session.solution.approach if session.solution else None
    if sol is not None and sol in with_steps:
        return [sol]
    if not with_steps:
        raise ExportError(
            f"session {session.title or session.id!r} has no approach with steps: "
            "there is no pipeline to export"
        )
    return with_steps


def _safe_key(key: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_-") or "approach"
    out, n = base, 2
    while out.lower() in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out.lower())
    return out


# --- the report's figures ----------------------------------------------------------------
def _report_figures(
    session: Session, keys: Sequence[str], access: SourceAccess, notes: list[str]
) -> tuple[dict[str, ApproachFigures], str]:
    """Rerun and draw every approach with steps; return its figures and a note for the report.

    The delivered approaches are drawn first, so that they get the report's
    figures when the limits leave none for later ones. One note says which
    approaches could not be drawn because their images were not opened in
    the session, one what the limits left out; other problems are noted per
    approach.
    """
    from napari_fbias.io.text_limits import MAX_TEXT, bound_text
    from napari_fbias.session.export.rerun_figures import FigureBudget, approach_figures

    with_steps = [a.key for a in session.approaches if a.steps]
    order = [k for k in keys if k in with_steps] + [k for k in with_steps if k not in keys]
    budget = FigureBudget.for_report(len(with_steps))
    drawn = {key: approach_figures(session, key, access, budget) for key in order}
    figs = {key: drawn[key] for key in with_steps}
    refused = [key for key, f in figs.items() if f.refused]
    for f in figs.values():
        f.note = bound_text(f.note, MAX_TEXT)
        if f.note and not f.refused:
            notes.append(f.note)
    said = []
    if refused:
        images = dict.fromkeys(i for k in refused for i in figs[k].refused)
        said.append(f"No figures for approach(es) {', '.join(refused)}: {access.why(images)}")
    if budget.summary():
        said.append(budget.summary())
    said = [bound_text(s if s.endswith(".") else s + ".", MAX_TEXT) for s in said]
    notes.extend(said)
    return figs, " ".join(said)


def _bundled_package(notes: list[str]) -> tuple[PackageSource, bytes]:
    """Return how napari-fbias goes with the bundle, and the bytes of its wheel (if any).

    The bytes are read once and checked against the wheel's hash, so the
    hash written in the lock is that of the file written in the bundle.
    """
    from napari_fbias.session.export.wheel import package_source

    source = package_source()
    if source.wheel is None:
        if not source.from_index:  # one pinned from its index needs no word
            notes.append(f"napari-fbias {source.version} is not in the bundle: {source.why}")
        return source, b""
    data = source.wheel.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != source.wheel.sha256:
        raise ExportError(f"{source.wheel.path} changed while it was read; export again")
    return source, data


# --- writing -------------------------------------------------------------------------
@dataclass
class _Writer:
    root: Path
    sizes: dict[str, int] = field(default_factory=dict)

    def text(self, rel: str, text: str) -> None:
        self.bytes(rel, text.encode("utf-8"))

    def bytes(self, rel: str, data: bytes) -> None:
        from napari_fbias.io.atomic import atomic_write_bytes

        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, overwrite=False)
        self.sizes[rel] = len(data)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _all_files(root: Path) -> list[str]:
    from napari_fbias.session.export.staging import OWNER_FILE

    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != OWNER_FILE
    )


def _copy_images(
    session: Session, names: Sequence[str], dest: Path, notes: list[str], access: SourceAccess
) -> dict[str, str]:
    """Copy local input images into ``dest/images``; return image name -> bundle path.

    Images whose source was not opened in the session are not copied (see :mod:`.sources`).
    """
    copied: dict[str, str] = {}
    for name in names:
        ref = session.image(name)
        if ref is None:
            continue
        if not access.allows(ref.source):
            notes.append(f"image {name!r} was not copied: {access.why([name])}")
            continue
        src = Path(ref.source) if ref.source and "://" not in ref.source else None
        if src is None or not src.exists():
            where = ref.source or "no source"
            notes.append(f"image {name!r} was not copied: {where} is not a local file")
            continue
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "image"
        lower = src.name.lower()
        suffix = next((s for s in _IMAGE_SUFFIXES if lower.endswith(s)), src.suffix)
        rel = f"images/{safe}{suffix}"
        target = dest / rel
        target.parent.mkdir(exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copy2(src, target)
        copied[name] = rel
    return copied


def _checksums_text(root: Path, session: Session, image_names: Sequence[str]) -> str:
    lines = [
        "# SHA-256 of every file of this bundle; check with: sha256sum -c checksums.sha256",
    ]
    for name in image_names:
        ref = session.image(name)
        if ref is None:
            continue
        from napari_fbias.session.export.codegen import clean_text

        pixels = ref.checksum or "not recorded"
        lines.append(
            f"# input image {clean_text(name)!r}: pixels {pixels}"
            f" (source {clean_text(ref.source) or 'unknown'})"
        )
    for rel in _all_files(root):
        if rel == CHECKSUMS:
            continue
        lines.append(f"{_sha256_file(root / rel)}  {rel}")
    return "\n".join(lines) + "\n"


def _zip_folder(folder: Path, zip_path: Path, arc_root: str) -> None:
    from napari_fbias.session.export.staging import zip_tmp_path

    tmp = zip_tmp_path(folder, zip_path)
    try:
        with zipfile.ZipFile(tmp, "x", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in _all_files(folder):
                zf.write(folder / rel, f"{arc_root}/{rel}")
        os.replace(tmp, zip_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_bundle(
    session: Session | str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    approaches: Sequence[str] | None = None,
    zip: bool = False,
    include_images: bool = False,
    figures: bool = True,
    overwrite: bool = False,
    read_sources: bool = False,
) -> ExportResult:
    """Write the delivery bundle of a session.

    Parameters
    ----------
    session : Session or path
        The session, or its link (folder path or URL in a session space), a
        journal in it, or a ``session.yaml``.
    dest : path
        The bundle folder to create (its parent must exist).
    approaches : sequence of str, optional
        Keys of the approaches to deliver. Default: the one the solution
        names, else every approach with steps.
    zip : bool
        Also write ``<dest>.zip`` (the folder inside it).
    include_images : bool
        Copy the (local) input images into ``images/``. Off by default: the
        user's images stay where they are.
    figures : bool
        Rerun each approach on the session's images to draw figures for the
        report (default). Off: the report has the record only.
    overwrite : bool
        Replace an existing bundle folder / zip.
    read_sources : bool
        Read (for figures and ``include_images``) every image source the
        session names. Off by default: only sources the analysts opened in
        the session are read (an ``image_added`` event in one of its
        journals); those that come only from a ``session.yaml``, a restored
        snapshot or a Session value are not (:mod:`.sources`).

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        Nothing to export, unknown approach, destination exists, a step that
        cannot be written as a script.
    SessionError
        When the session cannot be read.
    """
    from napari_fbias import __version__
    from napari_fbias.io.atomic import atomic_dir
    from napari_fbias.io.errors import OutputExistsError
    from napari_fbias.pipeline.provenance import utc_now_iso
    from napari_fbias.session.export.envlock import lock_text
    from napari_fbias.session.export.notebook import notebook_text
    from napari_fbias.session.export.readme import readme_text
    from napari_fbias.session.export.report import render_report
    from napari_fbias.session.export.rerun_figures import comparison_figures
    from napari_fbias.session.export.rocrate import CRATE_FILE, CrateRun, build_crate
    from napari_fbias.session.export.script import script_text
    from napari_fbias.session.export.sources import source_access
    from napari_fbias.session.export.staging import claim, release, remove_abandoned
    from napari_fbias.session.store import snapshot_text
    from napari_fbias.session.to_pipeline import approach_to_pipeline

    s = scrub_session(load_any_session(session))
    access = source_access(session, read_sources=read_sources)
    dest = Path(dest).expanduser().absolute()
    zip_path = dest.with_name(dest.name + ".zip") if zip else None
    if dest.exists() and not overwrite:
        raise ExportError(f"{dest} already exists; choose another folder (or allow overwriting)")
    if zip_path is not None and zip_path.exists() and not overwrite:
        raise ExportError(f"{zip_path} already exists; choose another name (or allow overwriting)")
    if not dest.parent.is_dir():
        raise ExportError(f"cannot write the bundle to {dest}: folder {dest.parent} does not exist")
    keys = choose_approaches(s, approaches)
    created = utc_now_iso()
    notes: list[str] = [
        f"removed {name}, left in {dest.parent} by an export that was interrupted"
        for name in remove_abandoned(dest.parent)
    ]
    package, wheel_bytes = _bundled_package(notes)
    taken: set[str] = set()
    exported: list[ExportedApproach] = []
    for key in keys:
        a = s.approach(key)
        suffix = "" if len(keys) == 1 else "_" + _safe_key(key, taken)
        pipeline = approach_to_pipeline(s, key)
        images = pipeline_images(s, key, pipeline)
        exported.append(
            ExportedApproach(
                key=key,
                title=a.title,
                analyst=a.analyst,
                pipeline=pipeline,
                pipeline_file=f"pipeline{suffix}.fbias.yaml",
                script_file=f"run_pipeline{suffix}.py",
                notebook_file=f"pipeline{suffix}.ipynb",
                images=tuple(images.values()),
            )
        )
    figs, figures_note = _report_figures(s, keys, access, notes) if figures else ({}, "")
    used_images = list(dict.fromkeys(n for e in exported for n in e.images))
    image_refs = {i.name: i for i in s.images}
    commands = [f"fbias run {exported[0].pipeline_file} INPUT... -o results"]
    commands += [f"python {exported[0].script_file} INPUT... -o results"]
    try:
        with atomic_dir(dest, overwrite=overwrite) as tmp:
            claim(tmp)
            w = _Writer(tmp)
            included = _copy_images(s, used_images, tmp, notes, access) if include_images else {}
            for e in exported:
                about = [
                    f"Approach {e.key}"
                    + (f" ({e.title})" if e.title else "")
                    + (f" by {e.analyst}" if e.analyst else "")
                    + f", open-desk session {s.title or s.id[:8]!r} of {s.created[:10]}.",
                ]
                w.text(e.pipeline_file, e.pipeline.dumps())
                w.text(
                    e.script_file,
                    script_text(
                        e.pipeline,
                        file_name=e.script_file,
                        pipeline_file=e.pipeline_file,
                        about=about,
                    ),
                )
                defaults = {
                    n: (included.get(img) or image_refs[img].source)
                    for n, img in pipeline_images(s, e.key, e.pipeline).items()
                    if img in image_refs
                }
                w.text(
                    e.notebook_file,
                    notebook_text(
                        e.pipeline,
                        default_inputs=defaults,
                        title=f"{s.title or 'Open-desk session'}: approach {e.key}",
                        about=[*about, f"Question: {s.question}" if s.question else ""],
                    ),
                )
            w.text("session.yaml", snapshot_text(s))
            if package.wheel is not None:
                w.bytes(package.wheel.bundle_path, wheel_bytes)
            w.text(
                "requirements.lock.txt",
                lock_text(extras=_extras_needed(exported), wheel=package.wheel),
            )
            w.text(
                "README.md",
                readme_text(
                    s,
                    exported,
                    version=__version__,
                    package=package,
                    images=image_refs,
                    include_images=included,
                    created=created,
                ),
            )
            w.text(
                "report.html",
                render_report(
                    s,
                    figures=figs,
                    charts=comparison_figures(figs) if figs else [],
                    exported={e.key: e.pipeline_file for e in exported},
                    commands=commands,
                    generated=created,
                    figures_note=figures_note,
                ),
            )
            files = {rel: (tmp / rel).stat().st_size for rel in _all_files(tmp)}
            runs = [
                CrateRun(
                    key=e.key,
                    name=f"Approach {e.key}" + (f": {e.title}" if e.title else ""),
                    pipeline_file=e.pipeline_file,
                    pipeline_name=e.pipeline.name,
                    analyst=e.analyst,
                    images=e.images,
                )
                for e in exported
            ]
            crate = build_crate(
                s,
                files=files,
                runs=runs,
                included_images=included,
                created=created,
                extra_files=[CHECKSUMS],
            )
            w.text(CRATE_FILE, json.dumps(crate, indent=2, ensure_ascii=False) + "\n")
            w.text(CHECKSUMS, _checksums_text(tmp, s, used_images))
            leaks = _scan(tmp)
            if leaks:
                raise ExportError("refusing to write the bundle: " + _leak_text(leaks))
            if zip_path is not None:
                _zip_folder(tmp, zip_path, dest.name)
            release(tmp)
    except OutputExistsError as exc:
        raise ExportError(str(exc)) from None
    return ExportResult(
        folder=dest,
        zip_path=zip_path,
        approaches=tuple(keys),
        pipelines={e.key: dest / e.pipeline_file for e in exported},
        files=tuple(_all_files(dest)),
        notes=tuple(notes),
    )


def _scan(root: Path) -> dict[str, list[SecretFound]]:
    """Files (relative paths) of the bundle whose text holds a URL with credentials."""
    bad: dict[str, list[SecretFound]] = {}
    for rel in _all_files(root):
        if rel.startswith(("images/", f"{WHEELS_DIR}/")):
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found = find_secrets(text)
        if found:
            bad[rel] = found
    return bad


def _leak_text(leaks: Mapping[str, Sequence[SecretFound]]) -> str:
    """Say where the scan found credentials (never what they are)."""
    places = [f"{rel} {f}" for rel in sorted(leaks) for f in leaks[rel]]
    more = len(places) - LEAKS_SHOWN
    shown = "; ".join(places[:LEAKS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
    return f"credentials found in {shown}"


#: Operation name prefix -> the extra of napari-fbias its steps need to rerun.
OP_EXTRAS = {"cellpose.": "cellpose"}


def _extras_needed(exported: Sequence[ExportedApproach]) -> tuple[str, ...]:
    """Return the extras the bundle's pipelines need beyond the core (``("cellpose",)``)."""
    ops = {step.op for e in exported for step in e.pipeline.steps}
    return tuple(
        sorted(
            {extra for prefix, extra in OP_EXTRAS.items() if any(o.startswith(prefix) for o in ops)}
        )
    )
