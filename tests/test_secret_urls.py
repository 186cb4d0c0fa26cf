"""What counts as a secret in a URL, checked on generated URLs and texts (hypothesis).

The rules are in ``docs/architecture.md`` ("What counts as a secret"): all
user information (everything before the last ``@`` followed by the host,
whatever the password holds) and every query or fragment value not known to
be harmless. Generated URLs carry passwords with ``/``, ``?``, ``#``, ``@``,
quotes and spaces (as pasted, not percent-encoded) and secret parameters
under any name; the sanitized URL must be exactly the URL without them, the
scan must find every one, and find nothing once scrubbed. Everything runs in
linear time: long adversarial inputs are timed.
"""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from napari_fbias.io.credentials import find_secrets, sanitize_uri, scrub_text, secret_parts
from napari_fbias.io.text_limits import MAX_NAME, bound_text, limit_text, printable_text

SCHEMES = st.sampled_from(["http", "https", "s3", "gs", "omero", "wss"])
LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
HOST = st.builds(
    lambda labels, port: ".".join(labels) + (f":{port}" if port else ""),
    st.lists(LABEL, min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(1, 65535)),
)
PATH = st.lists(
    st.text(string.ascii_letters + string.digits + "._-~:", min_size=1, max_size=10), max_size=4
).map(lambda segs: "".join("/" + s for s in segs))
USER = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True)
#: What people paste as passwords: anything printable, not percent-encoded.
PASSWORD_CHARS = string.ascii_letters + string.digits + "/?#@:%+=&!$'()*,;._~-\"[]{}|^`\\<> "
PASSWORD = st.text(PASSWORD_CHARS, min_size=1, max_size=40).filter(lambda p: "://" not in p)
TOKEN = st.text(string.ascii_letters + string.digits + "-_.~/+:", min_size=8, max_size=60).filter(
    lambda t: any(c.isalpha() for c in t) and t[-1].isalnum()
)
SECRET_NAMES = st.sampled_from(
    [
        "token",
        "access_token",
        "jwt",
        "pw",
        "pass",
        "code",
        "password",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "sig",
        "bsession",
        "apiKey",
    ]
)
#: Unknown names: their values are secret too unless they are small numbers.
OTHER_NAMES = st.from_regex(r"q_[a-z]{1,8}", fullmatch=True)
KEPT_ITEMS = st.builds(
    lambda n, v: f"{n}={v}",
    st.sampled_from(["v", "version", "format", "x", "page", "frame", "z", "X-Amz-Algorithm"]),
    st.integers(0, 999).map(str),
)
DROPPED_ITEMS = st.builds(lambda n, v: f"{n}={v}", st.one_of(SECRET_NAMES, OTHER_NAMES), TOKEN)


@st.composite
def urls(draw: st.DrawFn, password: st.SearchStrategy[str] = PASSWORD) -> tuple[str, str, bool]:
    """A URL with maybe credentials and secret items; its clean form; whether it had secrets."""
    scheme, host, path = draw(SCHEMES), draw(HOST), draw(PATH)
    userinfo = draw(
        st.one_of(
            st.just(""),
            USER,
            st.builds(lambda u, p: f"{u}:{p}", USER, password),
        )
    )
    items = draw(st.lists(st.one_of(KEPT_ITEMS, DROPPED_ITEMS), max_size=5))
    kept = [it for it in items if it.split("=")[0] in _KEPT_NAMES]
    query = "&".join(items)
    fragment = draw(st.one_of(st.just(""), DROPPED_ITEMS))
    url = f"{scheme}://" + (f"{userinfo}@" if userinfo else "") + host + path
    url += f"?{query}" if items else ""
    url += f"#{fragment}" if fragment else ""
    clean = f"{scheme}://{host}{path}" + (f"?{'&'.join(kept)}" if kept else "")
    return url, clean, url != clean


_BREAKS = " '\"<>\\`"
_KEPT_NAMES = {"v", "version", "format", "x", "page", "frame", "z", "X-Amz-Algorithm"}
WORDS = st.lists(
    st.text(string.ascii_letters + string.digits + ",.;()!?-'\"", min_size=1, max_size=12),
    max_size=6,
).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(urls())
@example(
    ("s3://AKIAIOSFODNN7EXAMPLE:wJal/K7MDENG/bPxRfiCY@bucket/a.zarr", "s3://bucket/a.zarr", True)
)
@example(("https://alice:pa#PW@host/x.zarr", "https://host/x.zarr", True))
@example(("https://alice:pa?PW@host/x.zarr", "https://host/x.zarr", True))
@example(("https://AKIA:12/ab@bucket/x", "https://bucket/x", True))
@example(("https://h.org/x?jwt=abc&pw=a1&pass=b2&code=c3&v=2", "https://h.org/x?v=2", True))
def test_sanitize_uri_removes_exactly_the_credentials(case: tuple[str, str, bool]) -> None:
    url, clean, secret = case
    assert sanitize_uri(url) == clean
    assert sanitize_uri(clean) == clean  # idempotent
    assert bool(secret_parts(url)) is secret
    if not any(c in url for c in _BREAKS):  # else it is not one URL in a text
        assert bool(find_secrets(url)) is secret
    assert find_secrets(clean) == []


def _pasted_on_one_line(password: str) -> bool:
    """A password free text can hold: no ``@`` before its first space or quote (see the doc)."""
    cut = min((password.index(c) for c in _BREAKS if c in password), default=len(password))
    return "://" not in password and "@" not in password[:cut]


TEXT_PASSWORD = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters),
    st.text(PASSWORD_CHARS, max_size=40),
).filter(_pasted_on_one_line)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WORDS, urls(TEXT_PASSWORD), WORDS)
@example("see", ("https://alice:pa ss@host/x", "https://host/x", True), "ok")
@example("see", ('https://alice:pa"ss@host/x', "https://host/x", True), "ok")
@example("(", ("https://alice:it's@host/x.zarr", "https://host/x.zarr", True), ").")
def test_scrub_text_removes_credentials_inside_sentences(
    before: str, case: tuple[str, str, bool], after: str
) -> None:
    """A pasted password may hold spaces and quotes (on one line, starting with a letter)."""
    url, clean, secret = case
    text = f"{before} {url} {after}"
    scrubbed = scrub_text(text)
    assert scrubbed == f"{before} {clean} {after}"
    assert bool(find_secrets(text)) is secret
    assert find_secrets(scrubbed) == []


@settings(max_examples=500, deadline=None)
@given(st.text(string.printable + "@:/?#&é\u202e\x00", max_size=300))
@example("x https://u:p&commat;host/x y")
@example("https://host: see a@b.org")
@example("https://u:p@host/a:b@/c")
def test_nothing_secret_is_found_once_scrubbed(text: str) -> None:
    """Whatever the text, the final scan finds nothing in what scrub_text gives."""
    once = scrub_text(text)
    assert find_secrets(once) == [], once
    for f in find_secrets(text):
        assert f.line >= 1 and f.column >= 1 and f.what


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.integers(48, 300))
def test_bound_text_is_bounded_clean_and_keeps_differences(text: str, limit: int) -> None:
    out = bound_text(text, limit)
    assert len(out) <= limit
    assert find_secrets(out) == []
    assert printable_text(out) == out
    out.encode("utf-8")  # no lone surrogate
    if len(printable_text(text)) <= limit and "://" not in text:
        assert out == printable_text(text)


def test_the_cut_marker_keeps_long_values_apart() -> None:
    a, b = "x" * 1000 + "a", "x" * 1000 + "b"
    assert limit_text(a, MAX_NAME) != limit_text(b, MAX_NAME)
    assert MAX_NAME - 3 <= len(limit_text(a, MAX_NAME)) <= MAX_NAME
    cut = len(a) - len(limit_text(a, MAX_NAME).split("…")[0])
    assert limit_text(a, MAX_NAME).endswith(f"[{cut} more characters, sha256 {_sha(a)}]")


def test_printable_text_strips_controls_and_direction_overrides() -> None:
    text = "a\x00b\x1b[31mc\u202ed\u2066e\u200ff\r\ng\rh\ti\ud800"
    assert printable_text(text) == "ab[31mcdef\ng\nh\ti"


@pytest.mark.parametrize(
    ("name", "secret"),
    [("jwt", True), ("pw", True), ("pass", True), ("code", True), ("passes", False)],
)
def test_query_names_from_the_issue_are_secret(name: str, secret: bool) -> None:
    from napari_fbias.io.credentials import is_secret_name

    assert is_secret_name(name) is secret


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _timed(func, *args) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    func(*args)
    return time.perf_counter() - t0


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("https://h.org/ " + "a" * 1_000_000, id="word-after-a-url"),
        pytest.param("a" * 1_000_000 + " https://h.org/", id="word-before-a-url"),
        pytest.param("https://h.org/x?token=" + "a" * 1_000_000, id="long-token"),
        pytest.param("https://a:b" + "@a" * 300_000, id="many-at"),
        pytest.param("a://" * 200_000, id="many-schemes"),
        pytest.param("x" * 500_000 + "://" + "y" * 500_000, id="long-scheme"),
        pytest.param(("https://a:b c " * 50_000), id="many-userinfo-starts"),
    ],
)
def test_scanning_takes_linear_time(text: str) -> None:
    """1 MB of adversarial text takes well under a second (it took minutes: issue 16)."""
    assert _timed(scrub_text, text) < 5
    assert _timed(find_secrets, text) < 5
    assert _timed(bound_text, text, 20_000) < 5
