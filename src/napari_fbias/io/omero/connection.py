"""One object per OMERO login: :class:`OmeroConnection`, and the registry of open ones.

An :class:`OmeroConnection` owns the omero-py ``BlitzGateway`` of a session.
It is created by logging in with a password (:meth:`OmeroConnection.login`),
by joining an existing session (:meth:`OmeroConnection.join`), or by reusing
the session the OMERO CLI holds (:meth:`OmeroConnection.from_cli_session`).

Secrets: a password is used for the one login call and never kept (the
gateway is built on an already logged-in ``omero.client``, so omero-py does
not keep it either); the session key is kept in memory only, for
:meth:`reconnect`. Neither is ever written to disk or logs, and ``repr()``
shows neither.

Lost connections (server restart, expired session...) raise
:class:`~napari_fbias.io.omero.errors.OmeroConnectionError`;
:meth:`OmeroConnection.reconnect` replaces the session in place, so browse
nodes and lazily opened images that refer to the connection keep working.

Readers find a connection by host through :func:`get_connection`; logging in
registers it there.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from napari_fbias.io.omero.availability import omero_available, require_omero
from napari_fbias.io.omero.clisessions import find_cli_sessions
from napari_fbias.io.omero.errors import (
    OmeroAuthenticationError,
    OmeroConnectionError,
    OmeroError,
    OmeroNotInstalledError,
    OmeroNotLoggedInError,
    classify_exception,
    translate,
)
from napari_fbias.io.omero.uri import DEFAULT_PORT

logger = logging.getLogger(__name__)

#: Group id meaning "all groups I am a member of" (read-only browsing across groups).
ALL_GROUPS = -1
#: Seconds between keep-alive pings omero-py sends in the background.
DEFAULT_KEEPALIVE_S = 60

PasswordCallback = Callable[["OmeroConnection"], "str | None"]


@dataclass(frozen=True)
class OmeroBackend:
    """How to make an ``omero.client`` and a ``BlitzGateway``.

    The default uses omero-py; tests pass the fake from
    ``tests/fakes/fake_blitz.py``, which offers the same methods.

    Attributes
    ----------
    make_client : callable
        ``make_client(host, port) -> client``; ``host`` may be a
        ``wss://host/omero-ws`` URL (then ``port`` is None).
    make_gateway : callable
        ``make_gateway(client) -> gateway`` for a client that has a session.
    """

    make_client: Callable[[str, int | None], Any]
    make_gateway: Callable[[Any], Any]


def default_backend() -> OmeroBackend:
    """Return the omero-py backend (raises a clear message if omero-py is missing)."""
    require_omero("omero.clients")
    gateway_mod = require_omero("omero.gateway")

    def make_client(host: str, port: int | None) -> Any:
        import omero

        if port is None:
            return omero.client(host=host)
        return omero.client(host=host, port=int(port))

    def make_gateway(client: Any) -> Any:
        return gateway_mod.BlitzGateway(client_obj=client)

    return OmeroBackend(make_client=make_client, make_gateway=make_gateway)


def split_address(address: str, port: int | None = None) -> tuple[str, str, int | None]:
    """Split what a user typed as "server" into (host, client address, port).

    ``"omero.example.org"`` -> ``("omero.example.org", "omero.example.org", 4064)``;
    ``"wss://omero.example.org/omero-ws"`` -> ``("omero.example.org", <the URL>, None)``
    (websockets: the port is part of the URL); ``"host:4063"`` -> ``("host", "host", 4063)``.
    """
    address = address.strip()
    if not address:
        raise OmeroConnectionError("no OMERO server given")
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme.lower() not in ("ws", "wss", "tcp", "ssl") or not parts.hostname:
            raise OmeroConnectionError(
                f"cannot connect to {address!r}: expected a host name, HOST:PORT or a websocket "
                "URL such as wss://HOST/omero-ws"
            )
        return parts.hostname.lower(), address, None
    host, sep, port_text = address.rpartition(":")
    if sep and port_text.isdigit() and host:
        return host.lower(), host, int(port_text)
    return address.lower(), address, port if port is not None else DEFAULT_PORT


class OmeroConnection:
    """An OMERO session: owns the BlitzGateway and the (in-memory) session key.

    Create one with :meth:`login`, :meth:`join` or :meth:`from_cli_session`.

    Parameters
    ----------
    address : str
        Host name, ``HOST:PORT`` or websocket URL (``wss://HOST/omero-ws``).
    port : int, optional
        Router port (default 4064, ignored for websocket URLs).
    backend : OmeroBackend, optional
        omero-py (default) or a test fake.
    keepalive_s : int
        Background keep-alive period given to omero-py (0 disables it).
    password_callback : callable, optional
        ``callback(connection) -> password or None``: asked by
        :meth:`reconnect` when the session cannot be rejoined.
    """

    def __init__(
        self,
        address: str,
        *,
        port: int | None = None,
        backend: OmeroBackend | None = None,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        password_callback: PasswordCallback | None = None,
    ) -> None:
        self.host, self._address, self.port = split_address(address, port)
        self._backend = backend
        self.keepalive_s = int(keepalive_s)
        self.password_callback = password_callback
        self.user: str | None = None
        self.group_id: int | None = None
        self._client: Any = None
        self._gateway: Any = None
        self.__session_key: str | None = None
        self._owns_session = False
        self._lost = False
        self._closed = False
        self._lock = threading.RLock()
        #: Incremented on every (re)connection; pixel store pools compare it.
        self.generation = 0
        self._close_hooks: weakref.WeakSet[Any] = weakref.WeakSet()

    # --- constructors ----------------------------------------------------------------------
    @classmethod
    def login(
        cls,
        address: str,
        user: str,
        password: str,
        *,
        port: int | None = None,
        group: int | str | None = None,
        backend: OmeroBackend | None = None,
        register: bool = True,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        password_callback: PasswordCallback | None = None,
    ) -> OmeroConnection:
        """Log in with a user name and password.

        The password is passed to the server once and not kept anywhere.

        Parameters
        ----------
        address : str
            Host name, ``HOST:PORT`` or ``wss://HOST/omero-ws``.
        user, password : str
            OMERO credentials.
        port : int, optional
            Router port (default 4064).
        group : int or str, optional
            Group id or name to work in; ``-1`` for all groups (read-only browsing).
        backend : OmeroBackend, optional
            omero-py (default) or a test fake.
        register : bool
            Make it the connection readers use for this host (:func:`get_connection`).
        keepalive_s : int
            Keep-alive period in seconds (0: none).
        password_callback : callable, optional
            Asked for a new password by :meth:`reconnect` when needed.

        Raises
        ------
        OmeroAuthenticationError
            Wrong user name or password.
        OmeroConnectionError
            Server unreachable.
        """
        if not user or not password:
            raise OmeroAuthenticationError(
                f"logging in to {address} needs a user name and a password"
                + ("" if user else " (no user name given)")
                + ("" if password else " (empty password)")
            )
        conn = cls(
            address,
            port=port,
            backend=backend,
            keepalive_s=keepalive_s,
            password_callback=password_callback,
        )
        try:
            conn._open(user=user, password=password)
        finally:
            password = ""
        conn._after_open(group, register)
        return conn

    @classmethod
    def join(
        cls,
        address: str,
        session_key: str,
        *,
        port: int | None = None,
        group: int | str | None = None,
        backend: OmeroBackend | None = None,
        register: bool = True,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        password_callback: PasswordCallback | None = None,
    ) -> OmeroConnection:
        """Join an existing session by its key (from OMERO.web, the CLI, a colleague's login).

        Closing this connection leaves the session open for its other users.
        """
        conn = cls(
            address,
            port=port,
            backend=backend,
            keepalive_s=keepalive_s,
            password_callback=password_callback,
        )
        conn._open(session_key=session_key)
        conn._after_open(group, register)
        return conn

    @classmethod
    def from_cli_session(
        cls,
        host: str | None = None,
        user: str | None = None,
        *,
        sessions_dir: str | Path | None = None,
        group: int | str | None = None,
        backend: OmeroBackend | None = None,
        register: bool = True,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        password_callback: PasswordCallback | None = None,
    ) -> OmeroConnection:
        """Reuse the session that ``omero login`` stored (read-only; nothing is written).

        Tries the CLI's last session for the host/user first, then older ones.

        Raises
        ------
        OmeroNotLoggedInError
            No stored session, or none is still valid on the server.
        """
        candidates = find_cli_sessions(host, user, directory=sessions_dir)
        if not candidates:
            from napari_fbias.io.omero.clisessions import find_cli_session

            find_cli_session(host, user, directory=sessions_dir)  # raises the clear message
        last_error: OmeroError | None = None
        for found in candidates:
            conn = cls(
                found.host,
                port=found.port,
                backend=backend,
                keepalive_s=keepalive_s,
                password_callback=password_callback,
            )
            try:
                conn._open(session_key=found.key)
            except OmeroAuthenticationError as exc:  # expired key: try an older one
                last_error = exc
                continue
            conn._after_open(group if group is not None else found.group, register)
            return conn
        who = f"{user}@{host}" if user else str(host or candidates[0].host)
        raise OmeroNotLoggedInError(
            f"the `omero login` sessions stored for {who} have expired ({last_error}); run "
            "`omero login` again or log in with a password"
        )

    # --- state ---------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """What the client connects to (host name or websocket URL)."""
        return self._address

    @property
    def session_key(self) -> str | None:
        """Key of the current session (in memory only; never log or store it)."""
        return self.__session_key

    @property
    def is_connected(self) -> bool:
        """True while the session is open and was not found lost."""
        return self._gateway is not None and not self._lost and not self._closed

    @property
    def gateway(self) -> Any:
        """The omero-py ``BlitzGateway`` of this session.

        Raises
        ------
        OmeroConnectionError
            When the connection was closed or found lost (call :meth:`reconnect`).
        """
        if self._closed:
            raise self._closed_error()
        if self._gateway is None or self._lost:
            raise OmeroConnectionError(
                f"the connection to OMERO server {self.host} was lost (server restart or expired "
                "session); call reconnect() or log in again"
            )
        return self._gateway

    @property
    def service_opts(self) -> Any:
        """The gateway's ``SERVICE_OPTS`` (call context, holds ``omero.group``)."""
        return self.gateway.SERVICE_OPTS

    def context_for_group(self, group_id: int | None) -> dict[str, str]:
        """Return an Ice call context that reads objects of ``group_id``."""
        ctx = {k: str(v) for k, v in dict(self.service_opts).items()}
        if group_id is not None:
            ctx["omero.group"] = str(group_id)
        return ctx

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.is_connected else "lost")
        return (
            f"OmeroConnection(host={self.host!r}, port={self.port}, user={self.user!r}, "
            f"group={self.group_id}, {state})"
        )

    def __enter__(self) -> OmeroConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- errors ---------------------------------------------------------------------------
    def _closed_error(self) -> OmeroConnectionError:
        """Return the error for using this connection after :meth:`close`.

        Returns
        -------
        OmeroConnectionError
            Saying the connection to this host was closed and to log in again.
        """
        return OmeroConnectionError(
            f"the connection to OMERO server {self.host} was closed; log in again"
        )

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Translate Ice/OMERO exceptions raised inside the block into our errors.

        A lost connection marks this connection lost (``is_connected`` False)
        until :meth:`reconnect`.

        Parameters
        ----------
        action : str
            What is being done, for the message (``"listing Projects"``).
        """
        try:
            yield
        except OmeroError:
            raise
        except Exception as exc:
            err = translate(exc, self.host, action)
            if err is None:
                raise
            if isinstance(err, OmeroConnectionError) and type(exc).__name__ != (
                "ObjectNotExistException"
            ):
                self._lost = True
            raise err from exc

    # --- session life cycle ----------------------------------------------------------------
    def _backend_or_default(self) -> OmeroBackend:
        if self._backend is None:
            self._backend = default_backend()
        return self._backend

    def _open(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        session_key: str | None = None,
    ) -> None:
        """Create a client and a session (password or key), then the gateway."""
        backend = self._backend_or_default()
        action = f"logging in as {user}" if user else "joining a session"
        client = None
        try:
            client = backend.make_client(self._address, self.port)
            if session_key is not None:
                client.joinSession(session_key)
            else:
                client.createSession(user, password)
            key = client.getSessionId()
            gateway = backend.make_gateway(client)
            if self.keepalive_s > 0:
                client.enableKeepAlive(self.keepalive_s)
        except Exception as exc:
            password = None
            if client is not None:
                _quietly(client.__del__)
            kind = classify_exception(exc)
            if kind == "auth" or (kind == "connection" and "Session" in type(exc).__name__):
                what = "session key" if session_key is not None else "user name or password"
                raise OmeroAuthenticationError(
                    f"OMERO server {self.host} refused the {what} ({type(exc).__name__}); "
                    + (
                        "the session may have expired: log in again"
                        if session_key is not None
                        else "check them and try again"
                    )
                ) from exc
            if kind == "connection" or type(exc).__name__ in ("ClientError", "DNSException"):
                raise OmeroConnectionError(
                    f"cannot reach OMERO server {self._address} port {self.port or '(from URL)'} "
                    f"while {action} ({type(exc).__name__}); check the host name, port and "
                    "network/VPN"
                ) from exc
            raise
        with self._lock:
            self._client = client
            self._gateway = gateway
            self.__session_key = key
            self._owns_session = session_key is None
            self._lost = False
            self._closed = False
            self.generation += 1
        with self.errors("reading the session's user and group"):
            ctx = gateway.getEventContext()
            self.user = str(ctx.userName)
            if self.group_id is None:
                self.group_id = int(ctx.groupId)
        logger.info("connected to OMERO %s as %s", self.host, self.user)

    def _after_open(self, group: int | str | None, register: bool) -> None:
        if group is not None:
            self.set_group(group)
        if register:
            register_connection(self)

    def _discard_session(self, *, keep_session: bool) -> None:
        """Drop the current client; ``keep_session`` leaves the server session open."""
        client, gateway = self._client, self._gateway
        self._client = None
        self._gateway = None
        for hook in list(self._close_hooks):
            _quietly(hook.invalidate)
        if client is None:
            return
        if keep_session:
            _quietly(lambda: client.getSession().detachOnDestroy())
        if gateway is not None:
            _quietly(lambda: gateway.close(hard=False))
        _quietly(client.__del__)

    def keepalive(self) -> bool:
        """Ping the server now; return True if the session is alive.

        A failed ping marks the connection lost (see :meth:`reconnect`).
        """
        if self._closed or self._gateway is None:
            return False
        try:
            with self.errors("keeping the session alive"):
                self._client.getSession().keepAllAlive([])
        except OmeroError:
            return False
        return not self._lost

    def check(self) -> None:
        """Raise :class:`OmeroConnectionError` unless the session answers."""
        if not self.keepalive():
            _ = self.gateway  # raises the closed/lost message
            raise OmeroConnectionError(f"OMERO server {self.host} does not answer")

    def reconnect(
        self,
        *,
        session_key: str | None = None,
        password: str | None = None,
        password_callback: PasswordCallback | None = None,
    ) -> None:
        """Open a new session in place of a lost one, keeping everything else.

        Tries, in order: ``session_key`` if given, the last session key (if
        the session survived, e.g. a network blip), then a password (given,
        or asked from ``password_callback`` / the connection's callback).
        The group selection, registry entry and every object that refers to
        this connection stay valid.

        Raises
        ------
        OmeroAuthenticationError
            When no key works and no (valid) password is available.
        OmeroConnectionError
            When the server cannot be reached.
        """
        if self._closed:
            raise self._closed_error()
        with self._lock:
            own_key = self.__session_key if self._owns_session else None
            keys = [k for k in (session_key, self.__session_key) if k]
            group = self.group_id
            self._discard_session(keep_session=True)
            self._lost = True
            last: OmeroError | None = None
            for key in dict.fromkeys(keys):
                try:
                    self._open(session_key=key)
                    self._owns_session = key == own_key
                    break
                except OmeroAuthenticationError as exc:
                    last = exc
            else:
                callback = password_callback or self.password_callback
                if password is None and callback is not None:
                    password = callback(self)
                if password is None or self.user is None:
                    raise OmeroAuthenticationError(
                        f"cannot reconnect to OMERO server {self.host}: the session is gone "
                        f"({last}) and no password was given; log in again"
                    )
                try:
                    self._open(user=self.user, password=password)
                finally:
                    password = None
            if group is not None:  # a new session starts in the user's default group
                self._apply_group(group)
        logger.info("reconnected to OMERO %s", self.host)

    def close(self) -> None:
        """End this connection and drop it from the registry.

        A session this connection created with a password is closed on the
        server; a joined one (key, CLI) is left open for its other users.
        """
        unregister_connection(self)
        with self._lock:
            self._discard_session(keep_session=not self._owns_session)
            self._closed = True
            self.__session_key = None

    def add_close_hook(self, obj: Any) -> None:
        """Call ``obj.invalidate()`` when the session is closed or replaced (weakly held)."""
        self._close_hooks.add(obj)

    # --- groups ----------------------------------------------------------------------------
    def groups(self) -> list[tuple[int, str]]:
        """List ``(id, name)`` of the groups the user is a member of."""
        with self.errors("listing groups"):
            return [(int(g.getId()), str(g.getName())) for g in self.gateway.getGroupsMemberOf()]

    def set_group(self, group: int | str) -> int:
        """Work in a group (by id or name); ``-1`` browses all the user's groups.

        Returns
        -------
        int
            The group id now in use.
        """
        gid = self._group_id_of(group)
        self._apply_group(gid)
        self.group_id = gid
        return gid

    def _group_id_of(self, group: int | str) -> int:
        if isinstance(group, str) and not group.lstrip("-").isdigit():
            for gid, name in self.groups():
                if name == group:
                    return gid
            raise OmeroError(
                f"user {self.user} is not a member of a group called {group!r} on {self.host}; "
                f"groups: {', '.join(n for _, n in self.groups())}"
            )
        return int(group)

    def _apply_group(self, gid: int) -> None:
        gw = self.gateway
        with self.errors(f"switching to group {gid}"):
            if gid != ALL_GROUPS:
                switched = gw.setGroupForSession(gid)
                if switched is False:
                    raise OmeroError(
                        f"user {self.user} is not a member of group {gid} on {self.host}"
                    )
            gw.SERVICE_OPTS.setOmeroGroup(str(gid))

    # --- services used by the readers ------------------------------------------------------
    def create_raw_pixels_store(self) -> Any:
        """Return a new RawPixelsStore proxy (not thread safe: one user at a time)."""
        with self.errors("opening a pixel store"):
            return self.gateway.c.sf.createRawPixelsStore()


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as exc:  # cleanup of a possibly dead session: never fatal
        logger.debug("ignored while closing an OMERO session: %s", type(exc).__name__)


# --- the registry of open connections ---------------------------------------------------------
_REGISTRY: dict[str, OmeroConnection] = {}
_REGISTRY_LOCK = threading.Lock()


def register_connection(conn: OmeroConnection, *aliases: str) -> None:
    """Make ``conn`` the connection used for its host (and ``aliases``, e.g. the web host)."""
    with _REGISTRY_LOCK:
        for name in (conn.host, *aliases):
            _REGISTRY[name.lower()] = conn


def unregister_connection(conn: OmeroConnection) -> None:
    """Remove ``conn`` from the registry (under every name it was registered)."""
    with _REGISTRY_LOCK:
        for name in [k for k, v in _REGISTRY.items() if v is conn]:
            del _REGISTRY[name]


def get_connection(host: str) -> OmeroConnection:
    """Return the open connection for ``host``.

    Raises
    ------
    OmeroNotLoggedInError
        When nobody logged in to that host in this process.
    OmeroNotInstalledError
        When nobody did and omero-py (the ``omero`` extra) is not installed.
    """
    key = host.lower()
    with _REGISTRY_LOCK:
        conn = _REGISTRY.get(key)
    if conn is None:
        if not omero_available():  # logging in needs omero-py: say that first
            raise OmeroNotInstalledError()
        raise OmeroNotLoggedInError(
            f"log in to {host} first (napari: OMERO widget; CLI: `omero login`, "
            "`fbias run --omero-user USER` or OMERO_SESSION_KEY)"
        )
    return conn


def connections() -> dict[str, OmeroConnection]:
    """Return a snapshot of the registry (name -> connection)."""
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)
