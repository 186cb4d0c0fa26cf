"""OmeroConnection against the FAKE gateway: login variants, secrets, groups, loss, reconnect."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

from fakes.fake_blitz import FakeClient, FakeOmeroServer, standard_server, write_cli_session
from napari_fbias.io.omero.browse import list_roots
from napari_fbias.io.omero.clisessions import find_cli_session, sessions_dir
from napari_fbias.io.omero.connection import (
    OmeroConnection,
    connections,
    get_connection,
    split_address,
)
from napari_fbias.io.omero.errors import (
    OmeroAuthenticationError,
    OmeroConnectionError,
    OmeroError,
    OmeroNotLoggedInError,
)
from napari_fbias.io.omero.pixels import open_omero_image

PASSWORD = "secret-pw"


@pytest.fixture
def server() -> FakeOmeroServer:
    return standard_server()


@pytest.fixture
def conn(server):
    c = OmeroConnection.login(server.host, "alice", PASSWORD, backend=server.backend())
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _empty_registry():
    yield
    for c in set(connections().values()):
        c.close()


def _server_session_key(server: FakeOmeroServer) -> str:
    """A session created on the FAKE server by someone else (e.g. `omero login`)."""
    client = FakeClient(server, server.host, 4064)
    client.createSession("alice", PASSWORD)
    key = client.getSessionId()
    server.sessions[key].detached = True  # the CLI detaches, so the session outlives it
    return key


def _strings_reachable(root: object, stop: tuple[type, ...]) -> list[str]:
    """Every str reachable from ``root`` through attributes, containers and closures."""
    seen: set[int] = set()
    found: list[str] = []
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, stop):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append(obj)
        elif isinstance(obj, bytes | int | float | bool | type(None)):
            continue
        elif isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
        else:
            if hasattr(obj, "__dict__"):
                todo.append(vars(obj))
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    todo.append(getattr(obj, slot))
            cells = getattr(obj, "__closure__", None) or ()
            todo.extend(c.cell_contents for c in cells)
    return found


# --- logging in --------------------------------------------------------------------------------
def test_login_with_password_registers_and_keeps_alive(server, conn):
    assert conn.is_connected
    assert conn.user == "alice"
    assert conn.group_id == server.named["lab"]
    assert conn.session_key in server.sessions
    assert get_connection("OMERO.example.org") is conn
    assert server.keepalive_periods == [60]
    assert conn.keepalive()


def test_wrong_password_is_refused_clearly_and_not_registered(server):
    with pytest.raises(
        OmeroAuthenticationError, match="omero.example.org refused the user"
    ) as info:
        OmeroConnection.login(server.host, "alice", "wrong-pw-123", backend=server.backend())
    assert "wrong-pw-123" not in str(info.value)
    # Nothing below the test's own frame still holds the password (tracebacks are kept around).
    tb = info.value.__traceback__.tb_next
    while tb is not None:
        assert "wrong-pw-123" not in _strings_reachable(tb.tb_frame.f_locals, ())
        tb = tb.tb_next
    assert connections() == {}


def test_empty_credentials_are_refused_before_contacting_the_server(server):
    with pytest.raises(OmeroAuthenticationError, match="empty password"):
        OmeroConnection.login(server.host, "alice", "", backend=server.backend())
    with pytest.raises(OmeroAuthenticationError, match="no user name"):
        OmeroConnection.login(server.host, "", PASSWORD, backend=server.backend())
    assert server.calls["createSession"] == 0


def test_unreachable_server_is_a_connection_error(server):
    server.down = True
    with pytest.raises(OmeroConnectionError, match="cannot reach OMERO server omero.example.org"):
        OmeroConnection.login(server.host, "alice", PASSWORD, backend=server.backend())
    with pytest.raises(OmeroConnectionError, match="cannot reach"):
        OmeroConnection.login("other.host", "alice", PASSWORD, backend=standard_server().backend())


def test_websocket_url_and_host_port_forms(server):
    assert split_address("wss://OMERO.example.org/omero-ws") == (
        "omero.example.org",
        "wss://OMERO.example.org/omero-ws",
        None,
    )
    assert split_address("omero.example.org:4063") == (
        "omero.example.org",
        "omero.example.org",
        4063,
    )
    assert split_address("omero.example.org") == ("omero.example.org", "omero.example.org", 4064)
    with pytest.raises(OmeroConnectionError, match="websocket URL"):
        split_address("ftp://x/y")
    c = OmeroConnection.login(
        "wss://omero.example.org/omero-ws", "alice", PASSWORD, backend=server.backend()
    )
    assert c.host == "omero.example.org" and c.port is None
    assert get_connection("omero.example.org") is c


def test_join_by_session_key_leaves_the_session_open_on_close(server, conn):
    key = conn.session_key
    other = OmeroConnection.join(server.host, key, backend=server.backend(), register=False)
    assert other.user == "alice" and other.session_key == key
    other.close()
    assert key in server.sessions  # the joined session is someone else's: not ended
    assert list_roots(conn)  # and the first connection still works


def test_close_ends_our_own_session_and_unregisters(server, conn):
    key = conn.session_key
    conn.close()
    assert key not in server.sessions
    assert connections() == {}
    with pytest.raises(OmeroConnectionError, match="was closed"):
        _ = conn.gateway
    with pytest.raises(OmeroNotLoggedInError):
        get_connection(server.host)
    with pytest.raises(OmeroConnectionError, match="was closed; log in again"):
        conn.reconnect(password=PASSWORD)


def test_bad_session_key_is_refused(server):
    with pytest.raises(OmeroAuthenticationError, match="session may have expired"):
        OmeroConnection.join(server.host, "not-a-key", backend=server.backend())


# --- the OMERO CLI's sessions -------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OMERO_SESSIONDIR", raising=False)
    monkeypatch.delenv("OMERO_USERDIR", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def _tree(root: Path) -> dict[str, tuple[bytes, float]]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
    }


def test_reuses_the_cli_session_read_only(server, home):
    store = home / "omero" / "sessions"
    assert sessions_dir() == store
    key = _server_session_key(server)
    write_cli_session(store, server.host, "alice", key)
    before = _tree(home)
    found = find_cli_session()
    assert (found.host, found.user, found.port, found.key) == (server.host, "alice", 4064, key)
    assert key not in repr(found)
    c = OmeroConnection.from_cli_session(backend=server.backend())
    assert c.user == "alice" and c.session_key == key
    assert get_connection(server.host) is c
    c.close()
    assert key in server.sessions  # the CLI's session survives our close
    assert _tree(home) == before  # nothing written, nothing touched


def test_cli_session_skips_an_expired_key(server, home):
    store = home / "omero" / "sessions"
    good = _server_session_key(server)
    write_cli_session(store, server.host, "alice", good, current=False)
    stale = "0bad0000-0000-0000-0000-000000000000"
    f = write_cli_session(store, server.host, "alice", stale)  # the CLI's "current" one
    os.utime(f, (f.stat().st_atime + 10, f.stat().st_mtime + 10))
    c = OmeroConnection.from_cli_session(server.host, "alice", backend=server.backend())
    assert c.session_key == good


def test_cli_session_missing_or_all_expired(server, home, monkeypatch):
    with pytest.raises(OmeroNotLoggedInError, match="run `omero login alice@omero.example.org`"):
        OmeroConnection.from_cli_session(server.host, "alice", backend=server.backend())
    write_cli_session(home / "omero" / "sessions", server.host, "alice", "expired-key")
    with pytest.raises(OmeroNotLoggedInError, match="have expired"):
        OmeroConnection.from_cli_session(backend=server.backend())
    monkeypatch.setenv("OMERO_SESSIONDIR", str(home / "elsewhere"))
    assert sessions_dir() == home / "elsewhere"
    with pytest.raises(OmeroNotLoggedInError, match="elsewhere"):
        find_cli_session(server.host)


# --- secrets ----------------------------------------------------------------------------------
def test_password_is_not_retained_and_no_secret_reaches_a_file(server, home, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        conn = OmeroConnection.login(
            server.host, "alice", PASSWORD, backend=server.backend(), register=True
        )
        key = conn.session_key
        img = open_omero_image(f"omero://{server.host}/Image:{server.named['b']}")
        img.data.compute()
        list_roots(conn)
        server.drop_connections()
        conn.reconnect()
        server.restart()
        conn.reconnect(password_callback=lambda c: PASSWORD)
        new_key = conn.session_key
        reachable = _strings_reachable(conn, stop=(FakeOmeroServer,))
        assert not [s for s in reachable if PASSWORD in s]
        text = repr(conn) + repr(img) + str(img.describe()) + str(dict(img.metadata))
        assert PASSWORD not in text and key not in text and new_key not in text
        conn.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    assert log_file.read_text()  # something was logged, and it is clean
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for secret in (PASSWORD, key, new_key):
                assert secret.encode() not in data, f"{secret[:3]}... written to {f}"


# --- groups -------------------------------------------------------------------------------------
def test_group_selection_by_name_id_and_all_groups(server, conn):
    names = [p.name for p in list_roots(conn) if p.kind == "Project"]
    assert names == ["P1", "P2"]
    assert conn.set_group("other") == server.named["other"]
    assert [p.name for p in list_roots(conn) if p.kind == "Project"] == ["OtherP"]
    assert conn.set_group(-1) == -1
    assert conn.gateway.SERVICE_OPTS.getOmeroGroup() == "-1"
    assert [p.name for p in list_roots(conn) if p.kind == "Project"] == ["OtherP", "P1", "P2"]
    with pytest.raises(OmeroError, match="not a member of a group called 'nope'.*lab, other"):
        conn.set_group("nope")
    with pytest.raises(OmeroError, match="not a member of group 999"):
        conn.set_group(999)


def test_login_straight_into_a_group(server):
    c = OmeroConnection.login(
        server.host, "alice", PASSWORD, group="other", backend=server.backend()
    )
    assert c.group_id == server.named["other"]


# --- losing the connection ------------------------------------------------------------------
def test_not_logged_in_message():
    with pytest.raises(OmeroNotLoggedInError) as info:
        get_connection("nowhere.example.org")
    assert str(info.value) == (
        "log in to nowhere.example.org first (napari: OMERO widget; CLI: `omero login`, "
        "`fbias run --omero-user USER` or OMERO_SESSION_KEY)"
    )


def test_server_restart_gives_a_clear_error_then_reconnect_keeps_state(server, conn):
    conn.set_group("other")
    server.restart()
    with pytest.raises(OmeroConnectionError, match="lost the connection.*reconnect"):
        list_roots(conn)
    assert not conn.is_connected and not conn.keepalive()
    with pytest.raises(OmeroConnectionError, match="call reconnect"):
        _ = conn.gateway
    with pytest.raises(OmeroAuthenticationError, match="no password was given"):
        conn.reconnect()
    asked = []
    conn.reconnect(password_callback=lambda c: asked.append(c.host) or PASSWORD)
    assert asked == [server.host]
    assert conn.is_connected and get_connection(server.host) is conn
    assert conn.group_id == server.named["other"]
    assert [p.name for p in list_roots(conn) if p.kind == "Project"] == ["OtherP"]


def test_expired_session_then_reconnect_with_the_stored_callback(server):
    c = OmeroConnection.login(
        server.host,
        "alice",
        PASSWORD,
        backend=server.backend(),
        password_callback=lambda _: PASSWORD,
    )
    server.expire_session(c.session_key)
    with pytest.raises(OmeroConnectionError, match="SessionTimeoutException"):
        list_roots(c)
    c.reconnect()
    assert list_roots(c)


def test_network_blip_rejoins_the_same_session_without_a_password(server, conn):
    key = conn.session_key
    server.drop_connections()
    assert not conn.keepalive()
    joins = server.calls["joinSession"]
    conn.reconnect()
    assert server.calls["joinSession"] == joins + 1
    assert conn.session_key == key and conn.keepalive()
    conn.close()
    assert key not in server.sessions  # still our own session: closing ends it


def test_reconnect_when_the_server_stays_down(server, conn):
    server.restart()
    server.down = True
    with pytest.raises(OmeroConnectionError, match="cannot reach"):
        conn.reconnect(password=PASSWORD)


def test_without_omero_py_a_clear_install_message(monkeypatch):
    import sys

    from napari_fbias.io.omero import INSTALL_MESSAGE, OmeroNotInstalledError, omero_available
    from napari_fbias.io.omero.availability import require_omero

    for name in ("omero", "omero.gateway", "omero.clients", "Ice"):
        monkeypatch.setitem(sys.modules, name, None)
    assert not omero_available()
    assert "build_omero_wheels.sh" in INSTALL_MESSAGE
    with pytest.raises(OmeroNotInstalledError, match=r"pip install 'napari-fbias\[omero\]'"):
        require_omero("omero.gateway")
    with pytest.raises(OmeroNotInstalledError, match="build_omero_wheels.sh"):
        OmeroConnection.login("omero.example.org", "alice", PASSWORD)  # the default backend
    assert connections() == {}
