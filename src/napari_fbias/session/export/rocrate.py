"""RO-Crate metadata of a delivery bundle (``ro-crate-metadata.json``).

RO-Crate 1.1, in the style of a Workflow Run Crate (profile 0.5): the bundle
folder is the root ``Dataset``; each exported pipeline is a
``ComputationalWorkflow`` (the first is the ``mainEntity``); each exported
approach is a ``CreateAction`` run of its pipeline by the analysts (``agent``,
names only) on the input images (``object``) from the start to the end of
the session, with the report as its ``result``. Written as plain JSON-LD (no
extra dependency); :func:`check_crate` checks the structure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_fbias.io.text_limits import MAX_SLUG
from napari_fbias.session.model import Session

CRATE_FILE = "ro-crate-metadata.json"
CONTEXT = "https://w3id.org/ro/crate/1.1/context"
RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.1"
PROFILES = (
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
)
LANGUAGE_ID = "#napari-fbias-pipeline"
_FORMATS = {
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".py": "text/x-python",
    ".ipynb": "application/x-ipynb+json",
    ".html": "text/html",
    ".txt": "text/plain",
    ".sha256": "text/plain",
    ".json": "application/json",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


@dataclass(frozen=True)
class CrateRun:
    """One exported approach: its pipeline file and the images it read.

    Attributes
    ----------
    key : str
        Approach key.
    name : str
        Human name (``"Approach A: classical"``).
    pipeline_file : str
        Path of its pipeline in the bundle.
    pipeline_name : str
        The pipeline's name.
    analyst : str
        Who did it (may be empty).
    images : tuple of str
        Names of the session images its pipeline reads.
    """

    key: str
    name: str
    pipeline_file: str
    pipeline_name: str
    analyst: str
    images: tuple[str, ...]


def _slug(text: str) -> str:
    """Return a short id part for ``text``: at most MAX_SLUG characters, a hash when cut."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if len(slug) <= MAX_SLUG:
        return slug
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return slug[: MAX_SLUG - len(digest) - 1].rstrip("-") + "-" + digest


def _format(path: str) -> str | None:
    name = path.lower()
    if name.endswith(".fbias.yaml"):
        return "application/yaml"
    return _FORMATS.get(Path(name).suffix)


def person_id(name: str) -> str:
    """Return the crate-local id of a person (``#person-<slug>``)."""
    return f"#person-{_slug(name)}"


def image_id(name: str, source: str, included: Mapping[str, str]) -> str:
    """Return the id of an input image: its path in the bundle, its URL, or ``#image-<slug>``."""
    if name in included:
        return included[name]
    if re.match(r"^(https?|s3)://", source):
        return source
    return f"#image-{_slug(name)}"


def build_crate(
    session: Session,
    *,
    files: Mapping[str, int],
    runs: Sequence[CrateRun],
    included_images: Mapping[str, str] | None = None,
    created: str,
    report_file: str = "report.html",
    extra_files: Sequence[str] = (),
) -> dict[str, Any]:
    """Return the RO-Crate JSON-LD document of a bundle.

    Parameters
    ----------
    session : Session
        The session (credentials removed).
    files : mapping of str to int
        Bundle file (relative POSIX path) -> size in bytes.
    runs : sequence of CrateRun
        The exported approaches; the first one's pipeline is the main entity.
    included_images : mapping of str to str, optional
        Session image name -> its copy in the bundle (``include_images``).
    created : str
        When the bundle was made (UTC ISO).
    report_file : str
        The report, recorded as the result of each run.
    extra_files : sequence of str
        Files written after this document (e.g. the checksums), listed without a size.

    Returns
    -------
    dict
        The JSON-LD document.
    """
    from napari_fbias import __version__

    included = dict(included_images or {})
    title = session.title or "Open-desk session"
    graph: list[dict[str, Any]] = [
        {
            "@id": CRATE_FILE,
            "@type": "CreativeWork",
            "conformsTo": {"@id": RO_CRATE_SPEC},
            "about": {"@id": "./"},
        }
    ]
    all_files = sorted({*files, *extra_files} - {CRATE_FILE})
    runs = list(runs)
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"{title}: analysis pipeline delivery",
        "description": (
            f"Delivery bundle of the open-desk session {title!r}"
            + (f" for {session.user.name}" if session.user.name else "")
            + (f". Question: {session.question}" if session.question else "")
        ),
        "datePublished": created,
        "conformsTo": [{"@id": pid} for pid, _, _ in PROFILES],
        "hasPart": [{"@id": f} for f in all_files],
        "mentions": [{"@id": f"#run-{_slug(r.key)}"} for r in runs],
    }
    if runs:
        root["mainEntity"] = {"@id": runs[0].pipeline_file}
    graph.append(root)
    for pid, name, version in PROFILES:
        graph.append({"@id": pid, "@type": "CreativeWork", "name": name, "version": version})
    workflows = {r.pipeline_file: r for r in runs}
    for f in all_files:
        entity: dict[str, Any] = {"@id": f, "@type": "File", "name": Path(f).name}
        fmt = _format(f)
        if fmt:
            entity["encodingFormat"] = fmt
        if f in files:
            entity["contentSize"] = str(int(files[f]))
        if f in workflows:
            run = workflows[f]
            entity["@type"] = ["File", "SoftwareSourceCode", "ComputationalWorkflow"]
            entity["name"] = run.pipeline_name
            entity["description"] = run.name
            entity["programmingLanguage"] = {"@id": LANGUAGE_ID}
            entity["dateCreated"] = created
            if run.analyst:
                entity["creator"] = {"@id": person_id(run.analyst)}
        graph.append(entity)
    graph.append(
        {
            "@id": LANGUAGE_ID,
            "@type": "ComputerLanguage",
            "name": "napari-fbias pipeline",
            "alternateName": "fbias_pipeline",
            "version": "1",
            "identifier": {"@id": f"#napari-fbias-{__version__}"},
        }
    )
    graph.append(
        {
            "@id": f"#napari-fbias-{__version__}",
            "@type": "SoftwareApplication",
            "name": "napari-fbias",
            "version": __version__,
        }
    )
    people = list(dict.fromkeys([*session.analysts, *(r.analyst for r in runs if r.analyst)]))
    images = {i.name: i for i in session.images}
    used_images: list[str] = []
    for r in runs:
        agents = list(dict.fromkeys([r.analyst, *session.analysts] if r.analyst else people))
        objects = [image_id(n, images[n].source if n in images else "", included) for n in r.images]
        used_images += [n for n in r.images if n not in used_images]
        graph.append(
            {
                "@id": f"#run-{_slug(r.key)}",
                "@type": "CreateAction",
                "name": f"{r.name}, run during the open-desk session",
                "instrument": {"@id": r.pipeline_file},
                "agent": [{"@id": person_id(a)} for a in agents if a],
                "object": [{"@id": o} for o in objects],
                "result": [{"@id": report_file}] if report_file in all_files else [],
                "startTime": session.created,
                "endTime": session.updated or session.created,
            }
        )
    for name in people:
        graph.append({"@id": person_id(name), "@type": "Person", "name": name})
    for n in used_images:
        ref = images.get(n)
        iid = image_id(n, ref.source if ref else "", included)
        if iid in all_files:
            entity = next(e for e in graph if e["@id"] == iid)
            entity["name"] = n
        else:
            entity = {"@id": iid, "@type": "File", "name": n}
            graph.append(entity)
        if ref is not None:
            if ref.source:
                entity["identifier"] = ref.source
            if ref.checksum:
                entity["description"] = f"pixel checksum {ref.checksum}"
    return {"@context": CONTEXT, "@graph": graph}


def check_crate(doc: Mapping[str, Any]) -> list[str]:
    """Return what is wrong with a crate document (empty when it is well formed).

    Checks the RO-Crate 1.1 essentials and the Workflow Run Crate shape: the
    metadata descriptor, the root dataset, unique ids, that every local id
    referenced is described, a main ``ComputationalWorkflow`` and
    ``CreateAction`` runs with an instrument, agents and times.
    """
    problems: list[str] = []
    if doc.get("@context") != CONTEXT:
        problems.append(f"@context is not {CONTEXT}")
    graph = doc.get("@graph")
    if not isinstance(graph, list):
        return [*problems, "@graph is not a list"]
    by_id: dict[str, Mapping[str, Any]] = {}
    for e in graph:
        eid = e.get("@id") if isinstance(e, Mapping) else None
        if not isinstance(eid, str) or "@type" not in e:
            problems.append(f"entity without @id or @type: {e!r}"[:200])
            continue
        if eid in by_id:
            problems.append(f"duplicate @id {eid!r}")
        by_id[eid] = e
    meta = by_id.get(CRATE_FILE, {})
    if meta.get("about") != {"@id": "./"} or meta.get("conformsTo") != {"@id": RO_CRATE_SPEC}:
        problems.append("the metadata descriptor does not describe ./ as RO-Crate 1.1")
    root = by_id.get("./")
    if root is None or root.get("@type") != "Dataset":
        return [*problems, "no root Dataset ./"]
    for key in ("name", "description", "datePublished"):
        if not root.get(key):
            problems.append(f"root dataset has no {key}")

    def refs(value: Any) -> list[str]:
        if isinstance(value, Mapping) and set(value) == {"@id"}:
            return [value["@id"]]
        if isinstance(value, list):
            return [r for v in value for r in refs(v)]
        return []

    for e in graph:
        for k, v in e.items():
            for r in refs(v):
                if not r.startswith(("http://", "https://", "s3://")) and r not in by_id:
                    problems.append(f"{e['@id']!r}.{k} refers to {r!r}, which is not described")
    main = by_id.get(refs(root.get("mainEntity"))[0]) if refs(root.get("mainEntity")) else None
    types = main.get("@type") if main else None
    if not (isinstance(types, list) and "ComputationalWorkflow" in types and "File" in types):
        problems.append("mainEntity is not a File + ComputationalWorkflow")
    actions = [e for e in graph if e.get("@type") == "CreateAction"]
    if not actions:
        problems.append("no CreateAction (run) described")
    for a in actions:
        inst = refs(a.get("instrument"))
        if not inst or "ComputationalWorkflow" not in by_id.get(inst[0], {}).get("@type", []):
            problems.append(f"{a['@id']}: instrument is not a ComputationalWorkflow")
        for key in ("startTime", "endTime"):
            if not isinstance(a.get(key), str) or not a[key]:
                problems.append(f"{a['@id']}: no {key}")
        for ag in refs(a.get("agent")):
            if by_id.get(ag, {}).get("@type") != "Person":
                problems.append(f"{a['@id']}: agent {ag!r} is not a Person")
    return problems
