"""Analysis operations: plain, typed, Qt-free functions, registered once.

Use :func:`get_op` / :func:`list_ops` to find them; each module
(:mod:`.preprocess`, :mod:`.segment`, :mod:`.cellpose_op`, :mod:`.track`,
:mod:`.measure`) registers its functions on import.
"""

from napari_fbias.ops.registry import OpSpec, ParamSpec, get_op, list_ops, register_op

__all__ = ["OpSpec", "ParamSpec", "get_op", "list_ops", "register_op"]
