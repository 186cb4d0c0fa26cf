"""An fsspec HTTP file system for pre-signed and token URLs (imported only for them).

Kept apart from :mod:`napari_fbias.io.remote` so that reading local data does
not import aiohttp; a module-level class, so that dask can pickle stores made
with it to worker processes.
"""

from __future__ import annotations

import weakref
from typing import Any

import yarl
from fsspec.implementations.http import HTTPFileSystem

__all__ = ["QueryHTTPFileSystem"]


class QueryHTTPFileSystem(HTTPFileSystem):
    """An fsspec HTTP file system that sends a fixed query string with every request.

    For pre-signed and token URLs: the store's keys are joined to the URL's
    path and the query (``token=...``, a signature) is appended to each
    request exactly as given (no re-encoding, which would break signatures).

    Parameters
    ----------
    url_query : str
        The query string, without the leading ``?``.
    **kwargs
        Options of :class:`fsspec.implementations.http.HTTPFileSystem`.
    """

    def __init__(self, *args: Any, url_query: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url_query = url_query

    async def set_session(self) -> Any:
        """Return the aiohttp session; it is closed when this file system goes, or at exit."""
        new = self._session is None
        session = await super().set_session()
        if new and self.asynchronous:  # fsspec registers this only for synchronous use
            weakref.finalize(self, self.close_session, self.loop, session)
        return session

    def encode_url(self, url: str) -> Any:
        """Return the URL to request: ``url`` (encoded as usual), then the query as given."""
        encoded = super().encode_url(url)
        if not self.url_query or encoded.query_string:
            return encoded
        return yarl.URL(f"{encoded}?{self.url_query}", encoded=True)
