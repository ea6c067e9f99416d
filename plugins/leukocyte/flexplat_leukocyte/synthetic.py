"""Procedural stained blood smears: the built-in dataset that needs no download.

Each image is a field of a Wright/Giemsa-like peripheral smear rendered with Beer-Lambert
optics (every object adds optical density, so overlaps darken naturally): a pale plasma
background, many overlapping red cells (pink discs with a paler centre and a darker rim), a
few platelets, and ONE leukocyte at a random position, fully inside the image, drawn by type:

- lymphocyte: small; a round dark blue-purple nucleus filling most of the cell, thin pale-blue rim
- monocyte: large; kidney- or horseshoe-shaped lacy nucleus, grey-blue cytoplasm, a few vacuoles
- neutrophil: 3-5 nuclear lobes joined by thin strands, lilac finely granular cytoplasm
- eosinophil: bilobed nucleus, cytoplasm packed with coarse orange-red granules
- basophil: dense dark-purple granules that hide most of the nucleus

Stain hue/strength, background tint, illumination gradient, blur and noise vary per image.
Labels: 0 background, 1 cytoplasm, 2 nucleus; the whole-cell mask is their union. A basophil is
labelled nucleus throughout (like LISC's single-level basophil masks). Sizes are given for a
256-px image and scale with ``size`` (the field of view stays the same). Deterministic: image
``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flexplat_leukocyte import warp
from flexplat_leukocyte.classes import CYTOPLASM, NUCLEUS, TYPES
from flexplat_leukocyte.dataset import GenerateOptions, Original, write_dataset

DEFAULT_SIZE = 256
RENDERER_VERSION = 1  # bump when the drawing changes, so cached demo data is regenerated
SUPERSAMPLE = 4
RBC_RADIUS = (14.5, 18.5)
RBC_TEMPLATES = 12  # distinct red cells drawn per image, each reused at many positions
_WHITE = 238.0


def _od(rgb: Sequence[float]) -> np.ndarray:
    """Optical density (per channel) of a stain that shows as ``rgb`` on a white background."""
    return -np.log(np.asarray(rgb, np.float32) / _WHITE)


_RBC = (_od((206, 136, 140)), _od((168, 140, 146)))  # pink-red .. grey-mauve red cells
_PLATELET = _od((150, 110, 175))
_PLASMA = _od((228, 214, 222))
_BACKGROUNDS = np.array(
    [[232, 224, 228], [236, 230, 212], [222, 224, 232], [234, 222, 216], [214, 220, 200], [226, 226, 214]], np.float32
)


def render_smear(
    rng: np.random.Generator, cls: str, size: int = DEFAULT_SIZE, zoom: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Render one smear field with one leukocyte of class ``cls``.

    ``zoom`` magnifies everything (1.0: a 256-px image is about 7 red cells across, like LISC);
    small images for quick training may use a zoom > 1 so cells keep enough pixels.

    Returns ``(image, labels)``: a BGR uint8 image ``size x size x 3`` and uint8 part labels
    (0 background, 1 cytoplasm, 2 nucleus).
    """
    if cls not in CELL_TYPES:
        raise ValueError(f"unknown leukocyte class {cls!r}; choose from {', '.join(CELL_TYPES)}")
    if not 0.25 <= zoom <= 4.0:
        raise ValueError(f"zoom must be within 0.25..4, got {zoom}")
    u = size / 256.0 * zoom
    stain_h = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    stain_e = rng.uniform(0.7, 1.25) * rng.uniform(0.88, 1.12, 3).astype(np.float32)

    # plasma: faint blotchy tint and drying streaks
    plasma = _smooth_noise(rng, size, 24 * u, 0.5, 1.5) * rng.uniform(0.3, 1.0)
    plasma += _streaks(rng, size, u) * rng.uniform(0.0, 1.0)

    # the leukocyte (geometry first: red cells keep clear of it)
    look = CELL_TYPES[cls]
    radius = rng.uniform(*look.radius) * u
    half = int(np.ceil(radius * 1.2 + 3))
    cx = rng.uniform(half, size - half - 1)
    cy = rng.uniform(half, size - half - 1)
    body, nucleus, granules, cyto = _leukocyte(rng, cls, radius, half, cx - int(cx), cy - int(cy), u)
    x0, y0 = int(cx) - half, int(cy) - half
    window = (slice(y0, y0 + 2 * half + 1), slice(x0, x0 + 2 * half + 1))

    # red cells (pushed under the leukocyte), platelets; densities -> optical density in one product
    rbc = _red_cells(rng, size, u, (cx, cy, radius))
    rbc[window] *= 1.0 - 0.85 * body
    mix = rng.random()
    stains = np.stack([_PLASMA, ((1 - mix) * _RBC[0] + mix * _RBC[1]) * stain_e, _PLATELET * stain_h])
    platelets = _platelets(rng, size, u, (cx, cy, radius))
    od = cv2.transform(cv2.merge([plasma, rbc, platelets]), stains.T)  # per pixel: densities @ stains

    cell = [body * cyto, nucleus, granules]
    stains = [look.cytoplasm * stain_h, look.nucleus * stain_h, np.zeros(3, np.float32)]
    if look.granules is not None:
        stains[2] = look.granules * (stain_e if look.granule_stain == "eosin" else stain_h)
    od[window] += cv2.transform(cv2.merge(cell), np.stack(stains).T)

    # optics: illumination x transmission, blur, noise
    background = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))] + rng.uniform(-7, 7, 3).astype(np.float32)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    gx, gy, vignette = rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08), rng.uniform(0.0, 0.5)
    light = 1.0 + gx * grid[None, :] + gy * grid[:, None] - vignette * (grid[None, :] ** 2 + grid[:, None] ** 2)
    np.negative(od, out=od)
    np.exp(od, out=od)
    od *= light[..., None]
    od *= background
    image = cv2.GaussianBlur(od, (0, 0), rng.uniform(0.35, 1.0) * u)
    noise = rng.random(image.shape, dtype=np.float32)
    image += (noise - 0.5) * (rng.uniform(1.0, 3.5) * np.sqrt(12.0))  # uniform noise, std 1..3.5 levels
    image = cv2.cvtColor(np.clip(image, 0, 255, out=image).round().astype(np.uint8), cv2.COLOR_RGB2BGR)

    labels = np.zeros((size, size), np.uint8)
    cell = body > 0.5
    part = np.where(nucleus > 0.5, NUCLEUS, CYTOPLASM).astype(np.uint8)
    if look.single_level:
        part[:] = NUCLEUS
    labels[window] = np.where(cell, part, 0)
    return image, labels


def _smooth_noise(rng: np.random.Generator, size: int, scale: float, lo: float, hi: float) -> np.ndarray:
    """Smooth random field in [lo, hi] with features of about ``scale`` pixels."""
    cells = max(2, int(round(size / max(scale, 1.0))) + 1)
    field = cv2.resize(rng.random((cells, cells), dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(lo + (hi - lo) * field, min(lo, hi), max(lo, hi))


def _streaks(rng: np.random.Generator, size: int, u: float) -> np.ndarray:
    """Smooth noise stretched along a random direction (the drying pattern of a smear), in [0, 1]."""
    grid = rng.random((size // 4 + 2, size // 4 + 2), dtype=np.float32)
    angle = rng.uniform(0, np.pi)
    xs = np.arange(size, dtype=np.float32)[None, :] - size / 2
    ys = np.arange(size, dtype=np.float32)[:, None] - size / 2
    along = (xs * np.cos(angle) + ys * np.sin(angle)) / (40.0 * u) + grid.shape[1] / 2
    across = (ys * np.cos(angle) - xs * np.sin(angle)) / (5.0 * u) + grid.shape[0] / 2
    return cv2.remap(
        grid, along.astype(np.float32), across.astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )


def _red_cells(rng: np.random.Generator, size: int, u: float, wbc: tuple[float, float, float]) -> np.ndarray:
    """Density map of overlapping red cells (biconcave: pale centre, darker rim)."""
    density = np.zeros((size, size), np.float32)
    bank = [_rbc_template(rng, rng.uniform(*RBC_RADIUS) * u) for _ in range(RBC_TEMPLATES)]
    radii = np.array([r for r, _ in bank], np.float32)
    coverage = rng.uniform(0.45, 0.95)
    target = int(coverage * size * size / (np.pi * float(np.mean(radii)) ** 2))
    count = 4 * target + 8
    centres = rng.uniform(-radii.mean(), size + radii.mean(), (count, 2)).astype(np.float32)
    kinds = rng.integers(0, RBC_TEMPLATES, count)
    r = radii[kinds]
    wx, wy, wr = wbc
    min_gap = rng.uniform(1.1, 1.6)  # centre distance / mean radius; < 2 lets discs overlap
    blocked = np.hypot(centres[:, 0] - wx, centres[:, 1] - wy) < wr + 0.35 * r
    dist = np.hypot(centres[:, None, 0] - centres[None, :, 0], centres[:, None, 1] - centres[None, :, 1])
    conflict = dist < min_gap * 0.5 * (r[:, None] + r[None, :])
    placed = 0
    for i in range(count):
        if placed >= target:
            break
        if blocked[i]:
            continue
        blocked |= conflict[i]
        placed += 1
        _paste(density, bank[kinds[i]][1], int(round(centres[i, 0])), int(round(centres[i, 1])))
    return density


def _rbc_template(rng: np.random.Generator, r: float) -> tuple[float, np.ndarray]:
    """One red cell of radius ``r``: slightly elliptic disc, pale centre, darker rim, soft edge."""
    ecc, angle = rng.uniform(0.0, 0.12), rng.uniform(0, np.pi)
    pallor, rim = rng.uniform(0.35, 0.7), rng.uniform(0.15, 0.45)
    half = int(np.ceil(r * (1 + ecc))) + 1
    grid = np.arange(-half, half + 1, dtype=np.float32)
    xs, ys = grid[None, :], grid[:, None]
    c, s = np.cos(angle), np.sin(angle)
    xr, yr = (xs * c + ys * s) / (1 + ecc), (ys * c - xs * s) / (1 - ecc)
    rho = np.sqrt(xr * xr + yr * yr) / r
    edge = np.clip((1.0 - rho) * r + 0.5, 0.0, 1.0)
    profile = 1.0 - pallor * np.exp(-((rho / 0.5) ** 2)) + rim * np.exp(-(((rho - 0.9) / 0.09) ** 2))
    return r, (edge * profile).astype(np.float32)


def _paste(canvas: np.ndarray, stamp: np.ndarray, cx: int, cy: int) -> None:
    """Add ``stamp`` centred at (cx, cy), clipped to the canvas."""
    half = stamp.shape[0] // 2
    h, w = canvas.shape
    xa, ya = cx - half, cy - half
    xb, yb = xa + stamp.shape[1], ya + stamp.shape[0]
    sx, sy = max(0, -xa), max(0, -ya)
    ex, ey = stamp.shape[1] - max(0, xb - w), stamp.shape[0] - max(0, yb - h)
    if sx < ex and sy < ey:
        canvas[ya + sy : ya + ey, xa + sx : xa + ex] += stamp[sy:ey, sx:ex]


def _platelets(rng: np.random.Generator, size: int, u: float, wbc: tuple[float, float, float]) -> np.ndarray:
    canvas = np.zeros((size, size), np.float32)
    wx, wy, wr = wbc
    for _ in range(rng.integers(0, 5)):
        x, y = rng.uniform(0, size - 1, 2)
        if np.hypot(x - wx, y - wy) < wr + 4 * u:
            continue
        canvas[int(y), int(x)] = rng.uniform(0.6, 1.0)
    sigma = 1.6 * u
    return np.minimum(cv2.GaussianBlur(canvas, (0, 0), sigma) * (2 * np.pi * sigma * sigma), 1.0)


def _leukocyte(
    rng: np.random.Generator, cls: str, radius: float, half: int, fx: float, fy: float, u: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Body alpha, nucleus density, granule density and cytoplasm density on a (2*half+1)^2 patch.

    The cell centre is at patch pixel ``(half + fx, half + fy)``. What differs by type comes
    from :data:`CELL_TYPES`: the nucleus shape, the chromatin contrast and the cytoplasm.
    """
    look = CELL_TYPES[cls]
    n = 2 * half + 1
    body = _body(rng, n, half + fx, half + fy, radius)
    canvas = _Canvas(n, half + fx, half + fy)
    look.nucleus_shape(rng, canvas, radius, rng.uniform(0, 2 * np.pi))
    nucleus = np.minimum(canvas.alpha(), body)

    # chromatin: clumpy texture; lymphocytes densest, monocytes lacy
    texture = 1.0 + look.chromatin * (
        _smooth_noise(rng, n, 3.0 * u, -1.0, 1.0) + 0.5 * _smooth_noise(rng, n, 1.5 * u, -1.0, 1.0)
    )
    nucleus_density = nucleus * np.clip(texture, 0.45, 1.6)

    cyto, granules, nucleus_scale = look.inside(rng, body > 0.6, nucleus, u)
    if nucleus_scale != 1.0:
        nucleus_density *= nucleus_scale
    f32 = np.float32
    return body.astype(f32), nucleus_density.astype(f32), (granules * body).astype(f32), np.clip(cyto, 0, 2).astype(f32)


def _body(rng: np.random.Generator, n: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Alpha of a slightly irregular disc of ``radius`` centred at patch pixel (cx, cy)."""
    xs = np.arange(n, dtype=np.float32)[None, :] - cx
    ys = np.arange(n, dtype=np.float32)[:, None] - cy
    dist = np.sqrt(xs * xs + ys * ys)
    phi = np.arctan2(ys, xs)
    outline = np.ones_like(phi)
    for k in (2, 3, 5):
        outline += rng.uniform(0.0, 0.035 if k < 5 else 0.012) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    return np.clip(radius * outline - dist + 0.5, 0.0, 1.0)


# --- nucleus shapes: draw into the canvas, r = cell radius, rot = the cell's random orientation ---


def _lymphocyte_nucleus(rng: np.random.Generator, canvas: _Canvas, r: float, rot: float) -> None:
    """A round nucleus filling most of the cell, sometimes with a small indentation."""
    off = rng.uniform(0.0, 0.12) * r
    centre = (off * np.cos(rot), off * np.sin(rot))
    canvas.ellipse(centre, (rng.uniform(0.76, 0.86) * r, rng.uniform(0.7, 0.8) * r), rng.uniform(0, 180))
    if rng.random() < 0.35:
        canvas.circle((centre[0] + 0.75 * r * np.cos(rot), centre[1] + 0.75 * r * np.sin(rot)), 0.22 * r, 0)


def _monocyte_nucleus(rng: np.random.Generator, canvas: _Canvas, r: float, rot: float) -> None:
    """Kidney (an ellipse with a bite out of one long side) or horseshoe (a thick arc)."""
    if rng.random() < 0.5:
        canvas.ellipse((0.1 * r * np.cos(rot), 0.1 * r * np.sin(rot)), (0.66 * r, 0.5 * r), np.degrees(rot) + 90)
        bite = rng.uniform(0.28, 0.38) * r
        canvas.circle((-(0.42 * r + 0.5 * bite) * np.cos(rot), -(0.42 * r + 0.5 * bite) * np.sin(rot)), bite, 0)
    else:
        span = rng.uniform(180, 250)
        axes = (rng.uniform(0.42, 0.5) * r, rng.uniform(0.36, 0.44) * r)
        canvas.arc((0, 0), axes, np.degrees(rot), -span / 2, span / 2, rng.uniform(0.34, 0.44) * r)


def _neutrophil_nucleus(rng: np.random.Generator, canvas: _Canvas, r: float, rot: float) -> None:
    """3-5 lobes along an arc, joined by thin strands."""
    lobes = int(rng.integers(3, 6))
    path_r, span = rng.uniform(0.36, 0.46) * r, np.radians(rng.uniform(130, 240))
    angles = rot + np.linspace(-span / 2, span / 2, lobes) + rng.uniform(-0.15, 0.15, lobes)
    centres = [(path_r * np.cos(a), path_r * np.sin(a)) for a in angles]
    for a, c in zip(angles, centres, strict=True):
        axes = (rng.uniform(0.25, 0.31) * r, rng.uniform(0.19, 0.25) * r)
        canvas.ellipse(c, axes, np.degrees(a) + 90 + rng.uniform(-30, 30))
    for c0, c1 in zip(centres, centres[1:], strict=False):
        canvas.line(c0, c1, rng.uniform(0.05, 0.09) * r)


def _eosinophil_nucleus(rng: np.random.Generator, canvas: _Canvas, r: float, rot: float) -> None:
    """Two lobes, slightly bent, joined by a strand."""
    d = rng.uniform(0.3, 0.4) * r
    bend = rng.uniform(-0.12, 0.12) * r
    nx, ny = -np.sin(rot) * bend, np.cos(rot) * bend
    centres = [(d * np.cos(rot) + nx, d * np.sin(rot) + ny), (-d * np.cos(rot) + nx, -d * np.sin(rot) + ny)]
    for c in centres:
        axes = (rng.uniform(0.26, 0.33) * r, rng.uniform(0.21, 0.27) * r)
        canvas.ellipse(c, axes, np.degrees(rot) + 90 + rng.uniform(-25, 25))
    canvas.line(centres[0], centres[1], rng.uniform(0.05, 0.09) * r)


def _basophil_nucleus(rng: np.random.Generator, canvas: _Canvas, r: float, rot: float) -> None:
    """2-3 overlapping lobes (mostly hidden by granules later)."""
    for _ in range(int(rng.integers(2, 4))):
        a = rng.uniform(0, 2 * np.pi)
        canvas.ellipse((0.22 * r * np.cos(a), 0.22 * r * np.sin(a)), (0.32 * r, 0.26 * r), rng.uniform(0, 180))


# --- cytoplasm: (rng, inner body mask, nucleus alpha, u) -> (cytoplasm density, granules, nucleus scale) ---
_Inside = tuple[np.ndarray, np.ndarray, float]


def _lymphocyte_inside(rng: np.random.Generator, inner: np.ndarray, nucleus: np.ndarray, u: float) -> _Inside:
    """Even, pale cytoplasm of random strength; no granules."""
    cyto = np.ones(inner.shape, np.float32)
    cyto *= rng.uniform(0.8, 1.2)
    return cyto, np.zeros(inner.shape, np.float32), 1.0


def _monocyte_inside(rng: np.random.Generator, inner: np.ndarray, nucleus: np.ndarray, u: float) -> _Inside:
    """Mottled cytoplasm with a few vacuoles (pale spots) away from the nucleus."""
    cyto = np.ones(inner.shape, np.float32)
    cyto *= _smooth_noise(rng, inner.shape[0], 4 * u, 0.8, 1.15)
    cyto -= 0.7 * _spots(rng, inner & (nucleus < 0.1), int(rng.integers(0, 6)), 1.6 * u, 1.0)
    return cyto, np.zeros(inner.shape, np.float32), 1.0


def _neutrophil_inside(rng: np.random.Generator, inner: np.ndarray, nucleus: np.ndarray, u: float) -> _Inside:
    """Fine, faint granules all over the cell."""
    granules = _spots(rng, inner, int(inner.sum() / (6.0 * u * u)), 0.7 * u, rng.uniform(0.3, 0.5))
    return np.ones(inner.shape, np.float32), granules, 1.0


def _eosinophil_inside(rng: np.random.Generator, inner: np.ndarray, nucleus: np.ndarray, u: float) -> _Inside:
    """Coarse granules packed everywhere, fainter over the nucleus."""
    count = int(inner.sum() / (7.0 * u * u))
    granules = _spots(rng, inner, count, 1.1 * u, 1.0) * np.where(nucleus > 0.5, 0.45, 1.0)
    return np.ones(inner.shape, np.float32), np.minimum(granules, 1.35), 1.0


def _basophil_inside(rng: np.random.Generator, inner: np.ndarray, nucleus: np.ndarray, u: float) -> _Inside:
    """Dense dark granules over the whole cell; the nucleus underneath shows at half strength."""
    count = int(inner.sum() / (7.0 * u * u))
    granules = np.minimum(_spots(rng, inner, count, rng.uniform(1.0, 1.4) * u, 1.0), 1.3)
    return np.ones(inner.shape, np.float32), granules, 0.5


@dataclass(frozen=True)
class CellType:
    """How one leukocyte type is drawn (sizes for a 256-px image at zoom 1)."""

    radius: tuple[float, float]  # cell radius range, px
    nucleus: np.ndarray  # stain optical densities (R, G, B) at full density
    cytoplasm: np.ndarray
    granules: np.ndarray | None  # None: no granule stain
    granule_stain: str  # which stain's per-image variation tints the granules: "hematoxylin" or "eosin"
    chromatin: float  # contrast of the chromatin texture
    nucleus_shape: Callable[[np.random.Generator, _Canvas, float, float], None]
    inside: Callable[[np.random.Generator, np.ndarray, np.ndarray, float], _Inside]
    single_level: bool = False  # labelled nucleus throughout (like LISC's basophil masks)


CELL_TYPES: dict[str, CellType] = {
    "basophil": CellType(
        radius=(23.0, 28.0),
        nucleus=_od((95, 60, 140)),
        cytoplasm=_od((185, 150, 200)),
        granules=_od((62, 28, 92)),
        granule_stain="hematoxylin",
        chromatin=0.25,
        nucleus_shape=_basophil_nucleus,
        inside=_basophil_inside,
        single_level=True,
    ),
    "eosinophil": CellType(
        radius=(27.0, 32.0),
        nucleus=_od((100, 66, 140)),
        cytoplasm=_od((228, 204, 200)),
        granules=_od((226, 132, 96)),
        granule_stain="eosin",
        chromatin=0.25,
        nucleus_shape=_eosinophil_nucleus,
        inside=_eosinophil_inside,
    ),
    "lymphocyte": CellType(
        radius=(18.5, 23.5),
        nucleus=_od((78, 58, 138)),
        cytoplasm=_od((172, 192, 228)),
        granules=None,
        granule_stain="hematoxylin",
        chromatin=0.3,
        nucleus_shape=_lymphocyte_nucleus,
        inside=_lymphocyte_inside,
    ),
    "monocyte": CellType(
        radius=(31.0, 39.0),
        nucleus=_od((128, 100, 165)),
        cytoplasm=_od((184, 180, 208)),
        granules=None,
        granule_stain="hematoxylin",
        chromatin=0.35,
        nucleus_shape=_monocyte_nucleus,
        inside=_monocyte_inside,
    ),
    "neutrophil": CellType(
        radius=(26.0, 31.0),
        nucleus=_od((95, 60, 140)),
        cytoplasm=_od((216, 192, 218)),
        granules=_od((200, 165, 200)),
        granule_stain="hematoxylin",
        chromatin=0.25,
        nucleus_shape=_neutrophil_nucleus,
        inside=_neutrophil_inside,
    ),
}
CELL_RADIUS = {name: look.radius for name, look in CELL_TYPES.items()}


def _spots(rng: np.random.Generator, where: np.ndarray, count: int, sigma: float, strength: float) -> np.ndarray:
    """``count`` Gaussian spots (peak ~ ``strength`` each) at random pixels of ``where``."""
    canvas = np.zeros(where.shape, np.float32)
    candidates = np.flatnonzero(where)
    if count <= 0 or candidates.size == 0:
        return canvas
    picks = rng.choice(candidates, size=count, replace=True)
    np.add.at(canvas.reshape(-1), picks, rng.uniform(0.6, 1.0, count).astype(np.float32) * strength)
    return cv2.GaussianBlur(canvas, (0, 0), sigma) * (2 * np.pi * sigma * sigma)


class _Canvas:
    """Anti-aliased filled shapes, drawn supersampled with OpenCV and averaged down."""

    def __init__(self, n: int, cx: float, cy: float) -> None:
        self.n, self.cx, self.cy = n, cx, cy
        self.image = np.zeros((n * SUPERSAMPLE, n * SUPERSAMPLE), np.uint8)

    def _pt(self, p: tuple[float, float]) -> tuple[int, int]:
        f = SUPERSAMPLE
        return (int(round((self.cx + p[0] + 0.5) * f - 0.5)), int(round((self.cy + p[1] + 0.5) * f - 0.5)))

    def _len(self, value: float) -> int:
        return max(1, int(round(value * SUPERSAMPLE)))

    def ellipse(self, centre, axes, angle: float, value: int = 255) -> None:
        cv2.ellipse(self.image, self._pt(centre), (self._len(axes[0]), self._len(axes[1])), angle, 0, 360, value, -1)

    def circle(self, centre, radius: float, value: int = 255) -> None:
        cv2.circle(self.image, self._pt(centre), self._len(radius), value, -1)

    def line(self, p0, p1, width: float, value: int = 255) -> None:
        cv2.line(self.image, self._pt(p0), self._pt(p1), value, self._len(width))

    def arc(self, centre, axes, angle: float, start: float, end: float, width: float, value: int = 255) -> None:
        """A thick elliptical arc with round ends."""
        cv2.ellipse(
            self.image,
            self._pt(centre),
            (self._len(axes[0]), self._len(axes[1])),
            angle,
            start,
            end,
            value,
            self._len(width),
        )
        a = np.radians(angle)
        for t in (np.radians(start), np.radians(end)):
            ex, ey = axes[0] * np.cos(t), axes[1] * np.sin(t)
            end_point = (centre[0] + ex * np.cos(a) - ey * np.sin(a), centre[1] + ex * np.sin(a) + ey * np.cos(a))
            self.circle(end_point, width / 2, value)

    def alpha(self) -> np.ndarray:
        small = cv2.resize(self.image, (self.n, self.n), interpolation=cv2.INTER_AREA)
        return small.astype(np.float32) / 255.0


def synthetic_originals(count: int) -> list[Original]:
    """``count`` originals cycling through the 5 types: baso_1, eosi_1, lymp_1, mono_1, neut_1, baso_2, ..."""
    return [Original(f"{TYPES[i % 5][0]}_{i // 5 + 1}", TYPES[i % 5][1]) for i in range(count)]


def generate_synthetic(
    count: int,
    out: Path,
    *,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    split: tuple[float, float, float] = (0.70, 0.15, 0.15),
    augment: Sequence[str] = (),
    parts: bool = False,
    warp_options: warp.WarpOptions | None = None,
    zoom: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write ``count`` synthetic smears (+ augmented copies of train originals if asked) to ``out``.

    Same layout and manifest as :func:`flexplat_leukocyte.lisc.generate_lisc`; returns the manifest.
    """
    originals = synthetic_originals(count)
    index = {o.id: i for i, o in enumerate(originals)}

    def load(original: Original) -> tuple[np.ndarray, np.ndarray]:
        return render_smear(np.random.default_rng([seed, index[original.id]]), original.cls, size, zoom)

    options = GenerateOptions(size, seed, split, tuple(augment), parts, warp_options or warp.WarpOptions())
    return write_dataset(
        out,
        originals,
        load,
        options,
        kind="synthetic",
        source="synthetic",
        overwrite=overwrite,
        progress=progress,
        extra=lambda: {"synthetic": {"count": count, "zoom": zoom, "renderer": RENDERER_VERSION}},
    )
