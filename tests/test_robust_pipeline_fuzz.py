"""Hostile pipeline files: the loader runs no code, raises only PipelineError, in bounded time.

Three kinds of input go through ``Pipeline.loads`` / ``Pipeline.load`` /
``fbias validate``:

* a catalogue of adversarial documents (Python tags that would create a
  canary file, alias bombs, deep nesting, huge numbers, NaN/inf, path
  traversal in names, unknown ops, wrong schema versions, binary junk), each
  checked for time and memory (``tracemalloc``);
* random text and bytes (hypothesis), salted with the payloads;
* random *structured* documents (hypothesis): valid pipelines with random
  values in every field, dumped to YAML.

Whatever comes in, the outcome is a valid :class:`Pipeline` or a
:class:`PipelineError` (nothing else), the canary file never appears, and a
pipeline that loads has only safe names and round-trips through YAML.
See also ``test_pipeline_yaml.py`` for the loader's own limits.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import tracemalloc
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_fbias.cli import main as cli_main
from napari_fbias.pipeline import Pipeline, PipelineError
from napari_fbias.pipeline.yaml_safe import MAX_BYTES

#: A file that any executed payload would create.
CANARY = Path(tempfile.gettempdir()) / f"fbias-canary-{uuid.uuid4().hex}"

VALID = """\
fbias_pipeline: 1
name: nuclei
inputs:
  image: {kind: image}
steps:
  - id: smooth
    op: preprocess.gaussian
    inputs: {image: image}
    params: {sigma: 1.5}
  - id: nuclei
    op: segment.threshold
    inputs: {image: smooth}
    params: {method: otsu}
outputs:
  nuclei: {from: nuclei}
"""

C = str(CANARY)
#: Documents that execute code under an unsafe loader (each would create CANARY).
CODE_PAYLOADS = [
    f"!!python/object/apply:os.system ['touch {C}']\n",
    f"!!python/object/apply:subprocess.call [[touch, '{C}']]\n",
    f"!!python/object/apply:subprocess.check_output [[touch, '{C}']]\n",
    f"!!python/object/new:subprocess.Popen [[touch, '{C}']]\n",
    f"!!python/object/apply:builtins.open ['{C}', w]\n",
    f"!!python/object/apply:builtins.exec [\"open('{C}', 'w')\"]\n",
    f"!!python/object/apply:builtins.eval [\"open('{C}', 'w')\"]\n",
    "!!python/name:os.system\n",
    "!!python/module:os\n",
    f"!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {C}']\n",
    f"%TAG !p! tag:yaml.org,2002:python/object/apply:\n---\n!p!os.system ['touch {C}']\n",
    f"!!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{C}']]\n",
    # the same, hidden in places a loader might treat differently
    VALID.replace("{sigma: 1.5}", f"{{sigma: !!python/object/apply:os.system ['touch {C}']}}"),
    VALID.replace("name: nuclei", f"name: !!python/object/apply:os.system ['touch {C}']"),
    VALID + f"provenance: {{who: !!python/object/apply:os.system ['touch {C}']}}\n",
    VALID.replace("op: segment.threshold", f"op: \"__import__('os').system('touch {C}')\""),
    VALID.replace("op: segment.threshold", "op: os.system"),
    VALID.replace("op: segment.threshold", "op: napari_fbias.ops.segment:threshold"),
]


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "fbias_pipeline: 1\n" + "\n".join(lines) + "\n"


def _chain(n: int, *, loop: bool = False, reverse: bool = False) -> str:
    steps = []
    for i in range(n):
        src = f"s{(i - 1) % n}" if loop else ("image" if i == 0 else f"s{i - 1}")
        steps.append(f"  - {{id: s{i}, op: preprocess.gaussian, inputs: {{image: {src}}}}}")
    if reverse:
        steps.reverse()
    return (
        "fbias_pipeline: 1\nname: chain\ninputs: {image: image}\nsteps:\n"
        + "\n".join(steps)
        + f"\noutputs: {{out: {{from: s{n - 1}}}}}\n"
    )


def _with_output(name: str) -> str:
    return VALID.replace(
        "nuclei: {from: nuclei}", f"{yaml.safe_dump(name).strip()}: {{from: nuclei}}"
    )


#: (id, document, seconds allowed, bytes of Python memory allowed)
ADVERSARIAL: list[tuple[str, str | bytes, float, int]] = [
    ("billion-laughs", _alias_bomb(), 10, 50_000_000),
    ("self-alias", "fbias_pipeline: 1\nname: &x [*x]\n", 10, 50_000_000),
    (
        "recursive-mapping",
        "fbias_pipeline: 1\nprovenance: &p {a: *p}\n" + VALID[17:],
        10,
        50_000_000,
    ),
    (
        "quadratic-alias",
        f"fbias_pipeline: 1\nd: &s '{'x' * 100_000}'\n" + "".join(f"k{i}: *s\n" for i in range(60)),
        30,
        100_000_000,
    ),
    ("deep-list", "[" * 50_000 + "]" * 50_000, 30, 100_000_000),
    ("deep-mapping", "a: " + "{a: " * 20_000 + "1" + "}" * 20_000, 30, 100_000_000),
    (
        "deep-block",
        "".join(" " * i + f"k{i}:\n" for i in range(2_000)) + " " * 2_000 + "v\n",
        30,
        100_000_000,
    ),
    ("huge-int-version", "fbias_pipeline: " + "9" * 10_000 + "\n", 10, 20_000_000),
    ("huge-int-param", VALID.replace("1.5", "1" * 5_000), 10, 20_000_000),
    ("binary-int", VALID.replace("1.5", "0b" + "1" * 100_000), 10, 20_000_000),
    ("huge-float", VALID.replace("1.5", "1.0e999999"), 10, 20_000_000),
    ("nan", VALID.replace("1.5", ".nan"), 10, 20_000_000),
    ("inf", VALID.replace("1.5", "-.inf"), 10, 20_000_000),
    ("over-size", VALID + "# " + "x" * MAX_BYTES + "\n", 10, 20_000_000),
    # deeper than Python's recursion limit (the cycle search once recursed)
    ("many-steps-loop", _chain(1_500, loop=True), 60, 200_000_000),
    ("many-steps-reversed-loop", _chain(1_500, loop=True, reverse=True), 60, 200_000_000),
    ("traversal-dotdot", _with_output("../../etc/cron.d/x"), 10, 20_000_000),
    ("traversal-abs", _with_output("/etc/passwd"), 10, 20_000_000),
    ("traversal-windows", _with_output("..\\..\\x"), 10, 20_000_000),
    ("traversal-drive", _with_output("C:x"), 10, 20_000_000),
    ("traversal-home", _with_output("~root"), 10, 20_000_000),
    ("traversal-hidden", _with_output(".bashrc"), 10, 20_000_000),
    ("traversal-nul", _with_output("a\x00b"), 10, 20_000_000),
    ("traversal-unicode-dots", _with_output("\u2024\u2024/x"), 10, 20_000_000),
    ("long-output-name", _with_output("o" * 5_000), 10, 20_000_000),
    ("reserved-output", _with_output("run"), 10, 20_000_000),
    ("unknown-op", VALID.replace("segment.threshold", "segment.thresold"), 10, 20_000_000),
    ("version-0", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: 0"), 10, 20_000_000),
    ("version-2", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: 2"), 10, 20_000_000),
    ("version-text", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: '1'"), 10, 20_000_000),
    ("version-float", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: 1.0"), 10, 20_000_000),
    ("version-bool", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: true"), 10, 20_000_000),
    ("version-nan", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: .nan"), 10, 20_000_000),
    ("version-list", VALID.replace("fbias_pipeline: 1", "fbias_pipeline: [1]"), 10, 20_000_000),
    ("no-version", VALID.replace("fbias_pipeline: 1\n", ""), 10, 20_000_000),
    ("control-chars", "\x00\x01\x02\x7f", 10, 20_000_000),
    ("lone-surrogate-escape", 'name: "\\ud800"\n', 10, 20_000_000),
    ("two-documents", VALID + "---\n" + VALID, 10, 20_000_000),
    ("unhashable-key", "? [1, 2]\n: x\n", 10, 20_000_000),
    ("duplicate-key", VALID + "name: other\n", 10, 20_000_000),
    ("binary-tag", "!!binary aGVsbG8=\n", 10, 20_000_000),
    ("set-tag", "!!set {a, b}\n", 10, 20_000_000),
    ("local-tag", "!custom {a: 1}\n", 10, 20_000_000),
    ("merge-key", "fbias_pipeline: 1\nbase: &b {name: x}\n<<: *b\n", 10, 20_000_000),
    ("empty", "", 10, 20_000_000),
    ("just-a-list", "- 1\n- 2\n", 10, 20_000_000),
    ("binary-junk", bytes(range(256)) * 64, 10, 20_000_000),
    ("utf16", VALID.encode("utf-16"), 10, 20_000_000),
    ("gzip-magic", b"\x1f\x8b\x08\x00" + os.urandom(2_000), 10, 20_000_000),
]


@pytest.fixture(scope="module", autouse=True)
def _warm_registry_and_check_canary():
    Pipeline.loads(VALID)  # import the ops once, outside any timing
    yield
    assert not CANARY.exists(), "a payload executed code"


def outcome(text: str | bytes, tmp: Path | None = None) -> Pipeline | PipelineError:
    """Load through text (when it is text) and through a file; only PipelineError may escape."""
    result: Pipeline | PipelineError | None = None
    if isinstance(text, str):
        try:
            result = Pipeline.loads(text, source="fuzz.fbias.yaml")
        except PipelineError as exc:
            result = exc
    if tmp is not None and not (isinstance(text, str) and _has_surrogates(text)):
        path = tmp / "fuzz.fbias.yaml"
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        try:
            from_file: Pipeline | PipelineError = Pipeline.load(path)
        except PipelineError as exc:
            from_file = exc
            assert str(path) in str(exc), "the error must name the file"
        if result is not None:  # the file and the text say the same
            assert type(from_file) is type(result), (result, from_file)
        result = from_file
    assert result is not None
    return result


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def check_safe(p: Pipeline) -> None:
    """A loaded pipeline names only safe outputs and round-trips through YAML."""
    for name in list(p.outputs) + list(p.inputs) + [s.id for s in p.steps]:
        assert "/" not in name and "\\" not in name and ".." not in name
        assert not name.startswith((".", "~")) and ":" not in name
        assert Path(name).name == name and not Path(name).is_absolute()
    again = Pipeline.loads(p.dumps())
    assert again == p
    assert again.sha256() == p.sha256()


@pytest.mark.parametrize(
    ("doc", "seconds", "max_bytes"), [pytest.param(d, s, m, id=i) for i, d, s, m in ADVERSARIAL]
)
def test_adversarial_document_is_refused_in_bounded_time_and_memory(
    doc, seconds, max_bytes, tmp_path
):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = outcome(doc, tmp_path)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, PipelineError), "the document was accepted"
    assert result.problems and all(str(p) for p in result.problems)
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < max_bytes, f"used {peak / 1e6:.0f} MB"
    assert not CANARY.exists()


def test_a_file_at_the_size_limit_loads_in_bounded_time(tmp_path):
    """A valid file just under the size limit (a long description) loads, and quickly."""
    doc = VALID + "description: " + "d" * (MAX_BYTES - len(VALID) - 100) + "\n"
    t0 = time.perf_counter()
    result = outcome(doc, tmp_path)
    assert isinstance(result, Pipeline), "a long description is allowed"
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("doc", CODE_PAYLOADS, ids=range(len(CODE_PAYLOADS)))
def test_code_payload_never_runs_through_the_cli(doc, tmp_path, capsys):
    path = tmp_path / "evil.fbias.yaml"
    path.write_text(doc)
    assert isinstance(outcome(doc, tmp_path), PipelineError)
    assert cli_main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problem" in out and str(path) in out
    assert cli_main(["run", str(path), str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "fbias: error: pipeline" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not CANARY.exists()


def test_a_valid_pipeline_survives_the_same_checks(tmp_path):
    """The harness itself can tell a good file from a bad one."""
    p = outcome(VALID, tmp_path)
    assert isinstance(p, Pipeline)
    check_safe(p)


def test_a_long_valid_chain_of_steps_in_reverse_file_order(tmp_path):
    """1500 steps, each reading the next one in the file: valid, and no recursion error."""
    p = outcome(_chain(1_500, reverse=True), tmp_path)
    assert isinstance(p, Pipeline)
    assert len(p.steps) == 1_500


# --- random text and bytes -------------------------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

fragments = st.sampled_from(
    [
        *CODE_PAYLOADS,
        VALID,
        "&a ",
        "*a ",
        "<<: ",
        "!!",
        "%YAML 1.1\n",
        "---\n",
        "...\n",
        "? ",
        ": ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "\n  ",
        "'",
        '"',
        "\\",
        ".nan",
        ".inf",
        "0x",
        "1e9999",
        "fbias_pipeline: 1\n",
        "steps:\n",
        "../",
        "\x00",
        "\ufeff",
        "\t",
    ]
)


@FUZZ
@given(st.lists(st.one_of(fragments, st.text(max_size=40)), max_size=12).map("".join))
def test_random_text_gives_a_pipeline_or_a_pipeline_error(text):
    result = outcome(text)
    if isinstance(result, Pipeline):
        check_safe(result)
    assert not CANARY.exists()


@FUZZ
@given(st.binary(max_size=2_000))
def test_random_bytes_in_a_file_give_a_pipeline_error(tmp_path, data):
    result = outcome(data, tmp_path)
    if isinstance(result, Pipeline):  # bytes that happen to be a valid pipeline
        check_safe(result)


# --- random structured documents -------------------------------------------------------------

NASTY = [
    "",
    " ",
    "..",
    "../x",
    "/etc/passwd",
    "C:\\x",
    "~",
    ".hidden",
    "a/b",
    "a\\b",
    "\x00",
    "\u202e",
    "CON",
    "image",
    "smooth",
    "nuclei",
    "result",
    "run",
    "x" * 100,
    "segment.threshold",
    "preprocess.gaussian",
    "os.system",
    "otsu",
    "manual",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(NASTY),
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(NASTY), st.integers()), inner, max_size=4
        )
    ),
    max_leaves=12,
)
names = st.one_of(
    st.sampled_from(NASTY), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,8}", fullmatch=True)
)
ops = st.one_of(
    st.sampled_from(
        [
            "preprocess.gaussian",
            "segment.threshold",
            "segment.nuclei",
            "measure.regionprops",
            "track.link_spots",
            "segment.remove_small_objects",
        ]
    ),
    st.sampled_from(NASTY),
    junk,
)
param_values = {
    "sigma": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), junk),
    "method": st.one_of(st.sampled_from(["otsu", "li", "manual", "Otsu"]), junk),
    "min_size": st.one_of(st.integers(min_value=-(10**20), max_value=10**20), junk),
    "value": st.one_of(st.floats(allow_nan=True), junk),
}
params = st.one_of(
    st.fixed_dictionaries({}, optional=param_values),
    st.dictionaries(
        st.one_of(names, st.sampled_from(["axes", "spacing", "password"])), junk, max_size=3
    ),
    junk,
)
steps = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"id": names, "op": ops},
            optional={
                "inputs": st.one_of(
                    st.dictionaries(st.sampled_from(["image", "labels"]), names, max_size=2), junk
                ),
                "params": params,
                "extra": junk,
            },
        ),
        junk,
    ),
    max_size=5,
)
documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "fbias_pipeline": st.one_of(st.just(1), st.integers(), junk),
            "name": st.one_of(st.just("p"), junk),
            "description": junk,
            "inputs": st.one_of(
                st.dictionaries(
                    names, st.one_of(st.sampled_from(["image", "labels"]), junk), max_size=3
                ),
                junk,
            ),
            "steps": st.one_of(steps, junk),
            "outputs": st.one_of(
                st.dictionaries(
                    names,
                    st.one_of(names, st.fixed_dictionaries({"from": names}), junk),
                    max_size=3,
                ),
                junk,
            ),
            "provenance": junk,
        },
    ),
    junk,
)


@FUZZ
@given(documents)
def test_random_documents_through_yaml_and_from_dict(doc):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:  # e.g. keys PyYAML cannot write
        text = None
    if text is not None:
        result = outcome(text)
        if isinstance(result, Pipeline):
            check_safe(result)
    try:
        direct = Pipeline.from_dict(doc, source="doc")
    except PipelineError:
        return
    check_safe(direct)


@settings(max_examples=60, deadline=timedelta(seconds=5))
@given(st.sampled_from(["sigma", "method", "min_size", "value"]), scalars)
def test_a_valid_pipeline_with_one_random_setting(name, value):
    doc = yaml.safe_load(VALID)
    target = doc["steps"][0] if name == "sigma" else doc["steps"][1]
    target["params"] = {name: value}
    try:
        p = Pipeline.from_dict(doc)
    except PipelineError as exc:
        assert any(pr.field == f"params.{name}" for pr in exc.problems), exc
        return
    setting = p.steps[0 if name == "sigma" else 1].params[name]
    if isinstance(setting, float):
        assert math.isfinite(setting)
    check_safe(p)
