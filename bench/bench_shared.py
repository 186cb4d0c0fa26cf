"""Several analysts, one session: how fast does work travel, what does merging and sharing cost?

Measured in one run:

* **Latency**: from "recorded on A" (``add_issue`` returned) to "visible on B" (B's
  live session shows it; B reads the space every second, as the napari panel does),
  for a local shared folder and for S3 (a moto server on 127.0.0.1 behind a proxy
  that adds ``--delay`` seconds, default 50 ms, to every request). Goals: < 2 s local,
  < 5 s S3.
* **Merge**: three analysts x N events (default 2000 each, recorded by three real
  recorders that read each other now and then), merged from scratch. Reference: the
  same events applied in the same order without the merge's name tables (what a
  single-writer replay does). Goal: < 200 ms.
* **What sharing adds to the journal path**: one recorded note per call, the shared
  recorder against a bare loop that writes, fsyncs and applies the same event with one
  journal and no merge (no recorder checks, no signal, no text rules), alternating. It
  bounds what the sharing bookkeeping costs; the issue's goal (within 10 % of the
  single-writer *recorder*, per step) is measured against that recorder itself, run from
  the git history, by ``bench_record_history.py``.

    python bench/bench_shared.py
    python bench/bench_shared.py --quick     # CI smoke sizes
    python bench/bench_shared.py --only merge --only record   # some parts only
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import Row, add_common_args, print_machine, print_rows

from napari_fbias.session import ImageRef, SessionRecorder, open_session
from napari_fbias.session.errors import SessionFormatError
from napari_fbias.session.events import apply_event
from napari_fbias.session.journal import Journal, encode_event, make_event
from napari_fbias.session.journal_tail import JournalTail
from napari_fbias.session.merge import event_key, merge_events
from napari_fbias.session.secrets import scrub_text


# --- latency ---------------------------------------------------------------------------------
def latency(space: str, n: int) -> list[float]:
    """Seconds from A's add_issue to B seeing it, ``n`` times."""
    a = SessionRecorder.start("bench", user_name="bench", space=space)
    a.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(8, 8)))
    assert a.flush(30), a.sync_status
    b = open_session(a.link, analysts=["B"])
    b.start_live()  # as the napari Session panel does
    out = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            a.add_issue(f"issue {i}")
            while len(b.session.issues) <= i:
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"not visible after 60 s ({b.sync_status})")
                time.sleep(0.002)
            out.append(time.perf_counter() - t0)
            time.sleep(0.3)  # analysts do not type every millisecond
    finally:
        b.close()
        a.close()
    return out


class _Proxy(BaseHTTPRequestHandler):
    """Forward every request to the S3 server after a delay (a slow network)."""

    target: tuple[str, int] = ("127.0.0.1", 0)
    delay = 0.05
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        time.sleep(self.delay)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(*self.target, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@contextmanager
def slow_s3(delay: float):
    """A moto S3 server behind a delaying proxy; sets the AWS environment to reach it."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    handler = type("P", (_Proxy,), {"target": (host, port), "delay": delay})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_address[1]}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="bench")
        yield "s3://bench/space"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proxy.shutdown()
        server.stop()


# --- merge -----------------------------------------------------------------------------------
def three_analysts(folder: Path, n: int) -> list[dict[str, Any]]:
    """Record ``n`` events per analyst with three recorders; return every journal event."""
    first = SessionRecorder.start("merge", user_name="bench", folder=folder, fsync=False)
    first.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(8, 8)))
    recs = [first] + [open_session(folder, analysts=[x], fsync=False) for x in ("B", "C")]
    for r in recs:
        r.sync()
        r.add_approach("bench", r.client[:4])
    for i in range(n):
        for r in recs:
            if i % 10 == 0:
                r.record_step(
                    "preprocess.gaussian", {"sigma": 1 + i / n}, {"image": "img"}, f"L{i}"
                )
            elif i % 3 == 0:
                r.add_issue(f"issue {i}")
            else:
                r.set_notes(f"notes {i}")
            if i % 50 == 0:
                r.sync()
    for r in recs:
        r.close()
    events = []
    for path in sorted((folder / "journals").glob("*.jsonl")):
        events += JournalTail(str(path), path.stem).feed(path.read_bytes())
    return events


def plain_replay(events: list[dict[str, Any]]) -> Any:
    """Apply the events in merged order with no name tables (clashing ones are skipped)."""
    s = None
    for e in sorted(events, key=event_key):
        try:
            s = apply_event(s, e)
        except SessionFormatError:
            continue
    return s


# --- recording overhead ------------------------------------------------------------------------
class SingleWriter:
    """The path the shared recorder replaced: one journal, apply, no merge (the reference)."""

    def __init__(self, folder: Path, fsync: bool = True) -> None:
        self.journal = Journal(folder / "journal.jsonl", fsync=fsync)
        self.session = None
        self._emit("session_started", {"session": {"id": "x", "title": "ref"}})
        self._emit("approach_added", {"approach": {"key": "A", "title": "", "analyst": ""}})

    def _emit(self, name: str, payload: dict[str, Any]) -> None:
        event = make_event(name, self.journal.next_seq, payload)
        line = encode_event(event)
        new = apply_event(self.session, json.loads(line))
        self.journal.append(line)
        self.session = new

    def set_notes(self, text: str) -> None:
        self._emit("note_set", {"approach": "A", "text": scrub_text(text)})


def recording(folder: Path, n: int, fsync: bool) -> tuple[list[float], list[float]]:
    ours = SessionRecorder.start("rec", user_name="bench", folder=folder / "ours", fsync=fsync)
    ours.add_approach("A", "bench")
    ref = SingleWriter(folder / "ref", fsync)
    t_ours, t_ref = [], []
    for i in range(n):
        t0 = time.perf_counter()
        ours.set_notes(f"note {i}")
        t1 = time.perf_counter()
        ref.set_notes(f"note {i}")
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_ref.append(t2 - t1)
    ours.close()
    ref.journal.close()
    return t_ours, t_ref


def merging(folder: Path, n_events: int, repeat: int) -> Row:
    """Time merging three analysts' journals from scratch against a plain replay (median)."""
    events = three_analysts(folder, n_events)
    merge, replay = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        merge_events(events)
        t1 = time.perf_counter()
        plain_replay(events)
        t2 = time.perf_counter()
        merge.append(t1 - t0)
        replay.append(t2 - t1)
    m, r = statistics.median(merge), statistics.median(replay)
    print(f"merge {len(events)} events: {m * 1e3:.0f} ms (plain replay {r * 1e3:.0f} ms)")
    return Row(
        "shared",
        f"merge 3 analysts x {n_events} events ({len(events)} in all) vs plain replay",
        m,
        r,
        goal="< 200 ms",
        met=m < 0.2,
    )


PARTS = ("latency", "merge", "record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeat=3)
    parser.add_argument("--events", type=int, default=2000, help="events per analyst to merge")
    parser.add_argument("--delay", type=float, default=0.05, help="S3 delay per request (s)")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 latency")
    parser.add_argument("--dir", help="folder on the disk to time recording on (default /tmp)")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable; default: all of " + ", ".join(PARTS) + ")",
    )
    args = parser.parse_args()
    parts = set(args.only or PARTS)
    n_lat = 3 if args.quick else 15
    n_events = 100 if args.quick else args.events
    n_rec = 50 if args.quick else 500
    print_machine()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["FBIAS_OUTBOX"] = str(tmp_path / "outbox")

        if "latency" in parts:
            lat = latency(str(tmp_path / "space"), n_lat)
            print(f"local folder: {', '.join(f'{x * 1e3:.0f}' for x in lat)} ms")
            rows.append(
                Row(
                    "shared",
                    "local folder: recorded on A -> visible on B, median",
                    statistics.median(lat),
                    goal="< 2 s",
                    met=max(lat) < 2,
                    note=f"max {max(lat):.2f} s, {len(lat)} events",
                )
            )
        if "latency" in parts and not args.no_s3:
            with slow_s3(args.delay) as space:
                lat = latency(space, n_lat)
            print(f"S3 +{args.delay * 1e3:.0f} ms: {', '.join(f'{x * 1e3:.0f}' for x in lat)} ms")
            rows.append(
                Row(
                    "shared",
                    f"S3 +{args.delay * 1e3:.0f} ms/request: recorded on A -> visible on B, median",
                    statistics.median(lat),
                    goal="< 5 s",
                    met=max(lat) < 5,
                    note=f"max {max(lat):.2f} s, {len(lat)} events",
                )
            )

        if "merge" in parts:
            rows.append(merging(tmp_path / "merge", n_events, args.repeat))
        for fsync in (True, False) if "record" in parts else ():
            where = Path(args.dir) if args.dir else tmp_path
            t_ours, t_ref = recording(Path(tempfile.mkdtemp(dir=where)), n_rec, fsync)
            o, f = statistics.median(t_ours), statistics.median(t_ref)
            how = "with fsync" if fsync else "without fsync (CPU only)"
            print(f"record a note {how}: {o * 1e6:.0f} us shared, {f * 1e6:.0f} us single writer")
            rows.append(
                Row(
                    "shared",
                    f"record one event {how}: shared recorder vs a bare journal loop, median",
                    o,
                    f,
                    note="bound; goal in bench_record_history.py",
                )
            )
    print_rows(rows)


if __name__ == "__main__":
    sys.exit(main())
