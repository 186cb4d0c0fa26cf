"""``fbias demo``: a whole open-desk session on the bundled sample data, headless.

What it does, in order (about a minute on a laptop):

1. opens the 2D nuclei sample as the napari reader does, and starts a
   session (a user with a question, two analysts);
2. approach A, the classical nuclei recipe and a measurement; approach B,
   threshold + watershed; approach C, spot tracking on the time-lapse
   sample. Each result is computed with the runner's single-step function
   (:func:`napari_fbias.pipeline.runner.apply_step`, the function the napari
   widgets run) and recorded as the widgets record it;
3. notes, results (with accuracy against the samples' ground truth), the
   solution proposed, issues and next steps; saves the session;
4. exports the delivery bundle (approaches A and C);
5. reruns the exported pipelines with the CLI (``fbias run``) on the samples,
   and the exported script for approach A, and checks that the results are
   identical, bit for bit, to the session's; runs approach A on the batch
   sample folder and checks each image against a direct run;
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
    :meth:`run` computes a step as the napari workspace does (the runner's
    single-step function on in-memory data) and records it with the same
    recorder call, so the session's layers are what a viewer would show.

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
        """Apply ``op`` as a widget does (runner's single-step function), then record it."""
        from napari_fbias.ops.registry import get_op
        from napari_fbias.pipeline.model import Step
        from napari_fbias.pipeline.runner import compute_step
        from napari_fbias.session.checks import check_params

        spec = get_op(op)
        clean = check_params(spec, params)
        args = [self.values[inputs[d.name]] if d.name in inputs else None for d in spec.inputs]
        value = compute_step(spec, Step("run", op, {}, clean), args)
        self.recorder.record_step(op, clean, dict(inputs), output)
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


def _session(folder: Path, layers_of: list[HeadlessLayers], echo: Echo) -> Any:
    """Record the scripted session; return the recorder (closed)."""
    from napari_fbias.io.open import open_image
    from napari_fbias.io.samples import load_nuclei_2d, load_spots_timelapse, sample_path
    from napari_fbias.pipeline.provenance import array_sha256
    from napari_fbias.session import SessionRecorder

    nuclei = open_image(sample_path("nuclei_2d"))
    movie = open_image(sample_path("spots_timelapse"))
    _, truth = load_nuclei_2d()
    _, truth_tracks = load_spots_timelapse()
    rec = SessionRecorder.start(
        "Nuclei per field (demo)",
        user_name="Dr. Sam Example",
        user_lab="Example Cell Biology Lab",
        question="How many nuclei are there per field, and how big are they? "
        "And can we follow the spots in the time-lapse?",
        analysts=["Marie", "Jean"],
        folder=folder,
    )
    layers = HeadlessLayers(rec)
    layers_of.append(layers)
    img = layers.add_image(nuclei, "sha256:" + array_sha256(nuclei.data))
    echo(f"  opened {nuclei.name} ({'x'.join(map(str, nuclei.shape))}, {nuclei.source})")

    rec.add_approach("classical nuclei recipe", "Marie")
    lab = layers.run("segment.nuclei", {"image": img}, {}, "A: nuclei")
    table = layers.run(
        "measure.regionprops", {"labels": "A: nuclei", "image": img}, {}, "A: measurements"
    )
    n_a, f1_a = int(lab.data.max()), _f1(truth, lab.data)
    area = float(np.median(table.data["area_physical"]))
    rec.set_result({"objects": n_a, "f1_vs_ground_truth": f1_a, "median_area_um2": round(area, 1)})
    rec.set_notes(
        "Default nuclei recipe: smoothing, Otsu threshold, watershed split of touching "
        "nuclei, edge refinement. Looks right on every nucleus we checked."
    )
    echo(f"  approach A (Marie, classical recipe): {n_a} nuclei, F1 {f1_a} vs ground truth")

    rec.add_approach("threshold + watershed", "Jean")
    layers.run("preprocess.gaussian", {"image": img}, {"sigma": 1.0}, "B: smoothed")
    layers.run("segment.threshold", {"image": "B: smoothed"}, {"min_size": 20}, "B: mask")
    lab_b = layers.run(
        "segment.watershed_split",
        {"labels": "B: mask", "image": "B: smoothed"},
        {"min_distance": 4},
        "B: nuclei",
    )
    n_b, f1_b = int(np.count_nonzero(np.unique(lab_b.data))), _f1(truth, lab_b.data)
    rec.set_result({"objects": n_b, "f1_vs_ground_truth": f1_b})
    rec.set_notes("Simpler, but the outlines are looser and some nuclei are cut in two.")
    echo(f"  approach B (Jean, threshold + watershed): {n_b} nuclei, F1 {f1_b}")

    mov = layers.add_image(movie, "sha256:" + array_sha256(movie.data))
    rec.add_approach("spot tracking", "Jean")
    tracks = layers.run("track.track_spots", {"image": mov}, {}, "C: tracks")
    n_c = int(tracks.data["track_id"].nunique())
    n_true = int(truth_tracks["track_id"].nunique())
    rec.set_result({"tracks": n_c, "true_tracks": n_true})
    rec.set_notes("trackpy with the defaults; blinking spots are bridged (memory 2 frames).")
    echo(f"  approach C (Jean, spot tracking): {n_c} tracks ({n_true} in the ground truth)")

    rec.set_solution(
        "Use approach A, the classical nuclei recipe, and measure the nuclei with it; "
        "track spots with approach C.",
        approach="A",
    )
    rec.add_issue("A few nuclei at the image border are cut; image a slightly larger field.")
    rec.add_issue("Images at a higher resolution would make the outlines more precise.")
    rec.add_next_step("Run pipeline_A on the whole data set with `fbias run`.")
    rec.add_next_step("Send ten more fields with hand-drawn outlines to confirm the accuracy.")
    rec.save()
    rec.close()
    return rec


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
    from napari_fbias.cli import main as cli_main
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

    echo("1. Recording an open-desk session on the sample data")
    holder: list[HeadlessLayers] = []
    rec = _session(folder / "session", holder, echo)
    layers = holder[0]

    echo("2. Exporting the delivery bundle (approaches A and C)")
    result = export_bundle(rec.folder, folder / "bundle", approaches=["A", "C"])
    report.bundle = result.folder
    for note in result.notes:
        echo(f"  note: {note}")
    echo(f"  {len(result.files)} files in {result.folder}")

    echo("3. Rerunning the pipelines with `fbias run` and comparing with the session")
    expected = {
        "A": {
            "A_nuclei": layers.values["A: nuclei"],
            "A_measurements": layers.values["A: measurements"],
        },
        "C": {"C_tracks": layers.values["C: tracks"]},
    }
    sources = {"A": nuclei_src, "C": movie_src}
    for key, exp in expected.items():
        pipe = result.pipelines[key]
        out = folder / "rerun" / key
        code = cli_main(["run", str(pipe), str(sources[key]), "-o", str(out)])
        what = f"fbias run {pipe.name} reproduces approach {key}"
        if code != 0:
            report.checks.append((what, f"fbias run exited with {code}"))
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
        report.checks.append((what, f"exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"))
    else:
        problems = compare_folder(
            _outputs(result.pipelines["A"], expected["A"]), out / _stem(nuclei_src)
        )
        report.checks.append((what, "; ".join(problems) or None))
    echo(f"  {_mark(report.checks[-1])} {what}")

    echo("5. Batch: approach A on every image of the nuclei_batch sample folder")
    batch_dir = sample_path("nuclei_batch")
    out = folder / "batch"
    code = cli_main(["run", str(result.pipelines["A"]), str(batch_dir), "-o", str(out)])
    pipeline = Pipeline.load(result.pipelines["A"])
    what = "fbias run on the batch folder matches direct runs, image by image"
    problems = [] if code == 0 else [f"fbias run exited with {code}"]
    for image in sorted(batch_dir.glob("*.ome.tif")):
        direct = pipeline.run(str(image))
        problems += compare_folder({k: direct[k] for k in direct}, out / _stem(image))
        labels = direct["A_nuclei"]
        echo(f"  {_stem(image)}: {int(np.count_nonzero(np.unique(labels)))} nuclei")
    report.checks.append((what, "; ".join(problems) or None))
    echo(f"  {_mark(report.checks[-1])} {what}")

    report.seconds = time.perf_counter() - t0
    echo("")
    echo(_summary(report, rec.folder))
    return report


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


def _summary(report: DemoReport, session_folder: Path) -> str:
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
        f"  session/        the session record (journal.jsonl, session.yaml): {session_folder}",
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
