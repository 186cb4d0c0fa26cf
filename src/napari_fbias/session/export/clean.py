"""The session as it may leave the desk: no credentials, no control characters, bounded.

Every string of the session record -- values and mapping keys alike (user,
lab, analysts, layer names, result keys, timeline details...) -- goes
through :func:`~napari_fbias.io.text_limits.bound_text` with the limit of
its field; settings (``params``) whose name looks secret are dropped, and
the values of the others only lose credentials and control characters
(they are never cut: that would change the pipeline).

The same field always gets the same limit, so names that refer to each other
(an image's ``name`` and a step input's ``image``, a layer name as a key and
as ``output_layer``) stay equal after the cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from napari_fbias.io.text_limits import MAX_NAME, MAX_TEXT, MAX_URI, bound_text, printable_text
from napari_fbias.session.model import Session

#: Field (mapping key) -> length limit of its text; other fields get MAX_NAME.
FIELD_LIMITS: Mapping[str, int] = {
    "source": MAX_URI,
    "question": MAX_TEXT,
    "notes": MAX_TEXT,
    "text": MAX_TEXT,
    "value": MAX_TEXT,
    "issues": MAX_TEXT,
    "next_steps": MAX_TEXT,
}


def _param_value(value: Any) -> Any:
    from napari_fbias.io.credentials import scrub_text

    if isinstance(value, str):
        return scrub_text(printable_text(value))
    if isinstance(value, (list, tuple)):
        return [_param_value(v) for v in value]
    if isinstance(value, Mapping):
        return {_param_value(str(k)): _param_value(v) for k, v in value.items()}
    return value


def clean_value(value: Any, limit: int = MAX_NAME) -> Any:
    """Return a plain (JSON-like) value with every string bounded (see the module doc)."""
    from napari_fbias.io.credentials import is_secret_name

    if isinstance(value, str):
        return bound_text(value, limit)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = bound_text(k, MAX_NAME) if isinstance(k, str) else k
            if k == "params" and isinstance(v, Mapping):
                out[key] = {
                    bound_text(str(pk), MAX_NAME): _param_value(pv)
                    for pk, pv in v.items()
                    if not is_secret_name(str(pk))
                }
            else:
                out[key] = clean_value(v, FIELD_LIMITS.get(str(k), MAX_NAME))
        return out
    if isinstance(value, (list, tuple)):
        return [clean_value(v, limit) for v in value]
    return value


def clean_session(session: Session) -> Session:
    """Return the session without credentials, control characters or overlong text."""
    return Session.from_dict(clean_value(session.to_dict()))
