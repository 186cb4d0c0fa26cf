"""The FAKE gateway stays faithful: same method names and parameters as omero-py's.

If omero-py changes a signature we rely on, or the fake drifts from it, this
fails, so the fake-backed tests keep meaning something for the real server.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

pytest.importorskip(
    "omero.gateway",
    reason="needs omero-py: run scripts/build_omero_wheels.sh (CI builds it)",
)
import omero.api
import omero.clients
import omero.gateway as gw
import omero.grid

from fakes import fake_blitz as fb

CTX = {"_ctx", "ctx"}

PAIRS = [
    (
        fb.FakeBlitzGateway,
        gw._BlitzGateway,
        [
            "getObject",
            "getObjects",
            "listOrphans",
            "deleteObjects",
            "createFileAnnfromLocalFile",
            "setGroupForSession",
            "getMaxPlaneSize",
            "close",
            "keepAlive",
            "getGroupsMemberOf",
            "getEventContext",
            "getContainerService",
            "getRoiService",
            "getUpdateService",
            "createRawPixelsStore",
        ],
    ),
    (
        fb.FakeImageWrapper,
        gw._ImageWrapper,
        [
            "getThumbnail",
            "getChannels",
            "getPixelSizeX",
            "getPixelSizeY",
            "getPixelSizeZ",
            "getPixelsType",
            "getPixelsId",
            "getSizeX",
            "getSizeY",
            "getSizeZ",
            "getSizeC",
            "getSizeT",
            "getPrimaryPixels",
            "_closeRE",
            "requiresPixelsPyramid",
            "listAnnotations",
            "getOwnerOmeName",
            "getDetails",
        ],
    ),
    (
        fb.FakePixelsWrapper,
        gw._PixelsWrapper,
        ["getPlane", "getPlanes", "getTiles", "getTile", "getPixelsType"],
    ),
    (
        fb.FakeWellWrapper,
        gw._WellWrapper,
        ["getWellPos", "countWellSample", "getWellSample", "getImage", "listChildren"],
    ),
    (fb.FakeContainerWrapper, gw.BlitzObjectWrapper, ["listChildren", "countChildren"]),
    (fb.FakeContainerWrapper, gw._PlateWrapper, ["getRowLabels", "getColumnLabels"]),
    (fb.FakeChannelWrapper, gw._ChannelWrapper, ["getLabel", "getColor", "isActive"]),
    (fb.FakeChannelWrapper, gw._ChannelWrapper, ["getWindowStart", "getWindowEnd"]),
    (fb.FakeFileAnnotationWrapper, gw.FileAnnotationWrapper, ["getFileName", "getNs"]),
    (
        fb.FakeRawPixelsStore,
        omero.api.RawPixelsStorePrx,
        [
            "setPixelsId",
            "getPlane",
            "getTile",
            "getResolutionLevels",
            "getResolutionLevel",
            "setResolutionLevel",
            "getResolutionDescriptions",
            "getTileSize",
            "requiresPixelsPyramid",
            "close",
        ],
    ),
    (
        fb.FakeServiceFactory,
        omero.api.ServiceFactoryPrx,
        ["createRawPixelsStore", "sharedResources", "keepAllAlive", "detachOnDestroy"],
    ),
    (
        fb.FakeSharedResources,
        omero.grid.SharedResourcesPrx,
        ["newTable", "areTablesEnabled", "repositories"],
    ),
    (fb._ContainerService, omero.api.IContainerPrx, ["getCollectionCount"]),
    (fb._RoiService, omero.api.IRoiPrx, ["findByImage"]),
    (fb._UpdateService, omero.api.IUpdatePrx, ["saveAndReturnObject", "saveAndReturnArray"]),
    (fb.FakeTable, omero.grid.TablePrx, ["initialize", "addData", "getOriginalFile", "close"]),
    (
        fb.FakeClient,
        omero.clients.BaseClient,
        [
            "createSession",
            "joinSession",
            "getSessionId",
            "enableKeepAlive",
            "getSession",
            "closeSession",
            "getProperty",
        ],
    ),
    (fb.FakeServiceOpts, gw.utils.ServiceOptsDict, ["setOmeroGroup", "getOmeroGroup"]),
]


def _params(func) -> list[str] | None:
    sig = inspect.signature(func)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()):
        return None  # omero-py decorates some getters with (*args, **kwargs)
    return [n for n in sig.parameters if n != "self" and n not in CTX]


@pytest.mark.parametrize(
    ("fake", "real", "name"),
    [(f, r, n) for f, r, names in PAIRS for n in names],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_fake_method_matches_omero_py(fake, real, name):
    real_func = getattr(real, name, None)
    assert real_func is not None, f"omero-py has no {real.__name__}.{name} (fake is stale)"
    fake_func = getattr(fake, name, None)
    assert fake_func is not None, f"the fake lacks {name}"
    expected = _params(real_func)
    if expected is not None:
        assert _params(fake_func) == expected


def test_fake_returns_real_model_objects_where_omero_py_does():
    server = fb.standard_server()
    img = server.images[server.named["b"]]
    client = fb.FakeClient(server, server.host, 4064)
    client.createSession("alice", "secret-pw")
    conn = fb.FakeBlitzGateway(client)
    image = conn.getObject("Image", img.id)
    size = image.getPixelSizeX(units="MICROMETER")
    assert isinstance(size, omero.model.LengthI) and size.getValue() == pytest.approx(0.2)
    assert image.getPixelSizeX() == 200.0  # no units: a plain number, as omero-py
    store = conn.createRawPixelsStore()
    store.setPixelsId(img.pixels_id, True, {"omero.group": str(img.group)})
    assert all(
        isinstance(d, omero.api.ResolutionDescription) for d in store.getResolutionDescriptions()
    )
    raw = store.getPlane(1, 0, 0)
    np.testing.assert_array_equal(
        np.frombuffer(raw, ">u2").reshape(12, 10), img.data[0, 0, 1]
    )  # big-endian bytes, like the server
    # the wrapper-level helpers decode like omero-py's PixelsWrapper
    np.testing.assert_array_equal(image.getPrimaryPixels().getPlane(1, 1, 0), img.data[0, 1, 1])
    with pytest.raises(omero.SecurityViolation):
        store.setPixelsId(img.pixels_id, True, {"omero.group": "999"})
