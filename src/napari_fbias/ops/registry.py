"""The operation registry: every analysis operation, registered once.

An operation is one plain Python function::

    @register_op("segment.threshold", category="segment")
    def threshold(
        image: Image,
        *,
        method: Literal["otsu", "li", "triangle", "yen", "manual"] = "otsu",
        value: Annotated[float, {"min": 0.0}] = 0.0,
    ) -> Labels:
        ...

* positional parameters annotated with a kind from :mod:`napari_fbias.ops.types`
  are its *data inputs* (optional ones default to ``None``);
* keyword-only parameters are its *settings*: ``int``, ``float``, ``bool``,
  ``str``, ``Literal[...]`` choices, ``tuple[...]`` or ``X | None``, with
  optional ``Annotated[..., {"min":, "max":, "step":, "tooltip":}]`` bounds
  (the same dict magicgui reads for its widgets);
* settings named in :data:`CONTEXT_PARAMS` (``axes``, ``spacing``) are filled
  by the runner from the input image, never written by hand;
* the return annotation is the kind of its single output.

The same function is the napari widget (magicgui), the pipeline step
(validated against :class:`OpSpec`), the CLI's unit of work and the line the
exported script calls. Third-party packages add operations through the
``napari_fbias.ops`` entry point group (a module that calls
:func:`register_op` on import); a pipeline file can only *name* operations.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any, Literal

from napari_fbias.ops.docstrings import param_help
from napari_fbias.ops.docstrings import summary as doc_summary
from napari_fbias.ops.types import KIND_OF_TYPE, DataKind

#: Settings the runner fills from the input image; users never set them.
CONTEXT_PARAMS: frozenset[str] = frozenset({"axes", "spacing"})

#: Modules holding the built-in operations, imported on first registry use. They import
#: optional extras (cellpose) only when an operation runs, so each of them must import:
#: one that does not is a packaging bug, reported as such by :func:`get_op`.
BUILTIN_MODULES: tuple[str, ...] = (
    "napari_fbias.ops.preprocess",
    "napari_fbias.ops.segment",
    "napari_fbias.ops.cellpose_op",
    "napari_fbias.ops.track",
    "napari_fbias.ops.measure",
    "napari_fbias.ops.object_size",
    # chunk-wise strategies that reuse their operation's helpers: they import the operation's
    # module and declare themselves (register_chunked), never the other way round
    "napari_fbias.ops.measure_chunks",
    "napari_fbias.ops.cellpose_chunks",
    "napari_fbias.ops.spot_chunks",
)
ENTRY_POINT_GROUP = "napari_fbias.ops"

_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class ParamSpec:
    """One setting of an operation.

    ``type`` is the base Python type (``int``, ``float``, ``bool``, ``str``,
    ``tuple``); ``choices`` holds the allowed values of a ``Literal``;
    ``optional`` is True when ``None`` is accepted.
    """

    name: str
    type: type
    default: Any = None
    required: bool = False
    optional: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    item_type: type | None = None
    length: int | None = None
    help: str = ""
    widget_options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (for ``fbias ops`` and docs)."""
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "required": self.required,
            "optional": self.optional,
            "choices": list(self.choices) if self.choices is not None else None,
            "min": self.minimum,
            "max": self.maximum,
            "help": self.help,
        }


@dataclass(frozen=True)
class InputSpec:
    """One data input of an operation."""

    name: str
    kind: DataKind
    required: bool = True


@dataclass(frozen=True)
class OpSpec:
    """Everything the pipeline, CLI and widgets need to know about an operation.

    Attributes
    ----------
    spatial : bool
        True when the function works on one spatial block (``yx`` or ``zyx``):
        the runner then applies it per time point / channel of a larger image
        and may run it chunk-wise on big images.
    depth : int or callable
        Halo (pixels) that chunk-wise processing needs, or a function of the
        settings returning it (e.g. ``lambda p: 4 * p["sigma"]``). None means
        the op cannot run chunk-wise.
    axes_out : callable or None
        For ops that change the axes (channel selection, projection): a
        function ``(axes: str, params: dict) -> str``.
    memory : tuple of float or None
        Peak working memory, output included, as ``(a, b)``: about
        ``a + b * itemsize`` bytes per pixel of the block the function gets,
        ``itemsize`` being that of its first array input. A conversion to
        float64 shows in ``a`` (8 bytes a pixel whatever the input), a copy
        of the input in ``b``. The runner plans with it
        (:mod:`napari_fbias.pipeline.memory`); None means unknown (a
        conservative default is used).
    chunked : callable or None
        A chunk-wise implementation for images larger than memory, declared
        beside the operation (the built-in ones are in
        :mod:`napari_fbias.ops.chunks`, which describes the call). None:
        chunk-wise only through ``depth``.
    """

    name: str
    func: Callable[..., Any]
    category: str
    title: str
    summary: str
    inputs: tuple[InputSpec, ...]
    params: tuple[ParamSpec, ...]
    output: DataKind
    context: tuple[str, ...] = ()
    spatial: bool = True
    depth: int | Callable[[Mapping[str, Any]], int] | None = None
    axes_out: Callable[[str, Mapping[str, Any]], str] | None = None
    memory: tuple[float, float] | None = None
    chunked: Callable[..., Any] | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the user-settable settings."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> ParamSpec:
        """Return the setting called ``name`` (KeyError if unknown)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        """Return what a step that leaves a setting out gets (settings with a default).

        The signature's default, except for a setting that became automatic
        (None) after pipeline files and scripts were written without it: that
        one keeps the number it had (:func:`keep_old_default`), so those files
        rerun unchanged. A *new* step (widget, recorder) starts from
        :attr:`ParamSpec.default` and records every setting, None included.
        """
        old = _OLD_DEFAULTS.get(self.name, {})
        return {p.name: old.get(p.name, p.default) for p in self.params if not p.required}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description."""
        return {
            "name": self.name,
            "category": self.category,
            "title": self.title,
            "summary": self.summary,
            "inputs": [
                {"name": i.name, "kind": i.kind, "required": i.required} for i in self.inputs
            ],
            "output": self.output,
            "params": [p.to_dict() for p in self.params],
        }


class UnknownOpError(KeyError):
    """An operation name that no registered operation has."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown operation"


_REGISTRY: dict[str, OpSpec] = {}
#: Operation -> setting -> the number it defaulted to before it became automatic.
_OLD_DEFAULTS: dict[str, dict[str, Any]] = {}
_loaded = False


def register_chunked(name: str, strategy: Callable[..., Any]) -> None:
    """Declare ``strategy`` the chunk-wise strategy of the registered operation ``name``.

    For a strategy that reuses private helpers of its operation's module: it
    imports that module and calls this at its end, so the operation's module
    never imports it (no import cycle). Others pass ``chunked=`` to
    :func:`register_op`. The strategy's module must be listed in
    :data:`BUILTIN_MODULES` (or be imported by a plugin's entry point).
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ValueError(f"register_chunked: no operation {name!r} is registered (import it first)")
    _REGISTRY[name] = replace(spec, chunked=strategy)


def register_op(
    name: str,
    *,
    category: str,
    title: str | None = None,
    spatial: bool = True,
    depth: int | Callable[[Mapping[str, Any]], int] | None = None,
    axes_out: Callable[[str, Mapping[str, Any]], str] | None = None,
    memory: tuple[float, float] | None = None,
    chunked: Callable[..., Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as operation ``name`` (decorator); returns ``func`` unchanged.

    ``spatial``, ``depth``, ``axes_out``, ``memory`` and ``chunked`` are described in
    :class:`OpSpec`.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        spec = build_spec(
            func,
            name=name,
            category=category,
            title=title,
            spatial=spatial,
            depth=depth,
            axes_out=axes_out,
            memory=memory,
            chunked=chunked,
        )
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func is not func:
            if (existing.func.__module__, existing.func.__qualname__) != (
                func.__module__,
                func.__qualname__,
            ):
                raise ValueError(f"operation {name!r} is already registered by {existing.func}")
        _REGISTRY[name] = spec
        func.__fbias_op__ = name  # type: ignore[attr-defined]
        return func

    return decorator


def build_spec(
    func: Callable[..., Any],
    *,
    name: str,
    category: str,
    title: str | None = None,
    spatial: bool = True,
    depth: int | Callable[[Mapping[str, Any]], int] | None = None,
    axes_out: Callable[[str, Mapping[str, Any]], str] | None = None,
    memory: tuple[float, float] | None = None,
    chunked: Callable[..., Any] | None = None,
) -> OpSpec:
    """Build the :class:`OpSpec` of a function from its signature and docstring."""
    if memory is not None and (
        len(memory) != 2 or any(not isinstance(m, int | float) or m < 0 for m in memory)
    ):
        raise TypeError(f"{name}: memory must be two numbers >= 0 (a, b), got {memory!r}")
    hints = typing.get_type_hints(func, include_extras=True)
    sig = inspect.signature(func)
    doc_help = param_help(func.__doc__)
    inputs: list[InputSpec] = []
    params: list[ParamSpec] = []
    context: list[str] = []
    for pname, p in sig.parameters.items():
        hint = hints.get(pname, Any)
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            base, optional = _strip_optional(_strip_annotated(hint)[0])
            kind = KIND_OF_TYPE.get(base)
            if kind is None:
                raise TypeError(
                    f"{name}: data parameter {pname!r} must be annotated with a kind from "
                    "napari_fbias.ops.types (settings must be keyword-only)"
                )
            inputs.append(InputSpec(pname, kind, required=p.default is _MISSING))
        elif p.kind is p.KEYWORD_ONLY:
            if pname in CONTEXT_PARAMS:
                context.append(pname)
                continue
            params.append(_param_spec(name, pname, hint, p.default, doc_help.get(pname, "")))
        else:
            raise TypeError(f"{name}: *args/**kwargs are not allowed in operations")
    ret = _strip_annotated(hints.get("return", Any))[0]
    output = KIND_OF_TYPE.get(ret)
    if output is None:
        raise TypeError(f"{name}: return annotation must be a kind from napari_fbias.ops.types")
    summary = doc_summary(func.__doc__)
    return OpSpec(
        name=name,
        func=func,
        category=category,
        title=title or name.split(".")[-1].replace("_", " ").capitalize(),
        summary=summary,
        inputs=tuple(inputs),
        params=tuple(params),
        output=output,
        context=tuple(context),
        spatial=spatial,
        depth=depth,
        axes_out=axes_out,
        memory=None if memory is None else (float(memory[0]), float(memory[1])),
        chunked=chunked,
    )


def _strip_annotated(hint: Any) -> tuple[Any, dict[str, Any]]:
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        opts: dict[str, Any] = {}
        for e in extras:
            if isinstance(e, Mapping):
                opts.update(e)
        return base, opts
    return hint, {}


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return hint, False


def _param_spec(op: str, pname: str, hint: Any, default: Any, doc: str) -> ParamSpec:
    base, opts = _strip_annotated(hint)
    base, optional = _strip_optional(base)
    base, more = _strip_annotated(base)
    opts = {**more, **opts}
    choices = None
    item_type = None
    length = None
    if typing.get_origin(base) is Literal:
        choices = typing.get_args(base)
        ptype: type = type(choices[0])
    elif typing.get_origin(base) is tuple:
        args = typing.get_args(base)
        ptype = tuple
        if len(args) == 2 and args[1] is Ellipsis:
            item_type = args[0]
        elif args:
            item_type = args[0]
            length = len(args)
    elif base in (int, float, bool, str):
        ptype = base
    else:
        raise TypeError(f"{op}: setting {pname!r} has unsupported type {base!r}")
    if default is _MISSING:
        required, default = True, None
    else:
        required = False
        if default is None:
            optional = True
    return ParamSpec(
        name=pname,
        type=ptype,
        default=default,
        required=required,
        optional=optional,
        choices=tuple(choices) if choices is not None else None,
        minimum=opts.get("min"),
        maximum=opts.get("max"),
        item_type=item_type,
        length=length,
        help=opts.get("tooltip", doc),
        widget_options=dict(opts),
    )


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError as exc:  # a packaging bug: the optional extras are imported on use
            _loaded = False
            raise ImportError(
                f"napari-fbias is installed incompletely: its built-in operations ({mod}) "
                f"cannot be imported ({type(exc).__name__}: {exc}). Reinstall napari-fbias "
                "(pip install --force-reinstall napari-fbias)",
                name=mod,
            ) from exc
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def keep_old_default(op: str, **settings: Any) -> None:
    """Declare settings of ``op`` that became automatic (default None) and the number they had.

    A pipeline step or script call written before, that left such a setting
    out, meant that number: :meth:`OpSpec.defaults` keeps giving it, so the
    step reruns bit for bit; new steps record None (automatic) explicitly.
    Called beside the operation's definition.
    """
    _OLD_DEFAULTS.setdefault(op, {}).update(settings)


def get_op(name: str) -> OpSpec:
    """Return the operation called ``name``.

    Raises
    ------
    UnknownOpError
        With the closest known names, when there is no such operation.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownOpError(f"unknown operation {name!r}{hint}") from None


def list_ops(category: str | None = None) -> list[OpSpec]:
    """All registered operations (optionally of one category), sorted by name."""
    _ensure_loaded()
    return sorted(
        (s for s in _REGISTRY.values() if category is None or s.category == category),
        key=lambda s: s.name,
    )


def op_name_of(func: Callable[..., Any]) -> str | None:
    """Registry name of a registered function, or None."""
    return getattr(func, "__fbias_op__", None)
