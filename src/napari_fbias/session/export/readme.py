"""The ``README.md`` of a delivery bundle: what the pipeline does and how to rerun it.

Written for the biologist who receives the bundle: the steps in words (from
the operations' summaries and the settings used), which images it was made
for, and the exact commands to install napari-fbias (the wheel in the
bundle, or the pinned version; :func:`install_lines`) and to rerun it from
the command line, a script, a notebook or napari. Every install command
given works as written on the bundle as received; where none can (no wheel
and no published version), the README says so and what is missing. Text from
the session is made inert for Markdown/HTML (no raw HTML, no line breaks
where they would change the structure).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from napari_fbias.session.export.codegen import clean_text
from napari_fbias.session.export.wheel import PackageSource
from napari_fbias.session.model import Session


@dataclass(frozen=True)
class ExportedApproach:
    """Files of one exported approach in the bundle."""

    key: str
    title: str
    analyst: str
    pipeline: Any
    pipeline_file: str
    script_file: str
    notebook_file: str
    images: tuple[str, ...]


def md(text: Any) -> str:
    """Return text safe inside Markdown prose: one line, HTML escaped, markup characters escaped."""
    out = html.escape(clean_text(text), quote=False)
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", out)


def code(text: Any) -> str:
    """Return text as a Markdown code span (one line, no backticks inside)."""
    return "`" + clean_text(text).replace("`", "'") + "`"


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def steps_in_words(pipeline: Any) -> list[str]:
    """One Markdown list item per step: what it does, on what, with which settings."""
    from napari_fbias.ops.registry import get_op
    from napari_fbias.pipeline.validate import topological_order

    lines = []
    for i, step in enumerate(topological_order(pipeline), start=1):
        spec = get_op(step.op)
        reads = ", ".join(f"{md(k)} from {code(v)}" for k, v in step.inputs.items())
        settings = ", ".join(f"{code(k)} = {md(_value(v))}" for k, v in step.params.items())
        text = f"{i}. **{md(spec.title)}** ({code(step.op)}, step {code(step.id)})"
        if spec.summary:
            text += f": {md(spec.summary)}"
        text += f" Reads {reads}." if reads else ""
        text += f" Settings: {settings}." if settings else ""
        lines.append(text)
    return lines


def _qt_line() -> str:
    from napari_fbias.session.export.envlock import extra_requirements

    reqs = extra_requirements("qt")
    if not reqs:
        return "For napari, also install a Qt binding: `pip install PyQt6`."
    quoted = " ".join(f'"{r}"' for r in reqs)
    return f"For napari, also install a Qt binding: `pip install {quoted}`."


def install_lines(package: PackageSource) -> list[str]:
    """Return the README's install section for how napari-fbias goes with the bundle."""
    from napari_fbias.session.export.envlock import made_with

    venv = [
        "python -m venv fbias-env",
        "source fbias-env/bin/activate        # Windows: fbias-env\\Scripts\\activate",
    ]
    ver = package.version
    out = ["## Install", ""]
    if package.wheel is not None:
        wheel = package.wheel.bundle_path
        out += [
            f"This bundle holds napari-fbias {md(ver)} itself, as `{wheel}`: it installs as "
            "received, with nothing to download but the packages napari-fbias needs. In a "
            "terminal, **in this folder** (the one holding this README), with Python 3.10 or "
            "newer:",
            "",
            "```bash",
            *venv,
            "pip install -r requirements.lock.txt",
            "```",
            "",
            f"`requirements.lock.txt` installs napari-fbias from `{wheel}` (pip checks its "
            "SHA-256, written in the file, first) and the exact versions of everything it "
            f"needs, as they were when this bundle was made ({md(made_with())}). On another "
            "Python version or operating system, where some of those exact versions may not "
            "exist, install the wheel alone and let pip choose the versions it needs:",
            "",
            "```bash",
            f"pip install {wheel}",
            "```",
            "",
        ]
    elif package.from_index:
        out += [
            f"napari-fbias {md(ver)} was installed from a package index (PyPI) when this bundle "
            "was made. In a terminal, in this folder, with Python 3.10 or newer:",
            "",
            "```bash",
            *venv,
            "pip install -r requirements.lock.txt",
            "```",
            "",
            "`requirements.lock.txt` pins napari-fbias and everything it needs to the exact "
            f"versions used here ({md(made_with())}). On another Python version or operating "
            f'system, install `pip install "napari-fbias=={ver}"` and let pip choose the versions '
            "of the others.",
            "",
        ]
    else:
        name = package.wheel_name
        out += [
            f"**This bundle does not contain napari-fbias {md(ver)} itself**: {md(package.why)}. "
            f"Ask whoever sent you this bundle for the file `{name}` (or build it from the same "
            "napari-fbias sources with `python -m build --wheel`), put it in a folder `wheels` "
            "next to this README, then, in a terminal in this folder, with Python 3.10 or newer:",
            "",
            "```bash",
            *venv,
            f"pip install wheels/{name} -r requirements.lock.txt",
            "```",
            "",
            "`requirements.lock.txt` pins everything napari-fbias needs to the exact versions "
            f"used here ({md(made_with())}).",
            "",
        ]
    return [*out, _qt_line(), ""]


def readme_text(
    session: Session,
    approaches: Sequence[ExportedApproach],
    *,
    version: str,
    package: PackageSource | None = None,
    images: Mapping[str, Any],
    include_images: Mapping[str, str] | None = None,
    created: str = "",
) -> str:
    """Return the README of a bundle.

    Parameters
    ----------
    session : Session
        The session (credentials removed).
    approaches : sequence of ExportedApproach
        The exported approaches (the first is the one proposed).
    version : str
        The napari-fbias version that made the bundle.
    package : PackageSource, optional
        How napari-fbias goes with the bundle (its wheel, or pinned from an
        index, or neither); default: neither, for lack of a reason.
    images : mapping of str to ImageRef
        Session images by name.
    include_images : mapping of str to str, optional
        Image name -> its copy in the bundle.
    created : str
        When the bundle was made.
    """
    title = session.title or "Open-desk session"
    out = [f"# {md(title)}: analysis pipeline", ""]
    who = ", ".join(x for x in (session.user.name, session.user.lab) if x)
    intro = "This bundle was made at an open-desk image analysis session"
    if session.created:
        intro += f" on {md(session.created[:10])}"
    if who:
        intro += f" for {md(who)}"
    if session.analysts:
        intro += f" with {md(', '.join(session.analysts))}"
    out += [intro + ".", ""]
    if session.question:
        out += [f"**Question:** {md(session.question)}", ""]
    if session.solution is not None and session.solution.text:
        out += [f"**Solution proposed:** {md(session.solution.text)}", ""]
    out += [
        "Open `report.html` in a web browser for the whole story: every approach tried, "
        "with figures, the issues raised and the next steps.",
        "",
    ]
    for a in approaches:
        head = f"Approach {md(a.key)}" + (f": {md(a.title)}" if a.title else "")
        out += [f"## What the pipeline does ({head})", ""]
        if a.analyst:
            out += [f"Made by {md(a.analyst)}. Pipeline file: `{a.pipeline_file}`.", ""]
        out += steps_in_words(a.pipeline)
        out += [""]
        names = ", ".join(code(k) for k in a.pipeline.outputs)
        out += [f"Results: {names}.", ""]
        if len(a.pipeline.inputs) > 1:
            first, *others = list(a.pipeline.inputs)
            opts = " ".join(f"--{o} PATH" for o in others)
            out += [
                f"This pipeline reads {len(a.pipeline.inputs)} images at once "
                f"({', '.join(code(n) for n in a.pipeline.inputs)}): `fbias run` (one image per "
                f"run) cannot run it; use the script (`python {a.script_file} INPUT {opts}`), "
                "the notebook or napari.",
                "",
            ]
        out += ["It was made for these images:", ""]
        for n in a.images:
            ref = images.get(n)
            if ref is None:
                continue
            shape = " x ".join(str(s) for s in ref.shape)
            line = f"- {code(n)}: {md(ref.kind)}, axes {md(ref.axes)}, {md(shape)}"
            line += f", from {code(ref.source)}" if ref.source else ""
            if include_images and n in include_images:
                line += f" (copy in `{include_images[n]}`)"
            out.append(line)
        out += [
            "",
            "Images like these (same axes and channels, similar size and contrast) are what it "
            "expects; check the results on a few of yours before running it on everything.",
            "",
        ]
    first = approaches[0]
    pipeline_file, script_file, notebook_file = (
        first.pipeline_file,
        first.script_file,
        first.notebook_file,
    )
    if package is None:
        package = PackageSource(version, why="the export did not say where it comes from")
    out += install_lines(package)
    out += [
        "## Rerun it",
        "",
        "Each way below gives the same results, bit for bit, on the same image.",
        "",
        "**Command line**, on one image, a folder of images or a pattern; results go to "
        "`results/<image name>/`:",
        "",
        "```bash",
        f"fbias run {pipeline_file} INPUT... -o results",
        f"fbias run {pipeline_file} my_images/ -o results --workers 4   # 4 images at a time",
        "```",
        "",
        "**Python script** (the same steps written out, one call per step, every setting "
        "visible; edit it to experiment):",
        "",
        "```bash",
        f"python {script_file} INPUT... -o results",
        "```",
        "",
        f"**Jupyter notebook**: open `{notebook_file}` (`jupyter lab {notebook_file}`), set "
        "`INPUT` in the first code cell to your image and run all cells; it shows a figure "
        "after each step.",
        "",
        "**napari**: open your image, then *Plugins > napari-fbias open desk > Run pipeline*, "
        "choose "
        f"`{pipeline_file}` and press Run.",
        "",
        "On a cluster: see `fbias run --help` (`--scheduler`, `--cluster slurm`).",
        "",
        "## Files",
        "",
        "| File | What it is |",
        "| --- | --- |",
    ]
    for a in approaches:
        out += [
            f"| `{a.pipeline_file}` | the pipeline of approach {md(a.key)} "
            "(`fbias validate` checks it) |",
            f"| `{a.script_file}` | the same as a Python script |",
            f"| `{a.notebook_file}` | the same as a notebook, with figures |",
        ]
    out += [
        "| `report.html` | the session report, with figures |",
        "| `session.yaml` | the session record (who, what, when; no images, no passwords) |",
        "| `requirements.lock.txt` | exact package versions used |",
        *(
            [f"| `{package.wheel.bundle_path}` | napari-fbias {md(version)} itself (a wheel) |"]
            if package.wheel is not None
            else []
        ),
        "| `ro-crate-metadata.json` | machine-readable description (RO-Crate) |",
        "| `checksums.sha256` | checksums of these files and of the input images' pixels |",
    ]
    if include_images:
        out.append("| `images/` | copies of the input images |")
    out += [
        "",
        "Check that nothing changed on the way: `sha256sum -c checksums.sha256` (the lines "
        "starting with `#` list the pixel checksums of the input images, which `fbias run` "
        "records in each result's `run.json`).",
        "",
        f"Made with napari-fbias {md(version)}" + (f" on {md(created)}." if created else "."),
        "",
    ]
    return "\n".join(out)
