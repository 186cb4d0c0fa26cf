"""``fbias demo``: a whole open-desk session on the bundled sample data, headless.

What it does, in order (about a minute on a laptop):

1. opens the 2D nuclei sample as the napari reader does, and starts a
   session (a user with a question, two analysts);
2. approach A, the classical nuclei recipe and a measurement; approach B,
   threshold + watershed; approach C, spot tracking on the time-lapse
   sample. Each step is checked and made ready as the napari workspace does
   (:func:`napari_fbias.session.checks.prepare_step`), computed with the
   single-step function the widgets run
   (:func:`napari_fbias.pipeline.apply.compute_step`) and recorded as the
   widgets record it;
3. notes, results (with accuracy against the samples' ground truth), the
   solution proposed, issues and next steps; saves the session;
4. exports the delivery bundle (approaches A and C);
5. reruns the exported pipelines with the command line (``fbias run``, in a
   child process as a user types it) on the samples, and the exported script
   for approach A, and checks that the results are identical, bit for bit, to
   the session's; runs approach A on the batch sample folder and checks each
   image against a direct run;
6. prints where everything is. Exit status 1 when a check fails.

Nothing here imports Qt or napari.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DemoError", "DemoReport", "HeadlessLayers", "run_demo"]

#: File marking a folder as made by ``fbias demo`` (so a rerun may replace it).
MARKER = ".fbias-demo"
DEFAULT_FOLDER = "fbias-demo"
Echo = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo cannot start (e.g. its folder holds something else)."""


@dataclass
class DemoReport:
    """What the demo did and found.

    Attributes
    ----------
    folder : Path
        Everything the demo wrote.
    checks : list of tuple of (str, str or None)
        Each check and its problem (None when it passed).
    seconds : float
        How long it took.
    bundle : Path or None
        The delivery bundle.
    """

    folder: Path
    checks: list[tuple[str, str | None]] = field(default_factory=list)
    seconds: float = 0.0
    bundle: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(problem is None for _, problem in self.checks)


class HeadlessLayers:
    """A stand-in for napari's layer list, to record a session without a viewer.

    Holds layer name -> pipeline :class:`~napari_fbias.pipeline.values.Value`;
    :meth:`run` prepares a step as the napari workspace does
    (:func:`~napari_fbias.session.checks.prepare_step`), computes it with the
    same single-step function (:func:`~napari_fbias.pipeline.apply.compute_step`)
    and records it with the same recorder call, so the session's layers are
    what a viewer would show.

    Parameters
    ----------
    recorder : SessionRecorder
        The running session.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.values: dict[str, Any] = {}

    def add_image(self, image: Any, checksum: str | None = None) -> str:
        """Record an opened image and add it as a layer (named like the image); return the name."""
        from napari_fbias.pipeline.values import Value

        name = self.recorder.add_image(image, checksum=checksum)
        axes = "".join(image.axes)
        self.values[name] = Value(
            np.asarray(image.data), "image", axes, tuple(float(s) for s in image.scale), None
        )
        return name

    def run(
        self, op: str, inputs: Mapping[str, str], params: Mapping[str, Any], output: str
    ) -> Any:
        """Apply ``op`` as a widget does (same checks, same single-step function), record it."""
        from napari_fbias.pipeline.apply import compute_step
        from napari_fbias.session.checks import prepare_step

        spec, step, args, clean = prepare_step(
            op, {name: self.values[layer] for name, layer in inputs.items()}, params
        )
        value = compute_step(spec, step, args)
        self.recorder.record_step(op, clean, dict(inputs), output, chosen=value.chosen)
        self.values[output] = value
        return value


def _prepare(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise DemoError(f"{folder} exists and is not a folder; choose another with -o")
        if any(folder.iterdir()):
            if not (folder / MARKER).is_file():
                raise DemoError(
                    f"{folder} is not empty and was not made by `fbias demo`; "
                    "choose another folder with -o (nothing was changed)"
                )
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `fbias demo`; safe to delete\n", encoding="utf-8")


def _f1(gt: np.ndarray, labels: np.ndarray) -> float:
    from napari_fbias.ops.metrics import match_stats

    return round(float(match_stats(gt, labels, (0.5,))[0].f1), 3)


def _session(folder: Path, echo: Echo) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Record the session with two analysts in two processes; return (recorder, their reports).

    The session lives in the shared space ``folder / "space"``; Marie and Jean
    each join it from their own process (:mod:`napari_fbias.demo_analyst`) and
    record at the same time; this process, the facility's coordinator, then
    writes the conclusion. Reports are by approach title.
    """
    import json
    import os

    from napari_fbias.session import SessionRecorder
    from napari_fbias.session.space import Space

    outbox = folder / "outbox"
    space = Space(str(folder / "space"), outbox_root=str(outbox))
    rec = SessionRecorder.start(
        "Nuclei per field (demo)",
        user_name="Dr. Sam Example",
        user_lab="Example Cell Biology Lab",
        question="How many nuclei are there per field, and how big are they? "
        "And can we follow the spots in the time-lapse?",
        analysts=["Marie", "Jean"],
        space=space,
    )
    if not rec.flush(30):
        raise DemoError(f"cannot write the session space: {rec.sync_status}")
    echo(f"  session space {space.location}; session link {rec.link}")
    env = {**os.environ, "FBIAS_OUTBOX": str(outbox)}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "napari_fbias.demo_analyst", rec.link, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("Marie", "Jean")
    }
    echo("  Marie and Jean record from two separate processes, at the same time")
    reports: dict[str, dict[str, Any]] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise DemoError(f"analyst {name}'s process failed: {err.strip()[-800:]}")
        for line in out.splitlines():
            if line.startswith("approach "):
                found = json.loads(line[len("approach ") :])
                reports[found["title"]] = found
    deadline = time.monotonic() + 60
    while len(rec.session.approaches) < len(reports) and time.monotonic() < deadline:
        rec.sync()
        time.sleep(0.1)
    by_title = {a.title: a for a in rec.session.approaches}
    for title, found in reports.items():
        a = by_title[title]
        what = ", ".join(f"{k} {v}" for k, v in found.items() if k in _FOUND)
        echo(f"  approach {a.key} ({a.analyst}, {title}): {what} [client {a.client}]")
    rec.set_solution(
        "Use approach A, the classical nuclei recipe, and measure the nuclei with it; "
        "track spots with approach C.",
        approach=by_title["classical nuclei recipe"].key,
    )
    rec.add_issue("A few nuclei at the image border are cut; image a slightly larger field.")
    rec.add_issue("Images at a higher resolution would make the outlines more precise.")
    rec.add_next_step("Run pipeline_A on the whole data set with `fbias run`.")
    rec.add_next_step("Send ten more fields with hand-drawn outlines to confirm the accuracy.")
    rec.save()
    rec.flush(30)
    rec.close()
    return rec, reports


#: What an analyst's report line shows, in this order.
_FOUND = ("objects", "f1", "tracks", "true_tracks")


def _recompute_here(rec: Any, reports: Mapping[str, Any], report: DemoReport, echo: Echo) -> Any:
    """Show each analyst's approach here by recomputing it; check it is bit for bit theirs."""
    from napari_fbias.session import load_session
    from napari_fbias.session.recompute import recompute_approach, value_digest

    session = load_session(rec.link)
    values: dict[str, Any] = {}
    for a in session.approaches:
        got = recompute_approach(session, a.key)
        values.update(got)
        theirs = reports.get(a.title, {}).get("digests", {})
        differ = [sid for sid, v in got.items() if value_digest(v) != theirs.get(sid)]
        what = f"approach {a.key} recomputed here is bit for bit {a.analyst}'s result"
        report.checks.append((what, f"steps {differ} differ" if differ else None))
        echo(f"  {_mark(report.checks[-1])} {what}")
    return session, values


def run_demo(outdir: str | Path | None = None, *, echo: Echo = print) -> DemoReport:
    """Run the scripted open-desk session, export it, rerun it and check the results.

    Parameters
    ----------
    outdir : path, optional
        Folder for everything the demo writes (default ``./fbias-demo``). It
        must be empty, absent, or a folder of an earlier demo (replaced).
    echo : callable
        Where progress lines go (default ``print``).

    Returns
    -------
    DemoReport
        With ``ok`` False when a check failed.

    Raises
    ------
    DemoError
        When the folder cannot be used.
    """
    from napari_fbias.io.samples import sample_path
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.session.export import export_bundle
    from napari_fbias.session.export.verify import compare_folder

    t0 = time.perf_counter()
    folder = Path(outdir or DEFAULT_FOLDER).expanduser().absolute()
    _prepare(folder)
    report = DemoReport(folder)
    nuclei_src = sample_path("nuclei_2d")
    movie_src = sample_path("spots_timelapse")

    echo("1. Recording an open-desk session on the sample data: two analysts, two processes")
    rec, reports = _session(folder, echo)
    echo("   Showing each analyst's approach here (recomputing their recorded steps)")
    session, values = _recompute_here(rec, reports, report, echo)
    _check_listing(folder / "space", session, report, echo)

    echo("2. Exporting the delivery bundle (approaches A and C)")
    result = export_bundle(rec.link, folder / "bundle", approaches=["A", "C"])
    report.bundle = result.folder
    for note in result.notes:
        echo(f"  note: {note}")
    echo(f"  {len(result.files)} files in {result.folder}")

    echo("3. Rerunning the pipelines with `fbias run` and comparing with the session")
    expected = {key: _expected(session, key, values) for key in ("A", "C")}
    sources = {"A": nuclei_src, "C": movie_src}
    for key, exp in expected.items():
        pipe = result.pipelines[key]
        out = folder / "rerun" / key
        proc = _fbias("run", str(pipe), str(sources[key]), "-o", str(out))
        what = f"fbias run {pipe.name} reproduces approach {key}"
        if proc.returncode != 0:
            report.checks.append((what, _failure("fbias run", proc)))
        else:
            problems = compare_folder(_outputs(pipe, exp), out / _stem(sources[key]))
            report.checks.append((what, "; ".join(problems) or None))
        echo(f"  {_mark(report.checks[-1])} {what}")

    echo("4. Running the exported script for approach A")
    script = result.folder / "run_pipeline_A.py"
    out = folder / "script"
    proc = subprocess.run(
        [sys.executable, str(script), str(nuclei_src), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    what = f"python {script.name} reproduces approach A"
    if proc.returncode != 0:
        report.checks.append((what, _failure(script.name, proc)))
    else:
        problems = compare_folder(
            _outputs(result.pipelines["A"], expected["A"]), out / _stem(nuclei_src)
        )
        report.checks.append((what, "; ".join(problems) or None))
    echo(f"  {_mark(report.checks[-1])} {what}")

    echo("5. Batch: approach A on every image of the nuclei_batch sample folder")
    batch_dir = sample_path("nuclei_batch")
    out = folder / "batch"
    proc = _fbias("run", str(result.pipelines["A"]), str(batch_dir), "-o", str(out))
    pipeline = Pipeline.load(result.pipelines["A"])
    what = "fbias run on the batch folder matches direct runs, image by image"
    problems = [] if proc.returncode == 0 else [_failure("fbias run", proc)]
    for image in sorted(batch_dir.glob("*.ome.tif")):
        direct = pipeline.run(str(image))
        problems += compare_folder({k: direct[k] for k in direct}, out / _stem(image))
        labels = direct["A_nuclei"]
        echo(f"  {_stem(image)}: {int(np.count_nonzero(np.unique(labels)))} nuclei")
    report.checks.append((what, "; ".join(problems) or None))
    echo(f"  {_mark(report.checks[-1])} {what}")

    report.seconds = time.perf_counter() - t0
    echo("")
    echo(_summary(report, rec.link))
    return report


def _expected(session: Any, key: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Return pipeline output name -> the result recomputed here, for approach ``key``."""
    from napari_fbias.session.to_pipeline import approach_to_pipeline_dict

    outputs = approach_to_pipeline_dict(session, key)["outputs"]
    return {name: values[spec["from"]] for name, spec in outputs.items()}


def _check_listing(space: Path, session: Any, report: DemoReport, echo: Echo) -> None:
    """Check that `fbias sessions --space SPACE --json` finds the session, both analysts in it."""
    import json

    proc = _fbias("sessions", "--space", str(space), "--json")
    what = "fbias sessions --space lists the session with both analysts' approaches"
    problem = None
    if proc.returncode != 0:
        problem = _failure("fbias sessions", proc)
    else:
        listed = {s.get("id"): s for s in json.loads(proc.stdout)}
        found = listed.get(session.id)
        analysts = sorted({a["analyst"] for a in (found or {}).get("approaches", [])})
        if analysts != ["Jean", "Marie"]:
            problem = f"listed analysts {analysts}"
    report.checks.append((what, problem))
    echo(f"  {_mark(report.checks[-1])} {what}")


def _fbias(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``fbias`` command line in a child process, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "napari_fbias.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _failure(what: str, proc: subprocess.CompletedProcess[str]) -> str:
    """Describe a child process that failed: its exit status and the end of its errors."""
    return f"{what} exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"


def _outputs(pipeline_file: Path, by_output: Mapping[str, Any]) -> dict[str, Any]:
    """Check that the names match the pipeline's outputs; return them."""
    from napari_fbias.pipeline import Pipeline

    names = set(Pipeline.load(pipeline_file).outputs)
    missing = set(by_output) - names
    if missing:
        raise DemoError(f"{pipeline_file.name} has no output(s) {sorted(missing)}")
    return dict(by_output)


def _stem(path: Path) -> str:
    from napari_fbias.pipeline.inputs import stem_of

    return stem_of(str(path))


def _mark(check: tuple[str, str | None]) -> str:
    return "ok  " if check[1] is None else "FAIL"


def _summary(report: DemoReport, session_folder: Path | str) -> str:
    f = report.folder
    lines = [
        f"Demo finished in {report.seconds:.0f} s: "
        + ("every check passed." if report.ok else "SOME CHECKS FAILED."),
    ]
    for what, problem in report.checks:
        if problem is not None:
            lines.append(f"  FAIL {what}: {problem}")
    lines += [
        "",
        f"Everything is in {f}:",
        f"  space/          the shared session space: {session_folder}",
        "                  (one journal per analyst's process in journals/, session.yaml)",
        "  outbox/         what each analyst's process recorded before sending it",
        "  bundle/         the delivery bundle: README.md, report.html, pipeline_A.fbias.yaml,",
        "                  run_pipeline_A.py, pipeline_A.ipynb, ... (open bundle/report.html)",
        "  rerun/          results of `fbias run` with the bundle's pipelines",
        "  script/         results of the exported script",
        "  batch/          results of approach A on the nuclei_batch sample folder",
        "",
        "Try it yourself:",
        f"  fbias run {f / 'bundle' / 'pipeline_A.fbias.yaml'} YOUR_IMAGES -o results",
    ]
    return "\n".join(lines)
