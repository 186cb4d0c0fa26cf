"""Seeded generators of realistic synthetic microscopy images with ground truth.

Three kinds of sample, each a plain function of a shape, a count and a seed:

* :func:`make_nuclei_2d` -- a widefield DAPI-like image of nuclei and their
  ground-truth labels;
* :func:`make_spots_timelapse` -- a time-lapse of drifting, diffusing,
  blinking spots and their ground-truth tracks;
* :func:`make_cells_3d` -- a two-channel (nuclei, membrane) confocal-like ZYX
  stack of cells and the ground-truth nuclei labels.

Everything is drawn from ``numpy.random.default_rng(seed)`` and computed with
numpy/scipy only, so the same arguments give the same bytes on every machine
(the bundled files in ``sample_data/`` are made with these functions, see
``scripts/make_sample_data.py``). The images go through the same steps as a
real acquisition: objects -> optical blur (PSF) -> uneven illumination and
background -> photon shot noise (Poisson) -> camera gain, offset and read
noise (Gaussian) -> ``uint16``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

__all__ = [
    "CELLS_3D_CHANNELS",
    "CELLS_3D_VOXEL_SIZE_UM",
    "NUCLEI_PIXEL_SIZE_UM",
    "SPOTS_FRAME_INTERVAL_S",
    "SPOTS_PIXEL_SIZE_UM",
    "TRACK_COLUMNS",
    "make_cells_3d",
    "make_nuclei_2d",
    "make_spots_timelapse",
]

#: Pixel size (micrometre) the nuclei images are drawn for (20x objective).
NUCLEI_PIXEL_SIZE_UM = 0.65
#: Pixel size (micrometre) of the spots time-lapse.
SPOTS_PIXEL_SIZE_UM = 0.2
#: Time between two frames (second) of the spots time-lapse.
SPOTS_FRAME_INTERVAL_S = 2.0
#: Voxel size (z, y, x) in micrometre of the 3D cells stack.
CELLS_3D_VOXEL_SIZE_UM = (1.0, 0.3, 0.3)
#: Channel names of the 3D cells stack, in channel order.
CELLS_3D_CHANNELS = ("DAPI", "Membrane")
#: Columns of the ground-truth tracks table (napari Tracks columns first).
TRACK_COLUMNS = ("track_id", "t", "y", "x", "after_blink")

_CAMERA_OFFSET = 100.0  # ADU added by the camera to every pixel
_READ_NOISE = 2.5  # ADU, Gaussian
_GAIN = 1.0  # ADU per photo-electron


# --- shared acquisition model ------------------------------------------------------------
def _check_shape(shape: Sequence[int], ndim: int, minimum: int, what: str) -> tuple[int, ...]:
    shape_t = tuple(int(s) for s in shape)
    if len(shape_t) != ndim:
        raise ValueError(f"{what}: shape must have {ndim} values, got {tuple(shape)}")
    if min(shape_t) < minimum:
        raise ValueError(f"{what}: every size in shape must be >= {minimum}, got {shape_t}")
    return shape_t


def _check_count(n: int, what: str, name: str) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"{what}: {name} must be a positive integer, got {n!r}")
    return int(n)


def _camera(photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn expected photon counts into a noisy ``uint16`` camera image."""
    electrons = rng.poisson(np.clip(photons, 0.0, None)).astype(np.float64)
    adu = electrons * _GAIN + _CAMERA_OFFSET + rng.normal(0.0, _READ_NOISE, photons.shape)
    return np.clip(np.rint(adu), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | Sequence[float]
) -> np.ndarray:
    """Gaussian-filtered white noise, rescaled to zero mean and unit standard deviation."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def _illumination(rng: np.random.Generator, shape: tuple[int, int], strength: float) -> np.ndarray:
    """Off-centre vignetting times a gentle tilt: 1 at its brightest, lower towards corners."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy = h * rng.uniform(0.3, 0.7)
    cx = w * rng.uniform(0.3, 0.7)
    r2 = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
    angle = rng.uniform(0, 2 * np.pi)
    tilt = (np.cos(angle) * (yy / h - 0.5) + np.sin(angle) * (xx / w - 0.5)) * 0.5 * strength
    field = (1.0 - strength * r2) * (1.0 + tilt)
    return field / field.max()


# --- 2D nuclei ---------------------------------------------------------------------------
def _nucleus_shape(rng: np.random.Generator, radius_range: tuple[float, float]) -> dict:
    """Draw the shape parameters of one nucleus (ellipse with a wobbly outline)."""
    a = rng.uniform(*radius_range)
    b = a * rng.uniform(0.6, 0.95)
    n_harm = 4
    return {
        "a": a,
        "b": b,
        "theta": rng.uniform(0, np.pi),
        "amps": rng.normal(0.0, 0.035, n_harm) / np.arange(1, n_harm + 1) ** 0.5,
        "phases": rng.uniform(0, 2 * np.pi, n_harm),
    }


def _nucleus_rho(p: dict, cy: float, cx: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Normalised radial coordinate of pixels: < 1 inside the nucleus, 1 on its outline."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(p["theta"]), np.sin(p["theta"])
    u = c * dx + s * dy
    v = -s * dx + c * dy
    phi = np.arctan2(v, u)
    wobble = 1.0 + sum(
        amp * np.cos((k + 2) * phi + ph)
        for k, (amp, ph) in enumerate(zip(p["amps"], p["phases"], strict=True))
    )
    return np.sqrt((u / p["a"]) ** 2 + (v / p["b"]) ** 2) / wobble


def _place_nuclei(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n: int,
    radius_range: tuple[float, float],
    touching_fraction: float,
) -> tuple[list[tuple[float, float, dict]], np.ndarray, np.ndarray]:
    """Place ``n`` nuclei: free ones apart, a fraction touching or slightly overlapping.

    Returns the (cy, cx, shape) of each nucleus, the label image (pixels shared
    by two nuclei go to the one whose centre they are relatively closer to) and
    the per-pixel normalised radius of the owning nucleus.
    """
    h, w = shape
    labels = np.zeros(shape, dtype=np.int32)
    best_rho = np.full(shape, np.inf)
    placed: list[tuple[float, float, dict]] = []
    margin = 2
    mean_area = np.pi * np.mean(radius_range) ** 2 * 0.78
    if n * mean_area > 0.45 * (h - 2 * margin) * (w - 2 * margin):
        raise ValueError(
            f"make_nuclei_2d: {n} nuclei of radius {radius_range} px cannot fit into an image "
            f"of shape {shape}; use fewer nuclei or a larger shape"
        )
    attempts = 0
    max_attempts = 200 * n + 1000
    while len(placed) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"make_nuclei_2d: could not fit {n} nuclei of radius {radius_range} px into an "
                f"image of shape {shape} (placed {len(placed)}); use fewer nuclei or a larger shape"
            )
        p = _nucleus_shape(rng, radius_range)
        reach = p["a"] * 1.2 + margin
        touching = placed and rng.random() < touching_fraction
        if touching:
            oy, ox, op = placed[rng.integers(len(placed))]
            angle = rng.uniform(0, 2 * np.pi)
            dist = (0.5 * (op["a"] + op["b"]) + 0.5 * (p["a"] + p["b"])) * rng.uniform(0.8, 0.97)
            cy, cx = oy + dist * np.sin(angle), ox + dist * np.cos(angle)
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if not (reach <= cy <= h - 1 - reach and reach <= cx <= w - 1 - reach):
            continue
        y0, y1 = int(cy - reach), int(cy + reach) + 2
        x0, x1 = int(cx - reach), int(cx + reach) + 2
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rho = _nucleus_rho(p, cy, cx, yy, xx)
        inside = rho < 1.0
        area = int(inside.sum())
        if area < 20:
            continue
        occupied = labels[y0:y1, x0:x1] > 0
        overlap = int((inside & occupied).sum())
        # keep free nuclei at least a couple of pixels apart from everything
        near = ndi.binary_dilation(inside, iterations=2) & occupied
        if not touching and near.any():
            continue
        if touching and overlap > 0.12 * area:
            continue
        own = inside & (rho < best_rho[y0:y1, x0:x1])
        labels[y0:y1, x0:x1][own] = len(placed) + 1
        best_rho[y0:y1, x0:x1][own] = rho[own]
        placed.append((cy, cx, p))
    labels = _keep_largest_parts(labels)
    return placed, labels, best_rho


def _keep_largest_parts(labels: np.ndarray) -> np.ndarray:
    """Make every label one connected region (a sliver cut off by a neighbour is dropped)."""
    out = labels.copy()
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels[sl] == i
        parts, n_parts = ndi.label(region)
        if n_parts > 1:
            sizes = np.bincount(parts.ravel())[1:]
            keep = parts == (np.argmax(sizes) + 1)
            out[sl][region & ~keep] = 0
    return out


def make_nuclei_2d(
    shape: Sequence[int] = (512, 512),
    n_nuclei: int = 60,
    seed: int = 0,
    *,
    radius_range: tuple[float, float] = (7.0, 13.0),
    touching_fraction: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a widefield image of stained nuclei and its ground-truth labels.

    Nuclei are irregular ellipses of varied size, orientation and brightness,
    with chromatin-like texture (fine granules, bright chromocentres, darker
    nucleoli). About ``touching_fraction`` of them are placed against a
    neighbour, touching or overlapping slightly; the labels still separate
    them. The image is blurred by a Gaussian PSF, lit unevenly (off-centre
    vignetting and a tilt), has out-of-focus haze and a smooth background, and
    carries Poisson shot noise, a camera offset of 100 ADU and Gaussian read
    noise. Drawn for a pixel size of :data:`NUCLEI_PIXEL_SIZE_UM`.

    Parameters
    ----------
    shape : sequence of int
        Image shape ``(y, x)``; each side at least 64.
    n_nuclei : int
        Number of nuclei; all of them lie entirely inside the image.
    seed : int
        Seed of ``numpy.random.default_rng``: same seed, same bytes.
    radius_range : tuple of float
        Range of the long semi-axis of the nuclei, in pixels.
    touching_fraction : float
        Probability that a nucleus is placed against an existing one.

    Returns
    -------
    image : numpy.ndarray
        ``uint16`` image of the given shape.
    labels : numpy.ndarray
        ``uint16`` ground-truth labels, ``1..n_nuclei``, 0 is background.

    Raises
    ------
    ValueError
        If the shape or count is invalid, or the nuclei do not fit.
    """
    what = "make_nuclei_2d"
    shape_t = _check_shape(shape, 2, 64, what)
    n = _check_count(n_nuclei, what, "n_nuclei")
    if not 0.0 <= touching_fraction <= 1.0:
        raise ValueError(f"{what}: touching_fraction must be in [0, 1], got {touching_fraction}")
    if not 2.0 <= radius_range[0] <= radius_range[1]:
        raise ValueError(f"{what}: radius_range must be (low, high) with 2 <= low <= high")
    rng = np.random.default_rng(seed)
    placed, labels, _ = _place_nuclei(rng, shape_t, n, radius_range, touching_fraction)

    fine = _smooth_field(rng, shape_t, 0.9)
    coarse = _smooth_field(rng, shape_t, 2.5)
    signal = np.zeros(shape_t)
    for cy, cx, p in placed:
        reach = p["a"] * 1.2 + 3
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, shape_t[0])
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, shape_t[1])
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rho = _nucleus_rho(p, cy, cx, yy, xx)
        # soft edge about one pixel wide
        mask = 1.0 / (1.0 + np.exp(-(1.0 - rho) * p["b"] / 0.6))
        mitotic = rng.random() < 0.06
        brightness = rng.lognormal(np.log(700.0), 0.3) * (2.0 if mitotic else 1.0)
        dome = 0.8 + 0.2 * np.clip(1.0 - rho**2, 0.0, 1.0)
        texture = 1.0 + rng.uniform(0.12, 0.25) * fine[y0:y1, x0:x1]
        texture += rng.uniform(0.05, 0.15) * coarse[y0:y1, x0:x1]
        body = brightness * mask * dome * np.clip(texture, 0.2, None)
        # bright chromocentres and darker nucleoli, inside the outline
        for _ in range(rng.poisson(2.0 if mitotic else 4.0)):
            r, ang = p["b"] * 0.7 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            sy, sx = cy + r * np.sin(ang), cx + r * np.cos(ang)
            g = np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * rng.uniform(0.8, 1.4) ** 2))
            body += brightness * rng.uniform(0.3, 0.8) * g * mask
        if not mitotic:
            for _ in range(rng.integers(0, 3)):
                r, ang = p["b"] * 0.5 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
                sy, sx = cy + r * np.sin(ang), cx + r * np.cos(ang)
                g = np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * rng.uniform(1.5, 2.5) ** 2))
                body *= 1.0 - rng.uniform(0.25, 0.45) * g
        signal[y0:y1, x0:x1] += body

    blurred = ndi.gaussian_filter(signal, 1.2)
    haze = ndi.gaussian_filter(signal, 12.0) * 0.12
    background = 45.0 * (1.0 + 0.25 * _smooth_field(rng, shape_t, 40.0))
    illumination = _illumination(rng, shape_t, strength=0.9)
    photons = (blurred + haze + np.clip(background, 5.0, None)) * illumination
    return _camera(photons, rng), labels.astype(np.uint16)


# --- spots time-lapse --------------------------------------------------------------------
def _drift_velocity(
    y: np.ndarray, x: np.ndarray, shape: tuple[int, int], flow: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Return the common velocity field (px per frame): uniform drift plus a gentle swirl."""
    h, w = shape
    vy = flow["vy"] + flow["amp"] * np.sin(2 * np.pi * x / w + flow["phase_x"])
    vx = flow["vx"] + flow["amp"] * np.sin(2 * np.pi * y / h + flow["phase_y"])
    return vy, vx


def _blink_mask(rng: np.random.Generator, n_frames: int, p_off: float) -> np.ndarray:
    """Visible frames of one spot: off for 1 or 2 frames at a time, never at its ends."""
    visible = np.ones(n_frames, dtype=bool)
    t = 1
    while t < n_frames - 1:
        if rng.random() < p_off:
            length = 1 if rng.random() < 0.7 else 2
            visible[t : min(t + length, n_frames - 1)] = False
            t += length + 1
        else:
            t += 1
    return visible


def make_spots_timelapse(
    shape: Sequence[int] = (30, 256, 256),
    n_spots: int = 40,
    seed: int = 1,
    *,
    spot_sigma: float = 1.3,
    blink_probability: float = 0.04,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Make a time-lapse of moving, blinking spots and their ground-truth tracks.

    ``n_spots`` particles are simulated on a domain a little larger than the
    field of view. Each moves with a common, smoothly varying drift field plus
    its own constant velocity and Brownian steps (two mobility populations),
    so spots enter and leave the field; some appear or vanish during the
    movie, and a visible spot blinks off for one or two frames now and then.
    Spots are Gaussian (sigma ``spot_sigma`` px, about 2-3 px radius) with
    varied brightness and slow bleaching, on an uneven background with shot
    and read noise. Steps are at most a few pixels per frame and spots are
    sparse, so trackpy (e.g. ``diameter=7, search_range=6, memory=2``) can link
    them. Drawn for :data:`SPOTS_PIXEL_SIZE_UM` and
    :data:`SPOTS_FRAME_INTERVAL_S`.

    Parameters
    ----------
    shape : sequence of int
        Movie shape ``(t, y, x)``; at least 2 frames of 32 x 32 pixels.
    n_spots : int
        Number of simulated particles.
    seed : int
        Seed of ``numpy.random.default_rng``: same seed, same bytes.
    spot_sigma : float
        Standard deviation of the spot PSF, in pixels.
    blink_probability : float
        Chance per frame that a visible spot switches off.

    Returns
    -------
    movie : numpy.ndarray
        ``uint16`` array of the given shape.
    tracks : pandas.DataFrame
        One row per visible spot per frame, sorted by ``track_id`` and ``t``,
        with columns ``track_id`` (int, from 1), ``t`` (int), ``y``, ``x``
        (float, pixel coordinates of the spot centre) and ``after_blink``
        (bool, True when the spot was off in the frame(s) just before). A
        particle's track ends when it leaves the field; if it comes back it
        gets a new ``track_id``. Rows exist only for frames where the centre
        lies inside the image and the spot is on.

    Raises
    ------
    ValueError
        If the shape, count or parameters are invalid.
    """
    what = "make_spots_timelapse"
    n_t, h, w = shape_t = _check_shape(shape, 3, 2, what)
    if min(h, w) < 32:
        raise ValueError(f"{what}: the frames must be at least 32 x 32 pixels, got {shape_t}")
    n = _check_count(n_spots, what, "n_spots")
    if not 0.5 <= spot_sigma <= 5.0:
        raise ValueError(f"{what}: spot_sigma must be in [0.5, 5] pixels, got {spot_sigma}")
    if not 0.0 <= blink_probability < 0.5:
        raise ValueError(f"{what}: blink_probability must be in [0, 0.5), got {blink_probability}")
    rng = np.random.default_rng(seed)

    direction = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.6, 0.9)
    flow = {
        "vy": speed * np.sin(direction),
        "vx": speed * np.cos(direction),
        "amp": 0.35,
        "phase_x": rng.uniform(0, 2 * np.pi),
        "phase_y": rng.uniform(0, 2 * np.pi),
    }
    # start positions upstream of the field too, so that spots flow in
    y = rng.uniform(-max(flow["vy"], 0) * n_t - 5.0, h - 1 - min(flow["vy"], 0) * n_t + 5.0, n)
    x = rng.uniform(-max(flow["vx"], 0) * n_t - 5.0, w - 1 - min(flow["vx"], 0) * n_t + 5.0, n)
    own_vy, own_vx = rng.normal(0.0, 0.25, n), rng.normal(0.0, 0.25, n)
    step = np.where(rng.random(n) < 0.3, 0.9, 0.35)  # Brownian step per axis, px / frame
    start = np.where(rng.random(n) < 0.15, rng.integers(1, max(n_t // 2, 2), n), 0)
    end = np.where(rng.random(n) < 0.15, rng.integers(max(n_t // 2, 1), n_t, n), n_t)
    end = np.maximum(end, np.minimum(start + 2, n_t))
    amplitude = rng.lognormal(np.log(160.0), 0.3, n)  # peak photons

    ys = np.empty((n_t, n))
    xs = np.empty((n_t, n))
    for t in range(n_t):
        ys[t], xs[t] = y, x
        vy, vx = _drift_velocity(y, x, (h, w), flow)
        y = y + vy + own_vy + rng.normal(0.0, 1.0, n) * step
        x = x + vx + own_vx + rng.normal(0.0, 1.0, n) * step
    blinking = np.stack([_blink_mask(rng, n_t, blink_probability) for _ in range(n)], axis=1)
    frames = np.arange(n_t)[:, None]
    alive = (frames >= start[None, :]) & (frames < end[None, :])
    in_field = (ys >= 0) & (ys <= h - 1) & (xs >= 0) & (xs <= w - 1)
    shown = alive & blinking  # rendered (also when a little outside the field)

    background = 40.0 * (1.0 + 0.35 * _smooth_field(rng, (h, w), 25.0))
    background = np.clip(background, 8.0, None) * _illumination(rng, (h, w), strength=0.5)
    flicker = rng.lognormal(0.0, 0.12, (n_t, n))
    bleach = np.exp(-np.arange(n_t) / 120.0)
    movie = np.empty(shape_t, dtype=np.uint16)
    half = int(np.ceil(4 * spot_sigma))
    for t in range(n_t):
        photons = background * (0.7 + 0.3 * bleach[t])
        for i in np.flatnonzero(shown[t]):
            cy, cx = ys[t, i], xs[t, i]
            y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 2, h)
            x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 2, w)
            if y0 >= y1 or x0 >= x1:
                continue
            gy = np.exp(-((np.arange(y0, y1) - cy) ** 2) / (2 * spot_sigma**2))
            gx = np.exp(-((np.arange(x0, x1) - cx) ** 2) / (2 * spot_sigma**2))
            peak = amplitude[i] * flicker[t, i] * bleach[t]
            photons[y0:y1, x0:x1] += peak * gy[:, None] * gx[None, :]
        movie[t] = _camera(photons, rng)

    rows: list[tuple[int, int, float, float, bool]] = []
    track_id = 0
    segments: list[tuple[int, int, int]] = []  # (first frame, particle, last frame)
    for i in range(n):
        present = alive[:, i] & in_field[:, i]
        t = 0
        while t < n_t:
            if present[t]:
                t_end = t
                while t_end + 1 < n_t and present[t_end + 1]:
                    t_end += 1
                segments.append((t, i, t_end))
                t = t_end + 1
            else:
                t += 1
    for t0, i, t1 in sorted(segments):
        visible = [t for t in range(t0, t1 + 1) if blinking[t, i]]
        if not visible:
            continue
        track_id += 1
        previous = None
        for t in visible:
            gap = previous is not None and t - previous > 1
            rows.append((track_id, t, float(ys[t, i]), float(xs[t, i]), bool(gap)))
            previous = t
    tracks = pd.DataFrame(rows, columns=list(TRACK_COLUMNS))
    tracks = tracks.astype({"track_id": np.int64, "t": np.int64, "after_blink": bool})
    return movie, tracks


# --- 3D cells ----------------------------------------------------------------------------
def _spread_points(
    rng: np.random.Generator, n: int, low: np.ndarray, high: np.ndarray, candidates: int = 30
) -> np.ndarray:
    """Well-spread random points in a box (Mitchell's best-candidate sampling)."""
    points = [rng.uniform(low, high)]
    for _ in range(n - 1):
        cand = rng.uniform(low, high, (candidates, len(low)))
        dist = np.min(np.linalg.norm(cand[:, None, :] - np.asarray(points)[None], axis=2), axis=1)
        points.append(cand[np.argmax(dist)])
    return np.asarray(points)


def make_cells_3d(
    shape: Sequence[int] = (24, 128, 128),
    n_cells: int = 12,
    seed: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a two-channel confocal-like ZYX stack of cells and its nuclei labels.

    A layer of packed, rounded cells (each an ellipsoid, neighbours sharing a
    flat membrane) lies on a coverslip. Channel 0 (``"DAPI"``) shows each
    cell's textured, ellipsoidal nucleus; channel 1 (``"Membrane"``) shows the
    cell outlines plus faint cytoplasm. Voxels are anisotropic,
    :data:`CELLS_3D_VOXEL_SIZE_UM` ``(z, y, x)``; the PSF is elongated in z,
    the signal dims with depth, and both channels carry shot and read noise.

    Parameters
    ----------
    shape : sequence of int
        Stack shape ``(z, y, x)``; at least 12 planes of 64 x 64 pixels.
    n_cells : int
        Number of cells (and nuclei); every nucleus lies inside the stack.
    seed : int
        Seed of ``numpy.random.default_rng``: same seed, same bytes.

    Returns
    -------
    image : numpy.ndarray
        ``uint16`` array ``(2, z, y, x)``, channels :data:`CELLS_3D_CHANNELS`.
    nuclei_labels : numpy.ndarray
        ``uint16`` ground-truth nuclei labels ``(z, y, x)``, ``1..n_cells``.

    Raises
    ------
    ValueError
        If the shape or count is invalid or the cells do not fit.
    """
    what = "make_cells_3d"
    shape_t = _check_shape(shape, 3, 12, what)
    nz, ny, nx = shape_t
    if min(ny, nx) < 64:
        raise ValueError(f"{what}: the planes must be at least 64 x 64 pixels, got {shape_t}")
    n = _check_count(n_cells, what, "n_cells")
    rng = np.random.default_rng(seed)
    vz, vy, vx = CELLS_3D_VOXEL_SIZE_UM
    extent = np.array([ny * vy, nx * vx])
    spacing = np.sqrt(extent.prod() / n)  # typical distance between cell centres (um)
    nuc_r = float(np.clip(0.3 * spacing, 1.5, 4.0))  # nucleus radius in y/x (um)
    if 2 * nuc_r + 2 * vz > nz * vz or 2 * nuc_r + 1.0 > extent.min():
        raise ValueError(f"{what}: {n} cells do not fit in a stack of shape {shape_t}")
    margin = nuc_r * 1.15 + 0.5
    centres = _spread_points(rng, n, np.full(2, margin), extent - margin)

    zz, yy, xx = np.meshgrid(
        np.arange(nz) * vz, np.arange(ny) * vy, np.arange(nx) * vx, indexing="ij"
    )
    # cells: domes standing on the coverslip; each voxel belongs to the cell whose
    # dome it is relatively deepest in, so neighbours share a flat membrane
    z_base = float(np.clip(0.15 * nz * vz, vz, 4.0))
    cell_rxy = 0.75 * spacing * rng.uniform(0.9, 1.1, n)
    cell_rz = min(nz * vz - z_base - 2.0 * vz, 1.3 * spacing) * rng.uniform(0.8, 0.95, n)
    best = np.full(shape_t, np.inf)
    cells = np.zeros(shape_t, dtype=np.int32)
    above = zz >= z_base
    for i in range(n):
        rho = np.sqrt(
            ((yy - centres[i, 0]) ** 2 + (xx - centres[i, 1]) ** 2) / cell_rxy[i] ** 2
            + (zz - z_base) ** 2 / cell_rz[i] ** 2
        )
        own = (rho < 1.0) & (rho < best) & above
        cells[own] = i + 1
        best[own] = rho[own]

    nuclei = np.zeros(shape_t, dtype=np.int32)
    dna = np.zeros(shape_t)
    texture = _smooth_field(rng, shape_t, (0.6, 1.5, 1.5))
    foci = _smooth_field(rng, shape_t, (0.8, 2.5, 2.5))
    for i in range(n):
        r_xy = nuc_r * rng.uniform(0.85, 1.05, 2)
        r_z = min(nuc_r * rng.uniform(0.75, 0.95), 0.4 * cell_rz[i])
        off = rng.normal(0.0, 0.1 * nuc_r, 2)
        cz = z_base + max(r_z + 1.0, 0.4 * cell_rz[i])
        cy, cx = centres[i] + off
        rho = np.sqrt(
            ((yy - cy) / r_xy[0]) ** 2 + ((xx - cx) / r_xy[1]) ** 2 + ((zz - cz) / r_z) ** 2
        )
        inside = (rho < 1.0) & (cells == i + 1)
        nuclei[inside] = i + 1
        soft = 1.0 / (1.0 + np.exp(-(1.0 - rho) * nuc_r / 0.25)) * (cells == i + 1)
        brightness = rng.lognormal(np.log(500.0), 0.25)
        tex = np.clip(1.0 + 0.3 * texture + 0.5 * np.clip(foci - 1.0, 0, None), 0.3, None)
        dna += brightness * soft * tex

    outline = np.zeros(shape_t, dtype=bool)
    for axis in range(3):
        a = np.swapaxes(cells, 0, axis)
        o = np.swapaxes(outline, 0, axis)
        diff = a[1:] != a[:-1]
        o[1:] |= diff & (a[1:] > 0)
        o[:-1] |= diff & (a[:-1] > 0)
    membrane = 600.0 * outline + 60.0 * (cells > 0) * (1.0 + 0.3 * texture)

    sigma = (0.9, 1.3, 1.3)  # PSF in voxels: elongated in z once scaled to um
    depth = np.exp(-(np.arange(nz) * vz) / 40.0)[:, None, None]
    out = np.empty((2, *shape_t), dtype=np.uint16)
    for c, (signal, bg) in enumerate(((dna, 20.0), (membrane, 25.0))):
        blurred = ndi.gaussian_filter(signal, sigma) + ndi.gaussian_filter(signal, 6.0) * 0.08
        out[c] = _camera((blurred + bg) * depth, rng)
    return out, nuclei.astype(np.uint16)
