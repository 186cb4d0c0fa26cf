"""Keep credentials out of the session record.

Image sources are written to the record so that a later session can re-open
them; a URL may carry a password (``https://user:pass@host/...``), a token
(``?token=...``) or a signature (pre-signed S3 URLs). These helpers remove
them. Settings whose *name* says they hold a secret are refused outright.
The helpers live in :mod:`napari_fbias.io.credentials` (readers name their
sources without credentials too) and are re-exported here.
"""

from __future__ import annotations

from napari_fbias.io.credentials import (
    SECRET_WORDS,
    find_secrets,
    is_secret_name,
    sanitize_uri,
    scrub_text,
)

__all__ = ["SECRET_WORDS", "find_secrets", "is_secret_name", "sanitize_uri", "scrub_text"]
