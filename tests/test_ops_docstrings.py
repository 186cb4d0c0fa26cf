"""Operation help text comes from numpy docstrings, read by docstring_parser."""

from __future__ import annotations

from napari_fbias.ops.docstrings import param_help, summary
from napari_fbias.ops.registry import get_op, list_ops

DOC = """Smooth an image.

    A longer description
    over two lines.

    Parameters
    ----------
    image : Image
        The image.
    sigma : float
        Width of the Gaussian, in pixels;
        a second line that is not part of the help.
    low, high : float
        Bounds of the output range.
    quiet : bool

    Other Parameters
    ----------------
    hidden : int
        Not a setting's help.

    Returns
    -------
    Image
        The smoothed image.
    """


def test_param_help_takes_the_first_line_of_each_parameter() -> None:
    assert param_help(DOC) == {
        "image": "The image.",
        "sigma": "Width of the Gaussian, in pixels;",
        "low": "Bounds of the output range.",
        "high": "Bounds of the output range.",
        "quiet": "",
    }
    assert summary(DOC) == "Smooth an image."


def test_no_docstring_or_no_parameters_give_no_help() -> None:
    assert param_help(None) == {} and param_help("") == {} and summary(None) == ""
    assert (
        param_help("Just a line.") == {} and summary("  Just a line.\n\n  More.") == "Just a line."
    )


def test_registered_operations_get_their_help() -> None:
    spec = get_op("cellpose.segment")
    assert spec.summary == "Segment cells or nuclei with a cellpose model (cellpose 3 or 4)."
    assert spec.param("flow_threshold").help == (
        "Maximum flow error of a kept object; raise it to keep more objects, 0 = no check."
    )
    ours = [op for op in list_ops() if op.func.__module__.startswith("napari_fbias.")]
    assert len(ours) > 10
    for op in ours:
        assert op.summary, op.name
        assert all(p.help for p in op.params), (op.name, [p.name for p in op.params if not p.help])
