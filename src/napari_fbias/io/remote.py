"""Zarr stores for local paths and remote URLs (HTTP(S), S3), with clear errors.

Remote stores go through fsspec (:class:`zarr.storage.FsspecStore`), whose
async I/O lets zarr fetch many chunks at once. Every remote store gets
timeouts, so an unreachable server fails fast with
:class:`~napari_fbias.io.errors.UnreachableSourceError` instead of hanging.

S3 is anonymous by default (public buckets); pass ``storage_options`` (e.g.
``{"anon": False}`` or ``{"endpoint_url": "http://127.0.0.1:5000"}``) to
change it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore, WrapperStore

from napari_fbias.io.errors import FbiasIOError, MissingDataError, UnreachableSourceError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "REMOTE_SCHEMES",
    "StrictChunkStore",
    "default_storage_options",
    "describe_error",
    "is_remote",
    "join_key",
    "local_path",
    "open_store",
    "read_keys",
    "require_filesystem",
    "run_sync",
]

#: URL schemes read through fsspec.
REMOTE_SCHEMES = ("http", "https", "s3", "gs", "gcs")

#: Seconds to wait for a connection or for data before giving up.
DEFAULT_TIMEOUT_S = 20.0

#: Names of zarr metadata files (everything else in a store is a chunk).
METADATA_FILES = frozenset({"zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"})

T = TypeVar("T")


def local_path(source: str | os.PathLike[str]) -> Path:
    """Return the local path of ``source``: a path, or a ``file://`` URL (``file:///data/x.zarr``).

    Raises
    ------
    FbiasIOError
        For a ``file://`` URL naming another host (``file://server/share/...``).
    """
    text = os.fspath(source)
    if isinstance(text, str) and text[:7].lower() == "file://":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise FbiasIOError(
                f"{text}: a file:// URL must name a path on this computer "
                f"(file:///path), not the host {parts.netloc!r}; mount the share and use its path"
            )
        return Path(unquote(parts.path))
    return Path(text).expanduser()


def is_remote(source: str | os.PathLike[str]) -> bool:
    """Return True when ``source`` is a URL read through fsspec (http, https, s3...)."""
    if not isinstance(source, str):
        return False
    scheme = urlsplit(source).scheme.lower()
    return scheme in REMOTE_SCHEMES


def default_storage_options(url: str, *, timeout: float | None = None) -> dict[str, Any]:
    """Return the fsspec options we use for ``url`` unless told otherwise.

    Parameters
    ----------
    url : str
        ``http(s)://`` or ``s3://`` URL.
    timeout : float, optional
        Seconds for connecting and for each read (default :data:`DEFAULT_TIMEOUT_S`).

    Returns
    -------
    dict
        Options for :meth:`zarr.storage.FsspecStore.from_url`.
    """
    t = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        import aiohttp

        return {
            "client_kwargs": {
                "timeout": aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)
            }
        }
    if scheme == "s3":
        return {
            "anon": True,
            "config_kwargs": {
                "connect_timeout": t,
                "read_timeout": t,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
        }
    return {}


def _merge_options(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if "endpoint_url" in merged and "client_kwargs" in merged:
        # s3fs accepts endpoint_url at top level; keep the user's choice only once
        merged["client_kwargs"] = {
            k: v for k, v in merged["client_kwargs"].items() if k != "endpoint_url"
        }
    return merged


def open_store(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Store:
    """Open a read-only zarr store for a local path or a remote URL.

    Parameters
    ----------
    source : str or path-like
        Local directory, ``file://`` URL, ``http(s)://`` or ``s3://`` URL.
    storage_options : mapping, optional
        fsspec options for remote sources, merged over
        :func:`default_storage_options` (yours win).
    timeout : float, optional
        Seconds for connecting and reading, remote sources only.

    Returns
    -------
    zarr.abc.store.Store
        A read-only store.

    Raises
    ------
    FileNotFoundError
        For a local path that does not exist.
    """
    if is_remote(source):
        require_filesystem(str(source))
        url, auth = _split_credentials(str(source))
        url, query = _split_query(url)
        opts = _merge_options(default_storage_options(url, timeout=timeout), auth)
        opts = _merge_options(opts, storage_options or {})
        if query:
            from napari_fbias.io.http_query import QueryHTTPFileSystem

            fs = QueryHTTPFileSystem(url_query=query, **{"asynchronous": True, **opts})
            return FsspecStore(fs=fs, path=url, read_only=True)
        return FsspecStore.from_url(url, storage_options=opts, read_only=True)
    p = local_path(source)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    return LocalStore(p, read_only=True)


#: URL scheme -> (the fsspec filesystem package it needs, the napari-fbias extra installing it).
FILESYSTEM_EXTRAS = {"s3": ("s3fs", "s3")}


def require_filesystem(url: str) -> None:
    """Raise a clear error naming the extra when the package for ``url``'s scheme is missing.

    Raises
    ------
    napari_fbias.extras.MissingExtraError
        For an ``s3://`` URL without s3fs (``pip install "napari-fbias[s3]"``).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in FILESYSTEM_EXTRAS:
        from napari_fbias.extras import require

        package, extra = FILESYSTEM_EXTRAS[scheme]
        require(package, extra, what=f"reading {scheme}:// URLs")


def _split_credentials(url: str) -> tuple[str, dict[str, Any]]:
    """Move ``user:password@`` of an HTTP(S) URL into a basic-auth header option.

    The URL then names no secret wherever the store shows it (its path, library
    logs, error messages); the password lives in the connection options only.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url, {}
    import base64
    from urllib.parse import unquote, urlunsplit

    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), {"headers": {"Authorization": f"Basic {token}"}}


def _split_query(url: str) -> tuple[str, str]:
    """Split an HTTP(S) URL into the store's root (no trailing ``/``) and its query string.

    A pre-signed or token URL (``https://host/image.ome.zarr?token=...``)
    names the store's root; the query must follow every key read below it
    (``.../image.ome.zarr/zarr.json?token=...``), not precede it. Other
    schemes, and URLs without a query, come back unchanged (but for the
    trailing ``/``). A fragment (``#...``) is never sent, so it is dropped.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not (parts.query or parts.fragment):
        return url.rstrip("/"), ""
    from urllib.parse import urlunsplit

    root = urlunsplit(parts._replace(path=parts.path.rstrip("/"), query="", fragment=""))
    return root, parts.query


def join_key(*parts: str) -> str:
    """Join store key parts with ``/``, skipping empty ones (an absolute first part stays so).

    When the first part is a URL with a query string, the query stays at the
    end: ``join_key("https://h/a.zarr?v=1", "0")`` is ``"https://h/a.zarr/0?v=1"``.
    """
    if parts and "://" in parts[0] and "?" in parts[0]:
        root, _, query = parts[0].partition("?")
        return join_key(root, *parts[1:]) + "?" + query
    joined = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    return "/" + joined if parts and parts[0].startswith("/") else joined


def describe_error(exc: BaseException) -> str:
    """Return a short human description of a low-level I/O error."""
    from napari_fbias.io.credentials import scrub_text

    text = scrub_text(str(exc).strip())
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a zarr/fsspec coroutine on zarr's own event loop and return its result."""
    return sync(coro)


async def _get(store: Store, key: str, prototype: BufferPrototype) -> bytes | None:
    buf = await store.get(key, prototype)
    return None if buf is None else buf.to_bytes()


async def read_keys_async(store: Store, keys: Sequence[str], *, source: str) -> dict[str, Any]:
    """Fetch several keys of ``store`` concurrently (see :func:`read_keys`)."""
    prototype = default_buffer_prototype()
    results = await asyncio.gather(
        *(_get(store, k, prototype) for k in keys), return_exceptions=True
    )
    out: dict[str, bytes | None] = {}
    for key, res in zip(keys, results, strict=True):
        if isinstance(res, FbiasIOError):
            raise res
        if isinstance(res, PermissionError):
            raise UnreachableSourceError(
                f"access to {join_key(source, key)} denied ({describe_error(res)}); for private "
                "data pass credentials in storage_options (S3: {'anon': False})"
            ) from res
        if isinstance(res, BaseException):
            raise UnreachableSourceError(
                f"could not read {join_key(source, key)}: {describe_error(res)}"
            ) from res
        out[key] = res
    return out


def read_keys(store: Store, keys: Sequence[str], *, source: str) -> dict[str, bytes | None]:
    """Fetch several keys of ``store`` concurrently.

    Parameters
    ----------
    store : zarr.abc.store.Store
        Store to read from.
    keys : sequence of str
        Keys to read (e.g. ``["zarr.json", ".zattrs"]``).
    source : str
        The path or URL of the store, for error messages.

    Returns
    -------
    dict
        Key to content, None for a key that does not exist.

    Raises
    ------
    UnreachableSourceError
        If the store cannot be reached (connection refused, timeout, HTTP
        error other than "not found"), naming the URL.
    """
    return run_sync(read_keys_async(store, keys, source=source))


class StrictChunkStore(WrapperStore[Store]):
    """A read-only store wrapper that raises on missing chunks instead of filling.

    Zarr reads a missing chunk as ``fill_value``: by the spec, a chunk holding
    only the fill value need not be written. When a store is known to be
    complete, wrapping it in this class turns a missing chunk into a
    :class:`~napari_fbias.io.errors.MissingDataError` naming the chunk.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store to wrap.
    source : str
        Path or URL of the store, for error messages.
    """

    def __init__(self, store: Store, source: str = "") -> None:
        super().__init__(store)
        self._source = source

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """Return the value of ``key``; raise if a chunk is missing."""
        value = await self._store.get(key, prototype, byte_range)
        if value is None and key.rsplit("/", 1)[-1] not in METADATA_FILES:
            raise MissingDataError(
                f"chunk {key!r} of {self._source or 'the store'} is missing: the store is "
                "incomplete (a partial copy?), and it is read strictly (fbias run --strict, "
                "missing_chunks='error'), where a missing chunk is an error, not zeros"
            )
        return value
