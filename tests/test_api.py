"""The stable public API (`napari_fbias.api`) and bundles delivered by earlier versions.

Delivered scripts and notebooks import only `napari_fbias.api`; a bundle exported before that
module existed (`tests/data/bundle_fa98415`, see its README) still runs with the current code
and gives the results of `fbias run`, bit for bit.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_fbias import api
from napari_fbias.io.samples import sample_path
from napari_fbias.ops.registry import UnknownOpError, get_op
from napari_fbias.session.export.notebook import notebook_text
from napari_fbias.session.export.script import script_text
from napari_fbias.session.export.verify import compare_folder, read_result

OLD_BUNDLE = Path(__file__).parent / "data" / "bundle_fa98415"
OUTPUTS = ("A_nuclei", "A_measurements")


def _napari_fbias_imports(source: str) -> set[str]:
    """The napari_fbias modules a piece of Python source imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("napari_fbias"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("napari_fbias")}
    return found


def _code_cells(notebook: str) -> str:
    cells = json.loads(notebook)["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results of the pipeline file, run through the public API with the current code."""
    out = tmp_path_factory.mktemp("expected")
    image = sample_path("nuclei_2d")
    results = api.run_pipeline(OLD_BUNDLE / "pipeline.fbias.yaml", str(image), out)
    assert set(results) == set(OUTPUTS)
    return out / api.stem_of(str(image))


def test_the_public_names_are_there_and_do_what_they_say() -> None:
    for name in api.__all__:
        assert hasattr(api, name), name
    assert api.API_VERSION == 1
    assert api.operation("segment.nuclei") is get_op("segment.nuclei").func
    with pytest.raises(UnknownOpError, match="segment.nucle"):
        api.operation("segment.nucleus")
    pipeline = api.load_pipeline(OLD_BUNDLE / "pipeline.fbias.yaml")
    assert isinstance(pipeline, api.Pipeline)
    assert [s.op for s in pipeline.steps] == ["segment.nuclei", "measure.regionprops"]


def test_exported_code_imports_only_the_public_module() -> None:
    pipeline = api.load_pipeline(OLD_BUNDLE / "pipeline.fbias.yaml")
    script = script_text(pipeline)
    compile(script, "run_pipeline.py", "exec")
    assert _napari_fbias_imports(script) == {"napari_fbias.api"}
    assert "nuclei = operation('segment.nuclei')" in script
    notebook = _code_cells(notebook_text(pipeline))
    assert _napari_fbias_imports(notebook) == {"napari_fbias.api"}
    # the old bundle did import internal modules: that is what the tests below keep working
    old = _napari_fbias_imports((OLD_BUNDLE / "run_pipeline.py").read_text())
    assert "napari_fbias.session.export.runtime" in old


def test_a_script_delivered_by_an_earlier_version_gives_the_same_results(
    expected: Path, tmp_path: Path
) -> None:
    image = sample_path("nuclei_2d")
    run = subprocess.run(
        [sys.executable, str(OLD_BUNDLE / "run_pipeline.py"), str(image), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    got = tmp_path / api.stem_of(str(image))
    want = {name: read_result(expected, name) for name in OUTPUTS}
    assert compare_folder(want, got) == []
    np.testing.assert_array_equal(read_result(got, "A_nuclei"), want["A_nuclei"])


def test_a_notebook_delivered_by_an_earlier_version_gives_the_same_results(
    expected: Path, tmp_path: Path
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(OLD_BUNDLE / "pipeline.ipynb", as_version=4)
    params = nb.cells[1]
    assert "parameters" in params.metadata.get("tags", [])
    image = sample_path("nuclei_2d")
    params.source = f"INPUT = {str(image)!r}\nOUTDIR = {str(tmp_path)!r}\n"
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in errors if o.output_type == "error"]
    want = {name: read_result(expected, name) for name in OUTPUTS}
    assert compare_folder(want, tmp_path / api.stem_of(str(image))) == []
