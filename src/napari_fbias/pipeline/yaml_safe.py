"""Read pipeline YAML safely: plain data only, bounded in size, depth and aliases.

``yaml.safe_load`` already refuses Python object tags; on top of it this
loader refuses files over :data:`MAX_BYTES`, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_ALIASES` aliases or documents that
expand (through aliases) to more than :data:`MAX_NODES` values ("billion
laughs"), and duplicate mapping keys (which YAML would silently drop). Dates
stay text. Every refusal is a :class:`PipelineError` naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from napari_fbias.pipeline.errors import PipelineError, Problem

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 64
MAX_NODES = 100_000
#: Longest number (in characters) a pipeline file may hold; Python refuses to
#: convert decimal integers of more than 4300 digits, and no setting needs 100.
MAX_NUMBER_CHARS = 100


class _Refused(Exception):
    """Internal: the document breaks a limit (message says which)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with limits on nesting and aliases, and no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise _Refused(
                    f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name); "
                    "write the values out instead"
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                    if key in seen:
                        raise _Refused(
                            f"line {key_node.start_mark.line + 1}: key {key!r} appears twice "
                            "in the same mapping"
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))


def _bounded_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(node.value)
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(
            f"line {node.start_mark.line + 1}: a number of {len(text)} characters; "
            f"numbers in a pipeline file have at most {MAX_NUMBER_CHARS}"
        )
    return yaml.SafeLoader.construct_yaml_int(loader, node)  # type: ignore[arg-type]


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
# YAML 1.1 (PyYAML) reads `1e-3` and `2E5` as text: it wants a dot. Scientists write numbers
# that way, and YAML 1.2 reads them as numbers: resolve them as floats too. The dumper knows the
# same rule, so that a text such as "1e5" is written quoted and reads back as text.
_EXP_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes text the loader would read as a number (``"1e5"``)."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))
_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


def _count_nodes(obj: Any, budget: int) -> int:
    """Count values reachable from ``obj`` (aliases expanded); stop past ``budget``."""
    count = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        count += 1
        if count > budget:
            return count
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def loads(text: str, source: str = "") -> Any:
    """Parse YAML text as plain data within the limits of this module.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        File name used in error messages.

    Returns
    -------
    object
        Plain Python data (dict, list, str, int, float, bool, None).

    Raises
    ------
    PipelineError
        Malformed YAML, Python or other unsafe tags, or a document over the limits.
    """
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise _file_error(f"larger than {MAX_BYTES // 1000} kB; not a pipeline file", source)
    loader = None
    try:
        loader = _BoundedLoader(text)  # refuses control characters, hence in the try
        data = loader.get_single_data()
    except _Refused as exc:
        raise _file_error(str(exc), source) from None
    except yaml.constructor.ConstructorError as exc:
        raise _file_error(_describe_constructor_error(exc), source) from None
    except yaml.YAMLError as exc:
        raise _file_error(_describe_yaml_error(exc), source) from None
    finally:
        if loader is not None:
            loader.dispose()
    if _count_nodes(data, MAX_NODES) > MAX_NODES:
        raise _file_error(
            f"expands to more than {MAX_NODES} values (through YAML aliases); refused", source
        )
    return data


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file (see :func:`loads`); errors name the file."""
    p = Path(path)
    source = str(p)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise _file_error("file not found", source) from None
    except OSError as exc:
        raise _file_error(f"cannot be read ({exc.strerror})", source) from None
    if p.is_dir():
        raise _file_error("is a folder, not a pipeline file", source)
    if size > MAX_BYTES:
        raise _file_error(
            f"is {size // 1000} kB, larger than the {MAX_BYTES // 1000} kB a pipeline file "
            "may have; not a pipeline file",
            source,
        )
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _file_error("is not UTF-8 text; not a pipeline file", source) from None
    except OSError as exc:
        raise _file_error(f"cannot be read ({exc.strerror})", source) from None
    return loads(text, source)


def dumps(data: Any) -> str:
    """Write plain data as readable YAML (block style, short lists/mappings inline)."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=100,
    )


def _file_error(message: str, source: str) -> PipelineError:
    return PipelineError([Problem(None, "file", message)], source=source)


def _where(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return ""
    return f"line {mark.line + 1}, column {mark.column + 1}: "


def _describe_constructor_error(exc: yaml.constructor.ConstructorError) -> str:
    problem = exc.problem or ""
    if "python/" in problem or "!!python" in problem or "tag" in problem:
        tag = problem.split("tag", 1)[-1].strip(" '\"")
        if "python/" in tag:
            tag = "!!python/" + tag.split("python/", 1)[1]
        return (
            f"{_where(exc)}the YAML tag {tag} is not allowed: pipeline files hold plain data "
            "only (numbers, text, lists, mappings), never code or Python objects"
        )
    return f"{_where(exc)}{problem or exc}"


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or exc.context or "syntax error"
        return f"is not valid YAML ({_where(exc).rstrip(': ')}: {what})"
    return f"is not valid YAML ({exc})"
