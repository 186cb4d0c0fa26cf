"""Helpers for shared-session tests: an analyst in a separate process, a moto S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from napari_fbias.session.model import Session

#: One analyst recording into a shared session from its own process (argv: link, name, steps,
#: number of approaches to wait for). Prints "ack <i>" after each acknowledged step, then the
#: session it sees once every analyst's approach has arrived, as JSON.
ANALYST = textwrap.dedent(
    """
    import json, sys, time
    from napari_fbias.session import ImageRef, open_session

    link, name, steps, expect = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rec = open_session(link, analysts=[name])
    rec.add_image(ImageRef(name="img", source="/data/img.tif", axes="yx", shape=(16, 16)))
    key = rec.add_approach(f"{name}'s way", name)
    print("approach", key, rec.client, flush=True)
    for i in range(steps):
        rec.record_step("preprocess.gaussian", {"sigma": 1 + i / 10}, {"image": "img"},
                        f"{name} g{i}")
        rec.add_issue(f"{name} issue {i}")
        if i % 3 == 0:
            rec.sync()
        print("ack", i, flush=True)
    rec.set_notes(f"{name} is done")
    assert rec.flush(60), rec.sync_status
    deadline = time.monotonic() + 120
    def done():
        s = rec.session
        return (len(s.approaches) >= expect
                and sum(a.notes.endswith(" is done") for a in s.approaches) >= expect)
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)
        rec.sync()
    d = rec.session.to_dict()
    d.pop("active")
    print("session " + json.dumps(d, sort_keys=True), flush=True)
    rec.close()
    """
)


def digest(session: Session) -> dict[str, Any]:
    """Return a session as a dict without the per-client ``active`` field."""
    d = json.loads(json.dumps(session.to_dict(), sort_keys=True))
    d.pop("active")
    return d


def start_analyst(
    tmp_path: Any, link: str, name: str, steps: int, expect: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start one analyst's process."""
    script = tmp_path / "analyst.py"
    if not script.exists():
        script.write_text(ANALYST)
    return subprocess.Popen(
        [sys.executable, str(script), link, name, str(steps), str(expect)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
    """Wait for an analyst's process; return its acks, approach and final session."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = {"acks": 0}
    for line in out.splitlines():
        if line.startswith("ack "):
            result["acks"] += 1
        elif line.startswith("approach "):
            _, result["key"], result["client"] = line.split()
        elif line.startswith("session "):
            result["session"] = json.loads(line[len("session ") :])
    return result


@contextmanager
def moto_s3(bucket: str) -> Iterator[dict[str, str]]:
    """Run a moto S3 server on 127.0.0.1 with ``bucket``; yield the environment that reaches it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        yield env
    finally:
        server.stop()
