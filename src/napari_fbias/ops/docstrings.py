"""Read an operation's help text from its numpy-style docstring (with docstring_parser).

The registry (:func:`napari_fbias.ops.registry.build_spec`) takes the
summary of an operation (the docstring's first line) and the help of each
setting (the first line of its entry under ``Parameters``) from here; ``fbias
ops``, the napari widgets' tooltips and the bundle's README show them.

Only the ``Parameters`` section counts (not ``Other Parameters`` or
``Attributes``); an entry naming several parameters (``x, y : float``) gives
each of them its help. A docstring that cannot be parsed gives no help rather
than an error: help text must never stop an operation from registering.
"""

from __future__ import annotations

import inspect

import docstring_parser

__all__ = ["param_help", "summary"]


def _parse(doc: str | None) -> docstring_parser.Docstring | None:
    if not doc or not doc.strip():
        return None
    try:
        return docstring_parser.parse(
            inspect.cleandoc(doc), style=docstring_parser.DocstringStyle.NUMPYDOC
        )
    except docstring_parser.ParseError:
        return None


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def summary(doc: str | None) -> str:
    """Return the first line of a docstring (``""`` when there is none).

    Parameters
    ----------
    doc : str or None
        A function's ``__doc__``.
    """
    parsed = _parse(doc)
    if parsed is not None and parsed.short_description:
        return _first_line(parsed.short_description)
    return _first_line(doc)


def param_help(doc: str | None) -> dict[str, str]:
    """Return ``{parameter name: first line of its description}`` from ``Parameters``.

    Parameters
    ----------
    doc : str or None
        A numpy-style docstring (a function's ``__doc__``).

    Returns
    -------
    dict of str to str
        One entry per documented parameter, in the docstring's order; ``""``
        for a parameter listed without a description.
    """
    parsed = _parse(doc)
    if parsed is None:
        return {}
    out: dict[str, str] = {}
    for item in parsed.meta:
        if not isinstance(item, docstring_parser.DocstringParam) or item.args[0] != "param":
            continue
        help_text = _first_line(item.description)
        for name in item.arg_name.split(","):
            if name.strip():
                out[name.strip()] = help_text
    return out
