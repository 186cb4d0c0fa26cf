"""Remote OME-Zarr over a real HTTP server and a real (moto) S3 server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers.http_server import FolderServer, free_port, silent_server
from helpers.ome_zarr_stores import add_raw_labels, ngff_multiscales, raw_store
from napari_fbias.io.errors import NotOmeZarrError, UnreachableSourceError
from napari_fbias.io.ome_zarr_read import is_ome_zarr, read_ome_zarr
from napari_fbias.io.open import open_image
from napari_fbias.io.remote import is_remote

RNG = np.random.default_rng(1)


def _store(root: Path, version: str = "0.4", *, chunks: tuple[int, ...] = (16, 16)) -> np.ndarray:
    data = RNG.integers(0, 255, (64, 64), dtype=np.uint8)
    path = raw_store(
        root / "img.zarr",
        [data, data[::2, ::2]],
        {"multiscales": [ngff_multiscales("yx", 2, version=version)]},
        version=version,
        chunks=chunks,
    )
    add_raw_labels(
        path,
        "mask",
        [(data > 128).astype(np.uint8)],
        {"multiscales": [ngff_multiscales("yx", 1, version=version)], "image-label": {}},
        version=version,
    )
    return data


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_http_open_is_lazy_and_reads_the_data(
    tmp_path: Path, http_folder: FolderServer, version: str
) -> None:
    data = _store(tmp_path, version)
    url = http_folder.url_for("img.zarr")

    img = read_ome_zarr(url)
    assert img.source == url
    assert img.shape == (64, 64) and len(img.levels) == 2
    assert list(img.labels) == ["mask"]
    # lazy: only metadata was fetched, and not much of it
    assert http_folder.chunk_requests() == []
    assert len(http_folder.metadata_requests()) <= 10

    np.testing.assert_array_equal(img.data.compute(), data)
    assert len(http_folder.chunk_requests()) == 16  # 64x64 in 16x16 chunks
    np.testing.assert_array_equal(img.labels["mask"].data.compute(), data > 128)


def test_http_chunks_are_fetched_concurrently(tmp_path: Path, http_folder: FolderServer) -> None:
    data = _store(tmp_path)
    img = open_image(http_folder.url_for("img.zarr"))
    img.levels[1].compute()  # warm up (codec imports, HTTP session) on other chunks
    http_folder.delay = 0.1
    http_folder.reset()
    n_chunks = 16

    t0 = time.perf_counter()
    out = img.data.compute()
    elapsed = time.perf_counter() - t0

    np.testing.assert_array_equal(out, data)
    assert len(http_folder.chunk_requests()) == n_chunks
    assert http_folder.max_concurrent > 1
    assert elapsed < 0.5 * n_chunks * 0.1, f"{n_chunks} chunks took {elapsed:.2f}s"


def test_http_missing_path_is_not_ome_zarr(http_folder: FolderServer) -> None:
    url = http_folder.url_for("nothing.zarr")
    with pytest.raises(NotOmeZarrError, match=r"nothing\.zarr.*neither zarr.json nor .zattrs"):
        read_ome_zarr(url)
    assert not is_ome_zarr(url)


def test_unreachable_url_fails_fast_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/img.zarr"
    t0 = time.perf_counter()
    with pytest.raises(UnreachableSourceError, match=r"127\.0\.0\.1:\d+/img\.zarr"):
        read_ome_zarr(url, timeout=2)
    assert time.perf_counter() - t0 < 5
    assert not is_ome_zarr(url, timeout=2)


def test_silent_server_times_out() -> None:
    with silent_server() as base:
        url = f"{base}/img.zarr"
        t0 = time.perf_counter()
        with pytest.raises(UnreachableSourceError, match="timed out") as info:
            read_ome_zarr(url, timeout=0.5)
        assert time.perf_counter() - t0 < 5
    assert url in str(info.value)


def test_is_remote() -> None:
    assert is_remote("https://example.org/a.zarr")
    assert is_remote("s3://bucket/a.zarr")
    assert not is_remote("/data/a.zarr")
    assert not is_remote("file:///data/a.zarr")


# --- S3 (moto server: a real S3 API on 127.0.0.1) --------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _upload(folder: Path, endpoint: str, bucket: str, prefix: str, *, public: bool = True) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    # public data are what we open anonymously: public-read ACLs (moto honours them)
    acl = "public-read" if public else "private"
    s3.create_bucket(Bucket=bucket, ACL=acl)
    for f in folder.rglob("*"):
        if f.is_file():
            key = f"{prefix}/{f.relative_to(folder).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=f.read_bytes(), ACL=acl)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_s3_anonymous_with_endpoint_url(tmp_path: Path, s3_endpoint: str, version: str) -> None:
    data = _store(tmp_path, version)
    bucket = f"fbias-{version.replace('.', '')}"
    _upload(tmp_path / "img.zarr", s3_endpoint, bucket, "img.zarr")
    url = f"s3://{bucket}/img.zarr"

    img = open_image(url, storage_options={"endpoint_url": s3_endpoint})
    assert img.source == url
    assert img.metadata["ngff_version"] == version
    np.testing.assert_array_equal(img.data.compute(), data)
    np.testing.assert_array_equal(img.levels[1].compute(), data[::2, ::2])
    assert list(img.labels) == ["mask"]
    assert is_ome_zarr(url, storage_options={"endpoint_url": s3_endpoint})


def test_s3_private_bucket_says_access_denied(tmp_path: Path, s3_endpoint: str) -> None:
    _store(tmp_path)
    _upload(tmp_path / "img.zarr", s3_endpoint, "private", "img.zarr", public=False)
    with pytest.raises(UnreachableSourceError, match=r"access to s3://private/img\.zarr/.* denied"):
        open_image("s3://private/img.zarr", storage_options={"endpoint_url": s3_endpoint})
