"""A FAKE OMERO server and BlitzGateway, for tests only.

No OMERO server can run on the test machines, so the OMERO client code is
tested against this fake. It mimics the parts of omero-py that
``napari_fbias.io.omero`` uses, with the same method names and signatures:

* ``omero.client``: ``createSession``, ``joinSession``, ``getSessionId``,
  ``enableKeepAlive``, ``getSession``, ``sf``, ``closeSession``, ``__del__``;
* ``BlitzGateway``: ``getEventContext``, ``setGroupForSession``,
  ``SERVICE_OPTS.setOmeroGroup``, ``getGroupsMemberOf``, ``getObject(s)``,
  ``listOrphans``, ``getContainerService().getCollectionCount``,
  ``getMaxPlaneSize``, ``getRoiService().findByImage``,
  ``getUpdateService().saveAndReturnObject/saveAndReturnArray``,
  ``deleteObjects``, ``createFileAnnfromLocalFile``, ``close``, ``keepAlive``;
* wrappers (Project, Dataset, Image, Screen, Plate, Well, WellSample,
  Channel, Pixels, FileAnnotation) with ``listChildren``, ``getThumbnail``,
  ``getChannels``, ``getPixelSizeX(units=...)``, ``getPrimaryPixels().getPlane
  /getPlanes/getTiles``, ``listAnnotations``...;
* ``RawPixelsStore`` (``sf.createRawPixelsStore()``): ``setPixelsId`` (checks
  the group in the call context like the server), ``getPlane``/``getTile``
  returning BIG-ENDIAN bytes, resolution levels numbered like OMERO's own
  pyramids (``levels - 1`` = full resolution; ``reversed_levels=True`` gives
  the Bio-Formats order), ``getTileSize``; a store used by two threads at
  once raises, as the rule says it must not be;
* OMERO.tables (``sf.sharedResources().newTable``) capturing real
  ``omero.grid`` columns.

Saving requires REAL omero-py model objects (``RoiI``, ``MaskI``, rtypes,
``*AnnotationLinkI``): the fake checks their types and assigns ids like the
server does. When omero-py is not installed, reading and browsing still work
(with look-alike exception classes); send-back tests are skipped.

Failure simulation: :meth:`FakeOmeroServer.restart` (every open session and
connection dies), :meth:`FakeOmeroServer.expire_session`,
``server.down = True`` (connection refused). Every call is counted in
``server.calls``.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import numpy as np

try:  # real omero-py classes when available (the fake must accept and return them)
    import Glacier2
    import Ice
    import omero
    import omero.api
    import omero.grid
    import omero.model
    from omero.rtypes import rlong, unwrap

    HAVE_OMERO = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_OMERO = False


def _exc_class(module: str, name: str) -> type[Exception]:
    """The real Ice/Glacier2/omero exception class, or a look-alike of the same name."""
    if HAVE_OMERO:
        mod = {"Ice": Ice, "Glacier2": Glacier2, "omero": omero}[module]
        return getattr(mod, name)
    return type(name, (Exception,), {"__module__": module})


ConnectionLostException = _exc_class("Ice", "ConnectionLostException")
ConnectionRefusedException = _exc_class("Ice", "ConnectionRefusedException")
PermissionDeniedException = _exc_class("Glacier2", "PermissionDeniedException")
SessionTimeoutException = _exc_class("omero", "SessionTimeoutException")
SecurityViolation = _exc_class("omero", "SecurityViolation")
ApiUsageException = _exc_class("omero", "ApiUsageException")

DTYPES = {
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "float": "f4",
    "double": "f8",
}
PIXEL_TYPE_OF = {np.dtype(v): k for k, v in DTYPES.items()}
UNIT_TO_MICROMETER = {"NANOMETER": 1e-3, "MICROMETER": 1.0, "MILLIMETER": 1e3, "METER": 1e6}


def _raise(cls: type[Exception], message: str) -> None:
    exc = cls()
    for attr in ("reason", "message"):
        try:
            setattr(exc, attr, message)
        except Exception:
            pass
    if not HAVE_OMERO:
        exc.args = (message,)
    raise exc


# --- the server's state ----------------------------------------------------------------------
@dataclass
class FakeImage:
    """An image on the fake server: full-resolution data as TCZYX plus metadata."""

    id: int
    name: str
    data: np.ndarray  # (t, c, z, y, x), native order
    pixels_id: int
    group: int
    owner: int
    channel_names: list[str]
    colors: list[str]
    windows: list[tuple[float, float]]
    active: list[bool]
    pixel_size: tuple[float | None, float | None, float | None]  # x, y, z
    pixel_unit: str = "MICROMETER"
    pyramid_levels: int = 1
    tile: tuple[int, int] = (256, 256)
    reversed_levels: bool = False
    rendering: bool = True
    external_info: tuple[str, str] | None = None  # (entityType, lsid), like omero-cli-zarr's

    @property
    def pixels_type(self) -> str:
        return PIXEL_TYPE_OF[self.data.dtype]

    def level_data(self, level: int) -> np.ndarray:
        """Level 0 = full resolution; each next level halves y and x (by striding)."""
        step = 2**level
        return self.data[..., ::step, ::step]


@dataclass
class FakeContainer:
    kind: str
    id: int
    name: str
    group: int
    owner: int
    children: list[int] = field(default_factory=list)  # ids of child objects (or wells)


@dataclass
class FakeWell:
    id: int
    plate: int
    row: int
    column: int
    group: int
    owner: int
    images: list[int] = field(default_factory=list)  # one image per field (WellSample)
    sample_ids: list[int] = field(default_factory=list)


@dataclass
class FakeSession:
    key: str
    user: int
    group: int
    alive: bool = True
    detached: bool = False


class FakeOmeroServer:
    """The FAKE server: users, groups, the object graph, pixels, annotations, ROIs.

    Parameters
    ----------
    host : str
        Name the fake answers to (clients for other hosts get "connection refused").
    """

    def __init__(self, host: str = "omero.example.org") -> None:
        self.host = host
        self.down = False
        self.epoch = 0  # bumped by restart(): connections of an older epoch are dead
        self.max_plane_size = (3192, 3192)
        self.tables_enabled = True
        self.calls: Counter[str] = Counter()
        self.read_delay = 0.0
        self.max_parallel_reads = 0
        self._reading = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.users: dict[int, dict[str, Any]] = {}
        self.groups: dict[int, str] = {}
        self.sessions: dict[str, FakeSession] = {}
        self.images: dict[int, FakeImage] = {}
        self.containers: dict[tuple[str, int], FakeContainer] = {}
        self.wells: dict[int, FakeWell] = {}
        self.annotations: dict[int, dict[str, Any]] = {}
        self.links: list[tuple[str, int, int]] = []  # (parent kind, parent id, annotation id)
        self.rois: dict[int, Any] = {}
        self.tables: dict[int, dict[str, Any]] = {}  # original file id -> table
        self.keepalive_periods: list[int] = []
        self.closed_sessions: list[str] = []

    # --- building the server's content -------------------------------------------------------
    def new_id(self) -> int:
        return next(self._ids)

    def add_group(self, name: str) -> int:
        gid = self.new_id()
        self.groups[gid] = name
        return gid

    def add_user(self, name: str, password: str, groups: list[int]) -> int:
        uid = self.new_id()
        self.users[uid] = {"name": name, "password": password, "groups": list(groups)}
        return uid

    def user_id(self, name: str) -> int:
        return next(uid for uid, u in self.users.items() if u["name"] == name)

    def add_container(
        self, kind: str, name: str, *, group: int, owner: int, parent: tuple[str, int] | None = None
    ) -> int:
        oid = self.new_id()
        self.containers[(kind, oid)] = FakeContainer(kind, oid, name, group, owner)
        if parent is not None:
            self.containers[parent].children.append(oid)
        return oid

    def add_image(
        self,
        name: str,
        data: np.ndarray,
        *,
        group: int,
        owner: int,
        dataset: int | None = None,
        channel_names: list[str] | None = None,
        colors: list[str] | None = None,
        windows: list[tuple[float, float]] | None = None,
        active: list[bool] | None = None,
        pixel_size: tuple[float | None, float | None, float | None] = (None, None, None),
        pixel_unit: str = "MICROMETER",
        pyramid_levels: int = 1,
        tile: tuple[int, int] = (256, 256),
        reversed_levels: bool = False,
        rendering: bool = True,
    ) -> int:
        """Add an image; ``data`` is TCZYX (5-D) in any supported dtype."""
        data = np.asarray(data)
        assert data.ndim == 5, "FAKE: give image data as (t, c, z, y, x)"
        n_c = data.shape[1]
        iid = self.new_id()
        self.images[iid] = FakeImage(
            id=iid,
            name=name,
            data=data,
            pixels_id=self.new_id(),
            group=group,
            owner=owner,
            channel_names=channel_names or [f"ch{i}" for i in range(n_c)],
            colors=colors or ["FFFFFF"] * n_c,
            windows=windows or [(float(data.min()), float(data.max()))] * n_c,
            active=active or [True] * n_c,
            pixel_size=pixel_size,
            pixel_unit=pixel_unit,
            pyramid_levels=pyramid_levels,
            tile=tile,
            reversed_levels=reversed_levels,
            rendering=rendering,
        )
        if dataset is not None:
            self.containers[("Dataset", dataset)].children.append(iid)
        return iid

    def add_plate(
        self,
        name: str,
        *,
        group: int,
        owner: int,
        screen: int | None = None,
        rows: int = 2,
        columns: int = 2,
        fields: int = 2,
        shape: tuple[int, int] = (8, 8),
    ) -> int:
        """A plate with rows x columns wells, each with ``fields`` small uint8 images."""
        pid = self.add_container(
            "Plate", name, group=group, owner=owner, parent=("Screen", screen) if screen else None
        )
        for r in range(rows):
            for c in range(columns):
                wid = self.new_id()
                well = FakeWell(wid, pid, r, c, group, owner)
                for f in range(fields):
                    pos = f"{chr(65 + r)}{c + 1}"
                    data = np.full((1, 1, 1, *shape), 10 * r + c + f, dtype=np.uint8)
                    well.images.append(
                        self.add_image(f"{name} {pos} f{f}", data, group=group, owner=owner)
                    )
                    well.sample_ids.append(self.new_id())
                self.wells[wid] = well
                self.containers[("Plate", pid)].children.append(wid)
        return pid

    # --- failure simulation ------------------------------------------------------------------
    def restart(self) -> None:
        """Simulate a server restart: every session and connection is gone."""
        self.epoch += 1
        self.sessions.clear()

    def drop_connections(self) -> None:
        """Simulate a network blip: connections die, sessions survive (they can be rejoined)."""
        self.epoch += 1

    def expire_session(self, key: str) -> None:
        self.sessions[key].alive = False

    def backend(self) -> Any:
        """An ``OmeroBackend`` that makes FAKE clients and gateways for this server."""
        from napari_fbias.io.omero.connection import OmeroBackend

        return OmeroBackend(
            make_client=lambda host, port: FakeClient(self, host, port),
            make_gateway=lambda client: FakeBlitzGateway(client_obj=client),
        )

    # --- helpers for the fake services --------------------------------------------------------
    def count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def visible_groups(self, session: FakeSession, ctx: dict[str, str] | None) -> set[int]:
        member = set(self.users[session.user]["groups"])
        group = (ctx or {}).get("omero.group")
        if group in (None, ""):
            return {session.group}
        gid = int(group)
        if gid == -1:
            return member
        if gid not in member:
            _raise(SecurityViolation, f"FAKE: user is not a member of group {gid}")
        return {gid}

    def object_group(self, kind: str, oid: int) -> int | None:
        if kind == "Image" and oid in self.images:
            return self.images[oid].group
        if kind == "Well" and oid in self.wells:
            return self.wells[oid].group
        c = self.containers.get((kind, oid))
        return c.group if c else None


# --- client, session, services ---------------------------------------------------------------
class FakeClient:
    """FAKE ``omero.client``: one connection to the fake server."""

    def __init__(self, server: FakeOmeroServer, host: str, port: int | None) -> None:
        self._server = server
        self._host = host
        self._port = port
        self._epoch = server.epoch
        self._key: str | None = None
        self.sf: FakeServiceFactory | None = None
        self.keepalive = 0

    def _reachable(self) -> None:
        hostname = self._host.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
        if self._server.down or hostname.lower() != self._server.host:
            _raise(ConnectionRefusedException, f"FAKE: connection refused by {self._host}")

    def createSession(self, username: str | None = None, password: str | None = None) -> Any:
        self._server.count("createSession")
        self._reachable()
        for uid, u in self._server.users.items():
            if u["name"] == username and u["password"] == password:
                key = str(uuid.uuid4())
                self._server.sessions[key] = FakeSession(key, uid, u["groups"][0])
                return self._attach(key)
        _raise(PermissionDeniedException, "FAKE: password check failed")

    def joinSession(self, session: str) -> Any:
        self._server.count("joinSession")
        self._reachable()
        s = self._server.sessions.get(session)
        if s is None or not s.alive:
            _raise(PermissionDeniedException, "FAKE: no such session")
        return self._attach(session)

    def _attach(self, key: str) -> FakeServiceFactory:
        self._key = key
        self._epoch = self._server.epoch
        self.sf = FakeServiceFactory(self)
        return self.sf

    def getSessionId(self) -> str:
        if self._key is None:
            _raise(ApiUsageException, "FAKE: no session")
        return self._key

    def getSession(self, blocking: bool = True) -> FakeServiceFactory:
        if self.sf is None:
            _raise(ApiUsageException, "FAKE: no session")
        return self.sf

    def getProperty(self, key: str) -> str:
        return {"omero.host": self._host, "omero.port": str(self._port or "")}.get(key, "")

    def enableKeepAlive(self, seconds: int) -> None:
        self.keepalive = seconds
        self._server.keepalive_periods.append(seconds)

    def session(self) -> FakeSession:
        """The live server-side session, or raise like a dead connection does."""
        if self._epoch != self._server.epoch:
            _raise(ConnectionLostException, "FAKE: connection lost (server restarted)")
        s = self._server.sessions.get(self._key or "")
        if s is None:
            _raise(ConnectionLostException, "FAKE: connection lost")
        if not s.alive:
            _raise(SessionTimeoutException, "FAKE: session timed out")
        return s

    def closeSession(self) -> None:
        if self._key is not None and self._epoch == self._server.epoch:
            s = self._server.sessions.get(self._key)
            if s is not None and not s.detached:
                del self._server.sessions[self._key]
                self._server.closed_sessions.append(self._key)
        self.sf = None

    def __del__(self) -> None:
        try:
            self.closeSession()
        except Exception:
            pass


class FakeServiceFactory:
    """FAKE ``ServiceFactoryPrx`` (``client.sf``)."""

    def __init__(self, client: FakeClient) -> None:
        self._client = client

    def keepAllAlive(self, proxies: list[Any]) -> int:
        self._client._server.count("keepAllAlive")
        self._client.session()
        return 0

    def detachOnDestroy(self) -> None:
        self._client.session().detached = True

    def createRawPixelsStore(self) -> FakeRawPixelsStore:
        self._client._server.count("createRawPixelsStore")
        self._client.session()
        return FakeRawPixelsStore(self._client)

    def sharedResources(self) -> FakeSharedResources:
        self._client.session()
        return FakeSharedResources(self._client)


@dataclass
class _Resolution:
    sizeX: int
    sizeY: int


class FakeRawPixelsStore:
    """FAKE RawPixelsStore: stateful, big-endian bytes, NOT thread safe (it checks)."""

    def __init__(self, client: FakeClient) -> None:
        self._client = client
        self._server = client._server
        self._image: FakeImage | None = None
        self._level = 0
        self._busy = threading.Lock()
        self.closed = False

    def _enter(self) -> None:
        if self.closed:
            _raise(ConnectionLostException, "FAKE: store closed")  # ObjectNotExist on a server
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("FAKE: a RawPixelsStore was used by two threads at once")
        self._client.session()

    def setPixelsId(self, pixelsId: int, bypassOriginalFile: bool, ctx: dict | None = None) -> None:
        self._enter()
        try:
            self._server.count("setPixelsId")
            session = self._client.session()
            groups = self._server.visible_groups(session, ctx)
            for img in self._server.images.values():
                if img.pixels_id == pixelsId:
                    if img.group not in groups:
                        _raise(SecurityViolation, f"FAKE: Pixels:{pixelsId} is in another group")
                    self._image = img
                    self._level = self._n_levels() - 1 if not img.reversed_levels else 0
                    return
            _raise(ApiUsageException, f"FAKE: no Pixels:{pixelsId}")
        finally:
            self._busy.release()

    def _n_levels(self) -> int:
        return self._image.pyramid_levels if self._image else 1

    def _data_index(self) -> int:
        """Index into our level list (0 = full) from the store's level number."""
        n = self._n_levels()
        return self._level if self._image.reversed_levels else n - 1 - self._level

    def getResolutionLevels(self) -> int:
        return self._n_levels()

    def getResolutionLevel(self) -> int:
        return self._level

    def setResolutionLevel(self, resolutionLevel: int) -> None:
        self._enter()
        try:
            if not 0 <= resolutionLevel < self._n_levels():
                _raise(ApiUsageException, f"FAKE: no resolution level {resolutionLevel}")
            self._level = int(resolutionLevel)
        finally:
            self._busy.release()

    def getResolutionDescriptions(self) -> list[Any]:
        img = self._image
        out = []
        for i in range(img.pyramid_levels):
            d = img.level_data(i)
            sx, sy = int(d.shape[-1]), int(d.shape[-2])
            out.append(
                omero.api.ResolutionDescription(sx, sy) if HAVE_OMERO else _Resolution(sx, sy)
            )
        return out

    def getTileSize(self) -> list[int]:
        img = self._image
        if img.pyramid_levels > 1:
            return list(img.tile)
        return [int(img.data.shape[-1]), min(int(img.data.shape[-2]), img.tile[1])]

    def requiresPixelsPyramid(self) -> bool:
        return self._image.pyramid_levels > 1

    def _read(self, name: str, z: int, c: int, t: int, ys: slice, xs: slice) -> bytes:
        self._enter()
        with self._server._lock:
            self._server._reading += 1
            self._server.max_parallel_reads = max(
                self._server.max_parallel_reads, self._server._reading
            )
        try:
            self._server.count(name)
            if self._server.read_delay:
                time.sleep(self._server.read_delay)
            data = self._image.level_data(self._data_index())
            block = data[t, c, z, ys, xs]
            big = block.astype(block.dtype.newbyteorder(">"))
            return big.tobytes()
        finally:
            with self._server._lock:
                self._server._reading -= 1
            self._busy.release()

    def getPlane(self, z: int, c: int, t: int) -> bytes:
        img = self._image
        if self._data_index() != 0 or img.pyramid_levels > 1:
            _raise(ApiUsageException, "FAKE: getPlane on a pyramid; use getTile")
        h, w = img.data.shape[-2:]
        if w > self._server.max_plane_size[0] or h > self._server.max_plane_size[1]:
            _raise(ApiUsageException, "FAKE: plane larger than the maximum plane size")
        return self._read("getPlane", z, c, t, slice(None), slice(None))

    def getTile(self, z: int, c: int, t: int, x: int, y: int, w: int, h: int) -> bytes:
        data = self._image.level_data(self._data_index())
        if x < 0 or y < 0 or x + w > data.shape[-1] or y + h > data.shape[-2]:
            _raise(ApiUsageException, f"FAKE: tile {x},{y},{w},{h} outside the level")
        return self._read("getTile", z, c, t, slice(y, y + h), slice(x, x + w))

    def close(self) -> None:
        self.closed = True
        self._server.count("store.close")


class FakeTable:
    """FAKE OMERO.table: captures real ``omero.grid`` columns."""

    def __init__(self, server: FakeOmeroServer, path: str) -> None:
        self._server = server
        self.path = path
        self.columns: list[Any] = []
        self.file_id = server.new_id()

    def initialize(self, cols: list[Any]) -> None:
        assert all(isinstance(c, omero.grid.Column) for c in cols), "FAKE: not omero.grid columns"
        self.columns = cols

    def addData(self, cols: list[Any]) -> None:
        assert [c.name for c in cols] == [c.name for c in self.columns]
        self._server.tables[self.file_id] = {
            "name": self.path,
            "columns": {c.name: list(c.values) for c in cols},
            "types": {c.name: type(c).__name__ for c in cols},
        }

    def getOriginalFile(self) -> Any:
        f = omero.model.OriginalFileI(self.file_id, False)
        return f

    def close(self) -> None:
        pass


class FakeSharedResources:
    def __init__(self, client: FakeClient) -> None:
        self._client = client

    def areTablesEnabled(self, ctx: dict | None = None) -> bool:
        return self._client._server.tables_enabled

    def repositories(self) -> Any:
        desc = SimpleNamespace(getId=lambda: SimpleNamespace(getValue=lambda: 1))
        return SimpleNamespace(descriptions=[desc])

    def newTable(self, repoId: int, path: str, ctx: dict | None = None) -> FakeTable | None:
        self._client.session()
        if not self._client._server.tables_enabled:
            return None
        return FakeTable(self._client._server, path)


# --- gateway and wrappers ----------------------------------------------------------------------
class FakeServiceOpts(dict):
    """FAKE ``omero.gateway.utils.ServiceOptsDict``."""

    def setOmeroGroup(self, value: Any = None) -> None:
        if value is None:
            self.pop("omero.group", None)
        else:
            self["omero.group"] = str(value)

    def getOmeroGroup(self) -> str | None:
        return self.get("omero.group")

    def copy(self) -> FakeServiceOpts:
        return FakeServiceOpts(self)


def _external_info(entity_type: str, lsid: str) -> Any:
    """An ``ExternalInfo`` as the server loads it with an image (real omero-py when present)."""
    if HAVE_OMERO:
        from omero.model import ExternalInfoI
        from omero.rtypes import rstring

        info = ExternalInfoI(1, True)
        info.entityId = rlong(3)
        info.entityType = rstring(entity_type)
        info.lsid = rstring(lsid)
        return info
    return SimpleNamespace(
        getEntityType=lambda: SimpleNamespace(val=entity_type),
        getLsid=lambda: SimpleNamespace(val=lsid),
    )


class _Details:
    external: tuple[str, str] | None = None

    def getExternalInfo(self) -> Any:
        """Like omero-py 5.22's ``DetailsWrapper.getExternalInfo`` (a wrapper, or None)."""
        if self.external is None:
            return None
        return SimpleNamespace(_obj=_external_info(*self.external))

    def __init__(self, group: int, owner: int) -> None:
        self._group, self._owner = group, owner

    def getGroup(self) -> Any:
        return SimpleNamespace(getId=lambda: self._group)

    def getOwner(self) -> Any:
        return SimpleNamespace(getId=lambda: self._owner)


class FakeWrapper:
    """Base of the FAKE object wrappers (``BlitzObjectWrapper``)."""

    OMERO_CLASS = ""

    def __init__(self, conn: FakeBlitzGateway, oid: int) -> None:
        self._conn = conn
        self._oid = oid
        self._server = conn._server

    def getId(self) -> int:
        return self._oid

    @property
    def id(self) -> int:
        return self._oid

    def _group_owner(self) -> tuple[int, int]:
        raise NotImplementedError

    def getDetails(self) -> _Details:
        return _Details(*self._group_owner())

    def getOwnerOmeName(self) -> str:
        return self._server.users[self._group_owner()[1]]["name"]

    def listAnnotations(self, ns: str | None = None) -> list[FakeFileAnnotationWrapper]:
        self._conn._check()
        out = []
        for kind, pid, aid in self._server.links:
            if kind == self.OMERO_CLASS and pid == self._oid and aid in self._server.annotations:
                ann = self._server.annotations[aid]
                if ns is None or ann["ns"] == ns:
                    out.append(FakeFileAnnotationWrapper(self._conn, aid))
        return out


class FakeContainerWrapper(FakeWrapper):
    def __init__(self, conn: FakeBlitzGateway, kind: str, oid: int) -> None:
        super().__init__(conn, oid)
        self.OMERO_CLASS = kind
        self._c = self._server.containers[(kind, oid)]

    def _group_owner(self) -> tuple[int, int]:
        return self._c.group, self._c.owner

    def getName(self) -> str:
        return self._c.name

    def countChildren(self) -> int:
        return len(self._c.children)

    def getRowLabels(self) -> list[str]:
        """Plate only: letters, like the default row naming convention."""
        rows = {self._server.wells[w].row for w in self._c.children}
        return [chr(65 + r) for r in range(max(rows, default=-1) + 1)]

    def getColumnLabels(self) -> list[str]:
        """Plate only: numbers from 1, like the default column naming convention."""
        cols = {self._server.wells[w].column for w in self._c.children}
        return [str(c + 1) for c in range(max(cols, default=-1) + 1)]

    def listChildren(self, ns: Any = None, val: Any = None, params: Any = None) -> Any:
        self._conn._check()
        child = {"Project": "Dataset", "Screen": "Plate", "Dataset": "Image", "Plate": "Well"}[
            self.OMERO_CLASS
        ]
        for cid in self._c.children:
            yield self._conn._wrap(child, cid)


class FakeWellSampleWrapper(FakeWrapper):
    OMERO_CLASS = "WellSample"

    def __init__(self, conn: FakeBlitzGateway, oid: int, image_id: int, well: FakeWell) -> None:
        super().__init__(conn, oid)
        self._image_id = image_id
        self._well = well

    def _group_owner(self) -> tuple[int, int]:
        return self._well.group, self._well.owner

    def getImage(self) -> FakeImageWrapper:
        return FakeImageWrapper(self._conn, self._image_id)


class FakeWellWrapper(FakeWrapper):
    OMERO_CLASS = "Well"

    def __init__(self, conn: FakeBlitzGateway, oid: int) -> None:
        super().__init__(conn, oid)
        self._w = self._server.wells[oid]

    def _group_owner(self) -> tuple[int, int]:
        return self._w.group, self._w.owner

    def getName(self) -> str | None:
        return None

    def getRow(self) -> int:
        return self._w.row

    def getColumn(self) -> int:
        return self._w.column

    def getWellPos(self) -> str:
        return f"{chr(65 + self._w.row)}{self._w.column + 1}"

    def countWellSample(self) -> int:
        return len(self._w.images)

    def listChildren(self, ns: Any = None, val: Any = None, params: Any = None) -> Any:
        self._conn._check()
        for sid, iid in zip(self._w.sample_ids, self._w.images, strict=True):
            yield FakeWellSampleWrapper(self._conn, sid, iid, self._w)

    def getWellSample(self, index: int | None = None) -> FakeWellSampleWrapper | None:
        children = list(self.listChildren())
        index = index or 0
        return children[index] if index < len(children) else None

    def getImage(self, index: int | None = None) -> FakeImageWrapper | None:
        ws = self.getWellSample(index)
        return ws.getImage() if ws else None


class FakeColorHolder:
    def __init__(self, html: str) -> None:
        self._html = html.upper()

    def getHtml(self) -> str:
        return self._html

    def getRGB(self) -> tuple[int, int, int]:
        return tuple(int(self._html[i : i + 2], 16) for i in (0, 2, 4))


class FakeChannelWrapper:
    def __init__(self, img: FakeImage, idx: int, rendering: bool) -> None:
        self._img, self._idx, self._re = img, idx, rendering

    def getLabel(self) -> str:
        return self._img.channel_names[self._idx]

    def getName(self) -> str:
        return self._img.channel_names[self._idx]

    def getColor(self) -> FakeColorHolder | None:
        return FakeColorHolder(self._img.colors[self._idx]) if self._re else None

    def getWindowStart(self) -> float | None:
        return self._img.windows[self._idx][0] if self._re else None

    def getWindowEnd(self) -> float | None:
        return self._img.windows[self._idx][1] if self._re else None

    def isActive(self) -> bool:
        return self._img.active[self._idx] if self._re else False


class FakeLength:
    """Look-alike of ``omero.model.LengthI`` when omero-py is missing."""

    def __init__(self, value: float, unit: str) -> None:
        self._value, self._unit = value, unit

    def getValue(self) -> float:
        return self._value

    def getUnit(self) -> str:
        return self._unit


def _length(value: float | None, unit: str, units: Any) -> Any:
    if value is None:
        return None
    if HAVE_OMERO:
        enum = getattr(omero.model.enums.UnitsLength, unit)
        obj = omero.model.LengthI(value, enum)
        if isinstance(units, str):
            obj = omero.model.LengthI(obj, units)
        return obj if units is not None else obj.getValue()
    if isinstance(units, str):
        if unit not in UNIT_TO_MICROMETER or units not in UNIT_TO_MICROMETER:
            raise ValueError(f"FAKE: cannot convert {unit} to {units}")
        value = value * UNIT_TO_MICROMETER[unit] / UNIT_TO_MICROMETER[units]
        unit = units
    return FakeLength(value, unit) if units is not None else value


class FakePixelsWrapper:
    """FAKE ``PixelsWrapper`` (``image.getPrimaryPixels()``): decoded planes and tiles."""

    def __init__(self, conn: FakeBlitzGateway, img: FakeImage) -> None:
        self._conn, self._img = conn, img

    def getId(self) -> int:
        return self._img.pixels_id

    def getPixelsType(self) -> Any:
        value = self._img.pixels_type
        return SimpleNamespace(value=value, getValue=lambda: value)

    def getTiles(self, zctTileList: list[tuple[Any, ...]]) -> Any:
        store = self._conn.c.sf.createRawPixelsStore()
        store.setPixelsId(self._img.pixels_id, True, self._conn.SERVICE_OPTS)
        dtype = np.dtype(DTYPES[self._img.pixels_type])
        try:
            for z, c, t, tile in zctTileList:
                if tile is None:
                    raw = store.getPlane(z, c, t)
                    h, w = self._img.data.shape[-2:]
                else:
                    x, y, w, h = tile
                    raw = store.getTile(z, c, t, x, y, w, h)
                yield np.frombuffer(raw, dtype=dtype.newbyteorder(">")).reshape(h, w).astype(dtype)
        finally:
            store.close()

    def getPlanes(self, zctList: list[tuple[int, int, int]]) -> Any:
        return self.getTiles([(z, c, t, None) for z, c, t in zctList])

    def getPlane(self, theZ: int = 0, theC: int = 0, theT: int = 0) -> np.ndarray:
        return next(iter(self.getPlanes([(theZ, theC, theT)])))

    def getTile(self, theZ: int = 0, theC: int = 0, theT: int = 0, tile: Any = None) -> np.ndarray:
        return next(iter(self.getTiles([(theZ, theC, theT, tile)])))


class FakeImageWrapper(FakeWrapper):
    OMERO_CLASS = "Image"

    def __init__(self, conn: FakeBlitzGateway, oid: int) -> None:
        super().__init__(conn, oid)
        self._img = self._server.images[oid]
        self.re_closed = 0

    def _group_owner(self) -> tuple[int, int]:
        return self._img.group, self._img.owner

    def getDetails(self) -> _Details:
        details = _Details(*self._group_owner())
        details.external = self._img.external_info
        return details

    def getName(self) -> str:
        return self._img.name

    def getSizeT(self) -> int:
        return int(self._img.data.shape[0])

    def getSizeC(self) -> int:
        return int(self._img.data.shape[1])

    def getSizeZ(self) -> int:
        return int(self._img.data.shape[2])

    def getSizeY(self) -> int:
        return int(self._img.data.shape[3])

    def getSizeX(self) -> int:
        return int(self._img.data.shape[4])

    def getPixelsType(self) -> str:
        return self._img.pixels_type

    def getPixelsId(self) -> int:
        return self._img.pixels_id

    def requiresPixelsPyramid(self) -> bool:
        return self._img.pyramid_levels > 1

    def getPrimaryPixels(self) -> FakePixelsWrapper:
        return FakePixelsWrapper(self._conn, self._img)

    def getChannels(self, noRE: bool = False) -> list[FakeChannelWrapper]:
        self._conn._check()
        rendering = self._img.rendering and not noRE
        return [FakeChannelWrapper(self._img, i, rendering) for i in range(self.getSizeC())]

    def _closeRE(self) -> None:
        self.re_closed += 1

    def _pixel_size(self, i: int, units: Any) -> Any:
        return _length(self._img.pixel_size[i], self._img.pixel_unit, units)

    def getPixelSizeX(self, units: Any = None) -> Any:
        return self._pixel_size(0, units)

    def getPixelSizeY(self, units: Any = None) -> Any:
        return self._pixel_size(1, units)

    def getPixelSizeZ(self, units: Any = None) -> Any:
        return self._pixel_size(2, units)

    def getThumbnail(
        self,
        size: Any = (64, 64),
        z: int | None = None,
        t: int | None = None,
        direct: bool = True,
        rdefId: int | None = None,
    ) -> bytes | None:
        """PNG of channel 0 (the real server sends JPEG; PIL reads both)."""
        from PIL import Image as PILImage

        self._conn._check()
        self._server.count("getThumbnail")
        plane = self._img.data[t or 0, 0, z or 0].astype(float)
        lo, hi = float(plane.min()), float(plane.max())
        grey = ((plane - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
        pil = PILImage.fromarray(grey).convert("RGB")
        if isinstance(size, int):
            size = (size,)
        if len(size) == 1:
            pil.thumbnail((size[0], size[0]))
        else:
            pil = pil.resize(tuple(size))
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        return buf.getvalue()


class FakeFileAnnotationWrapper(FakeWrapper):
    OMERO_CLASS = "FileAnnotation"

    def __init__(self, conn: FakeBlitzGateway, oid: int) -> None:
        super().__init__(conn, oid)
        self._a = self._server.annotations[oid]

    def _group_owner(self) -> tuple[int, int]:
        return self._a["group"], self._a["owner"]

    def getNs(self) -> str | None:
        return self._a["ns"]

    def getFileName(self) -> str:
        return self._a["name"]

    def getFileSize(self) -> int:
        return len(self._a["content"] or b"")

    def getMimetype(self) -> str | None:
        return self._a["mimetype"]

    def getDescription(self) -> str | None:
        return self._a["description"]

    def getFileInChunks(self, buf: int = 2621440) -> Any:
        data = self._a["content"] or b""
        for i in range(0, len(data), buf):
            yield data[i : i + buf]


class _ContainerService:
    def __init__(self, conn: FakeBlitzGateway) -> None:
        self._conn = conn

    def getCollectionCount(
        self, type: str, property: str, ids: list[int], options: Any, ctx: Any = None
    ) -> dict[int, int]:
        self._conn._check()
        server = self._conn._server
        server.count("getCollectionCount")
        out = {}
        for oid in ids:
            if type == "Well":
                out[oid] = len(server.wells[oid].images)
            else:
                out[oid] = len(server.containers[(type, oid)].children)
        return out


class _RoiService:
    def __init__(self, conn: FakeBlitzGateway) -> None:
        self._conn = conn

    def findByImage(self, imageId: int, opts: Any, ctx: Any = None) -> Any:
        self._conn._check()
        rois = [
            r for r in self._conn._server.rois.values() if unwrap(r.getImage().getId()) == imageId
        ]
        return SimpleNamespace(rois=rois)


class _UpdateService:
    """FAKE ``IUpdate``: accepts only real omero-py model objects, assigns ids."""

    def __init__(self, conn: FakeBlitzGateway) -> None:
        self._conn = conn

    def _group_for_write(self, ctx: Any) -> int:
        session = self._conn._session()
        group = (ctx or {}).get("omero.group") or self._conn.SERVICE_OPTS.get("omero.group")
        if group is not None and int(group) == -1:
            _raise(SecurityViolation, "FAKE: cannot write with omero.group=-1")
        gid = int(group) if group is not None else session.group
        if gid not in self._conn._server.users[session.user]["groups"]:
            _raise(SecurityViolation, f"FAKE: not a member of group {gid}")
        return gid

    def saveAndReturnObject(self, obj: Any, ctx: Any = None) -> Any:
        self._conn._check()
        server = self._conn._server
        server.count("saveAndReturnObject")
        gid = self._group_for_write(ctx)
        if isinstance(obj, omero.model.RoiI):
            return self._save_roi(obj)
        if isinstance(obj, omero.model.FileAnnotationI):
            file_id = unwrap(obj.getFile().getId())
            table = server.tables.get(file_id)
            aid = server.new_id()
            server.annotations[aid] = {
                "ns": unwrap(obj.getNs()),
                "name": table["name"] if table else f"file-{file_id}",
                "content": None,
                "mimetype": "OMERO.tables" if table else None,
                "description": unwrap(obj.getDescription()),
                "file_id": file_id,
                "group": gid,
                "owner": self._conn._session().user,
            }
            obj.setId(rlong(aid))
            return obj
        if type(obj).__name__.endswith("AnnotationLinkI"):
            kind = type(obj).__name__[: -len("AnnotationLinkI")]
            parent = unwrap(obj.getParent().getId())
            child = unwrap(obj.getChild().getId())
            if server.object_group(kind, parent) is None:
                _raise(ApiUsageException, f"FAKE: no {kind}:{parent} to link to")
            if child not in server.annotations:
                _raise(ApiUsageException, f"FAKE: no annotation {child}")
            server.links.append((kind, parent, child))
            obj.setId(rlong(server.new_id()))
            return obj
        raise TypeError(f"FAKE: saving {type(obj).__name__} is not supported by the fake")

    def saveAndReturnArray(self, graph: list[Any], ctx: Any = None) -> list[Any]:
        self._conn._check()
        self._conn._server.count("saveAndReturnArray")
        self._group_for_write(ctx)
        return [self._save_roi(o) for o in graph]

    def _save_roi(self, roi: Any) -> Any:
        server = self._conn._server
        if not isinstance(roi, omero.model.RoiI):
            raise TypeError(f"FAKE: expected omero.model.RoiI, got {type(roi).__name__}")
        image_id = unwrap(roi.getImage().getId())
        if image_id not in server.images:
            _raise(ApiUsageException, f"FAKE: no Image:{image_id}")
        for shape in roi.copyShapes():
            if not isinstance(shape, omero.model.Shape):
                raise TypeError(f"FAKE: ROI shape {type(shape).__name__} is not an omero Shape")
            shape.setId(rlong(server.new_id()))
        rid = server.new_id()
        roi.setId(rlong(rid))
        server.rois[rid] = roi
        return roi


class FakeBlitzGateway:
    """FAKE ``omero.gateway.BlitzGateway`` built on a logged-in (fake) client."""

    def __init__(self, client_obj: FakeClient) -> None:
        self.c = client_obj
        self._server = client_obj._server
        self.SERVICE_OPTS = FakeServiceOpts()
        self.closed = False

    # --- session ------------------------------------------------------------------------------
    def _session(self) -> FakeSession:
        if self.closed or self.c is None:
            _raise(ConnectionLostException, "FAKE: gateway closed")
        return self.c.session()

    def _check(self) -> None:
        self._session()

    def getEventContext(self) -> Any:
        s = self._session()
        u = self._server.users[s.user]
        return SimpleNamespace(
            userName=u["name"],
            userId=s.user,
            groupId=s.group,
            groupName=self._server.groups[s.group],
            memberOfGroups=list(u["groups"]),
            sessionUuid=s.key,
        )

    def setGroupForSession(self, groupid: int) -> bool | None:
        s = self._session()
        if s.group == groupid:
            return None
        if groupid not in self._server.users[s.user]["groups"]:
            return False
        s.group = groupid
        return True

    def getGroupsMemberOf(self) -> list[Any]:
        s = self._session()
        return [
            SimpleNamespace(getId=lambda g=g: g, getName=lambda g=g: self._server.groups[g])
            for g in self._server.users[s.user]["groups"]
        ]

    def getMaxPlaneSize(self) -> tuple[int, int]:
        return self._server.max_plane_size

    def keepAlive(self) -> bool:
        try:
            self._check()
        except Exception:
            return False
        return True

    def close(self, hard: bool = True) -> None:
        self.closed = True
        if self.c is not None:
            self.c.__del__()
        self.c = None

    # --- objects ------------------------------------------------------------------------------
    def _visible(self, kind: str, oid: int) -> bool:
        groups = self._server.visible_groups(self._session(), self.SERVICE_OPTS)
        return self._server.object_group(kind, oid) in groups

    def _wrap(self, kind: str, oid: int) -> Any:
        if kind == "Image":
            return FakeImageWrapper(self, oid)
        if kind == "Well":
            return FakeWellWrapper(self, oid)
        return FakeContainerWrapper(self, kind, oid)

    def _all_ids(self, kind: str) -> list[int]:
        if kind == "Image":
            return list(self._server.images)
        if kind == "Well":
            return list(self._server.wells)
        return [oid for (k, oid) in self._server.containers if k == kind]

    def getObject(
        self,
        obj_type: str,
        oid: int | None = None,
        params: Any = None,
        attributes: Any = None,
        opts: Any = None,
    ) -> Any:
        self._server.count(f"getObject:{obj_type}")
        self._check()
        oid = int(oid)
        if oid not in self._all_ids(obj_type) or not self._visible(obj_type, oid):
            return None
        return self._wrap(obj_type, oid)

    def getObjects(
        self,
        obj_type: str,
        ids: list[int] | None = None,
        params: Any = None,
        attributes: Any = None,
        respect_order: bool = False,
        opts: dict | None = None,
    ) -> Any:
        self._server.count(f"getObjects:{obj_type}")
        self._check()
        owner = (opts or {}).get("owner")
        for oid in ids if ids is not None else self._all_ids(obj_type):
            if oid in self._all_ids(obj_type) and self._visible(obj_type, oid):
                w = self._wrap(obj_type, oid)
                if owner is None or w.getDetails().getOwner().getId() == owner:
                    yield w

    def listOrphans(
        self, obj_type: str, eid: int | None = None, params: Any = None, loadPixels: bool = False
    ) -> Any:
        self._check()
        if obj_type not in ("Dataset", "Image", "Plate"):
            raise AttributeError("obj_type must be in ['Dataset', 'Image', 'Plate']")
        parent_kind = {"Dataset": "Project", "Image": "Dataset", "Plate": "Screen"}[obj_type]
        linked = {
            cid
            for (k, _), c in self._server.containers.items()
            if k == parent_kind
            for cid in c.children
        }
        if obj_type == "Image":
            linked |= {i for w in self._server.wells.values() for i in w.images}
        for w in self.getObjects(obj_type, opts={"owner": eid} if eid is not None else None):
            if w.getId() not in linked:
                yield w

    # --- services -----------------------------------------------------------------------------
    def getContainerService(self) -> _ContainerService:
        return _ContainerService(self)

    def getRoiService(self) -> _RoiService:
        return _RoiService(self)

    def getUpdateService(self) -> _UpdateService:
        return _UpdateService(self)

    def createRawPixelsStore(self) -> FakeRawPixelsStore:
        return self.c.sf.createRawPixelsStore()

    def createFileAnnfromLocalFile(
        self,
        localPath: str,
        origFilePathAndName: str | None = None,
        mimetype: str | None = None,
        ns: str | None = None,
        desc: str | None = None,
    ) -> FakeFileAnnotationWrapper:
        session = self._session()
        self._server.count("createFileAnnfromLocalFile")
        group = self.SERVICE_OPTS.get("omero.group")
        if group is not None and int(group) == -1:
            _raise(SecurityViolation, "FAKE: cannot write with omero.group=-1")
        gid = int(group) if group is not None else session.group
        name = Path(origFilePathAndName or localPath).name
        aid = self._server.new_id()
        self._server.annotations[aid] = {
            "ns": ns,
            "name": name,
            "content": Path(localPath).read_bytes(),
            "mimetype": mimetype,
            "description": desc,
            "file_id": self._server.new_id(),
            "group": gid,
            "owner": session.user,
        }
        return FakeFileAnnotationWrapper(self, aid)

    def deleteObjects(
        self,
        graph_spec: str,
        obj_ids: list[int],
        deleteAnns: bool = False,
        deleteChildren: bool = False,
        dryRun: bool = False,
        wait: bool = False,
    ) -> Any:
        self._check()
        self._server.count(f"deleteObjects:{graph_spec}")
        server = self._server
        for oid in obj_ids:
            if graph_spec == "Roi":
                server.rois.pop(int(oid))
            elif graph_spec == "Annotation":
                ann = server.annotations.pop(int(oid))
                server.tables.pop(ann.get("file_id"), None)
                server.links = [link for link in server.links if link[2] != int(oid)]
            else:
                raise NotImplementedError(f"FAKE: deleting {graph_spec}")
        return SimpleNamespace(done=True)


# --- the OMERO CLI's session store -------------------------------------------------------------
def write_cli_session(
    directory: Path, host: str, user: str, key: str, port: int = 4064, *, current: bool = True
) -> Path:
    """Write a session file like ``omero login`` (``SessionsStore.add`` + ``set_current``)."""
    user_dir = directory / quote(host, safe="") / user
    user_dir.mkdir(parents=True, exist_ok=True)
    f = user_dir / key
    f.write_text(
        f"omero.host={host}\nomero.port={port}\nomero.user={user}\nomero.sess={key}\n",
        encoding="utf-8",
    )
    if current:
        (directory / "._LASTHOST_").write_text(host)
        (directory / "._LASTPORT_").write_text(str(port))
        (directory / quote(host, safe="") / "._LASTUSER_").write_text(user)
        (user_dir / "._LASTSESS_").write_text(key)
    return f


def standard_server(host: str = "omero.example.org") -> FakeOmeroServer:
    """A small FAKE server: two groups, one user (alice/secret-pw), projects, a screen.

    Content (ids in ``server.named``)::

        group "lab" (alice's default), group "other"
        Project "P1" > Dataset "D1" > images "a" (uint8 yx), "b" (uint16 czyx, 2 channels)
        Project "P2" (empty)
        Dataset "orphan-ds" > image "c" (float tyx)
        orphaned image "lonely" (int16)
        Screen "S1" > Plate "PL1" (2x2 wells, 2 fields); orphaned Plate "PL2" (1x1, 1 field)
        in group "other": Project "OtherP" > Dataset "OtherD" > image "far"
    """
    server = FakeOmeroServer(host)
    lab = server.add_group("lab")
    other = server.add_group("other")
    alice = server.add_user("alice", "secret-pw", [lab, other])
    rng = np.random.default_rng(0)
    named: dict[str, int] = {"lab": lab, "other": other, "alice": alice}
    named["P1"] = server.add_container("Project", "P1", group=lab, owner=alice)
    named["P2"] = server.add_container("Project", "P2", group=lab, owner=alice)
    named["D1"] = server.add_container(
        "Dataset", "D1", group=lab, owner=alice, parent=("Project", named["P1"])
    )
    named["a"] = server.add_image(
        "a",
        rng.integers(0, 255, (1, 1, 1, 16, 20), dtype=np.uint8),
        group=lab,
        owner=alice,
        dataset=named["D1"],
        pixel_size=(0.5, 0.5, None),
    )
    named["b"] = server.add_image(
        "b",
        rng.integers(0, 4000, (1, 2, 3, 12, 10), dtype=np.uint16),
        group=lab,
        owner=alice,
        dataset=named["D1"],
        channel_names=["DAPI", "GFP"],
        colors=["0000ff", "00FF00"],
        windows=[(0.0, 1000.0), (10.0, 3000.0)],
        active=[True, False],
        pixel_size=(200.0, 200.0, 1000.0),
        pixel_unit="NANOMETER",
    )
    named["orphan-ds"] = server.add_container("Dataset", "orphan-ds", group=lab, owner=alice)
    named["c"] = server.add_image(
        "c",
        rng.random((4, 1, 1, 8, 8), dtype=np.float32),
        group=lab,
        owner=alice,
        dataset=named["orphan-ds"],
    )
    named["lonely"] = server.add_image(
        "lonely", rng.integers(-100, 100, (1, 1, 1, 6, 6), dtype=np.int16), group=lab, owner=alice
    )
    named["S1"] = server.add_container("Screen", "S1", group=lab, owner=alice)
    named["PL1"] = server.add_plate("PL1", group=lab, owner=alice, screen=named["S1"])
    named["PL2"] = server.add_plate("PL2", group=lab, owner=alice, rows=1, columns=1, fields=1)
    named["OtherP"] = server.add_container("Project", "OtherP", group=other, owner=alice)
    named["OtherD"] = server.add_container(
        "Dataset", "OtherD", group=other, owner=alice, parent=("Project", named["OtherP"])
    )
    named["far"] = server.add_image(
        "far",
        rng.integers(0, 255, (1, 1, 1, 8, 8), dtype=np.uint8),
        group=other,
        owner=alice,
        dataset=named["OtherD"],
    )
    server.named = named  # type: ignore[attr-defined]
    return server
