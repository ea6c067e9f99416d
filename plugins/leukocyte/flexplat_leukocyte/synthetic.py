"""Procedural stained blood smears: the built-in dataset that needs no download.

Each image is a field of a Wright/Giemsa-like peripheral smear rendered with Beer-Lambert
optics (every object adds optical density, so overlaps darken naturally): a plasma background,
many overlapping red cells (discs with a paler centre and a darker rim), a few platelets, and
ONE leukocyte at a random position, fully inside the image (randomised: sometimes cut off by the
edge, as in a tile), drawn by type (table :data:`CELL_TYPES`):

- lymphocyte: small; a round dark blue-purple nucleus filling most of the cell, thin pale-blue rim
- monocyte: large; kidney- or horseshoe-shaped lacy nucleus, grey-blue cytoplasm, a few vacuoles
- neutrophil: 3-5 nuclear lobes joined by thin strands, lilac finely granular cytoplasm
- eosinophil: bilobed nucleus, cytoplasm packed with coarse orange-red granules
- basophil: dense dark-purple granules that hide most of the nucleus

Everything random about an image is drawn first, as a :class:`Style`, then the image is drawn
from it. The classic style (default) keeps one LISC-like look, with mild stain, illumination,
blur and noise variation. With a :class:`Randomization` (domain randomisation, used by the demo
so its model carries to real smears) the style varies widely: stain colours mixed from several
measured palettes (:data:`PALETTES`: classic Wright, yellowish, grey) then hue-rotated and
re-saturated, stain densities, the cell's size relative to the image and to the red cells,
red-cell look and density (none to crowded, touching and overlapping the leukocyte), background
texture, exposure (with clipping), illumination gradients, blur, noise and gamma.

Labels: 0 background, 1 cytoplasm, 2 nucleus; the whole-cell mask is their union. A basophil is
labelled nucleus throughout (like LISC's single-level basophil masks). Sizes are given for a
256-px image at zoom 1 and scale with ``size`` (the field of view stays the same).
Deterministic: image ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from flexplat_leukocyte import warp
from flexplat_leukocyte.classes import CYTOPLASM, NUCLEUS, TYPES
from flexplat_leukocyte.dataset import GenerateOptions, Original, write_dataset

DEFAULT_SIZE = 256
RENDERER_VERSION = 2  # bump when the drawing changes, so cached demo data is regenerated
SUPERSAMPLE = 4
RBC_RADIUS = (14.5, 18.5)
RBC_TEMPLATES = 12  # distinct red cells drawn per image, each reused at many positions
REFERENCE_RADIUS = 28.0  # a mid-sized leukocyte at zoom 1 (256 px): what Randomization.cell_fraction sizes
ZOOM_LIMITS = (0.25, 4.0)
_WHITE = 238.0


def _od(rgb: Sequence[float], light: Sequence[float] = (_WHITE,) * 3) -> np.ndarray:
    """Optical density (per channel) of a stain that shows as ``rgb`` where bare glass shows ``light``."""
    return -np.log(np.asarray(rgb, np.float32) / np.asarray(light, np.float32))


@dataclass(frozen=True)
class Palette:
    """One look of a stained smear: the light through bare glass (R, G, B) and stain optical densities.

    ``nucleus`` and ``cytoplasm`` are a neutrophil's; the other types keep their per-channel ratio
    to the neutrophil's colours of the classic palette (:data:`CELL_TYPES`).
    """

    light: np.ndarray
    plasma: np.ndarray
    red_cell: np.ndarray
    nucleus: np.ndarray
    cytoplasm: np.ndarray


def _palette(light: Sequence[float], plasma, red_cell, nucleus, cytoplasm) -> Palette:
    """A palette from colours as they show (R, G, B) on glass that shows ``light``."""
    ods = (_od(c, light) for c in (plasma, red_cell, nucleus, cytoplasm))
    return Palette(np.asarray(light, np.float32), *ods)


# "yellowish" and "grey": median colours measured on two public sets of real smears (Zheng et al.
# 2018 dataset 1; the KRD-WBC sample); only these numbers are used, no image is shipped.
PALETTES: dict[str, Palette] = {
    "wright": _palette((238, 238, 238), (228, 214, 222), (206, 136, 140), (95, 60, 140), (216, 192, 218)),
    "yellowish": _palette((255, 255, 179), (253, 252, 176), (240, 215, 150), (106, 22, 100), (189, 137, 126)),
    "grey": _palette((209, 206, 182), (205, 202, 178), (128, 112, 112), (114, 64, 122), (156, 130, 145)),
}
_RBC = (_od((206, 136, 140)), _od((168, 140, 146)))  # classic: pink-red .. grey-mauve red cells
_PLATELET = _od((150, 110, 175))
_PLASMA = _od((228, 214, 222))
_BACKGROUNDS = np.array(
    [[232, 224, 228], [236, 230, 212], [222, 224, 232], [234, 222, 216], [214, 220, 200], [226, 226, 214]], np.float32
)


@dataclass(frozen=True)
class Randomization:
    """Ranges of the domain randomisation; every value is drawn uniformly per image unless noted.

    Densities and saturation are factors on the mixed palette; sizes of blur are in units of
    ``u = size / 256 * zoom`` (they scale with the magnification, like a microscope's defocus).
    """

    cell_fraction: tuple[float, float] = (0.15, 0.9)  # diameter of a mid-sized leukocyte / image side, log-uniform
    cut_off: float = 0.25  # chance that the leukocyte may extend past the image edge (as in a tile)
    classic: float = 0.2  # chance of the classic LISC-like look (at the drawn scale) instead of a random one
    palettes: tuple[str, ...] = ("wright", "yellowish", "grey")  # mixed with Dirichlet(0.5) weights
    hue_degrees: float = 30.0  # every stain's hue rotated by up to +/- this (one angle per image)
    saturation: tuple[float, float] = (0.6, 1.6)
    nucleus_density: tuple[float, float] = (0.6, 1.5)
    cytoplasm_density: tuple[float, float] = (0.4, 1.8)
    red_cell_density: tuple[float, float] = (0.1, 1.4)
    red_cell_saturation: tuple[float, float] = (0.0, 1.3)  # extra factor: grey to vivid red cells
    light_tint: float = 0.06  # each channel of the light x 1 +/- this
    exposure: tuple[float, float] = (0.9, 1.3)  # light x this, clipped at 255 (over-exposed glass)
    red_cell_size: tuple[float, float] = (0.75, 1.25)  # red-cell radius x this (relative to the leukocyte)
    red_cell_coverage: tuple[float, float] = (0.0, 1.0)  # fraction of the field covered: none to crowded
    red_cell_gap: tuple[float, float] = (0.9, 1.7)  # closest centre distance / mean diameter; < 2 overlaps
    red_cell_clearance: tuple[float, float] = (-0.4, 0.6)  # x red-cell radius; < 0: red cells overlap it
    red_cell_under: tuple[float, float] = (0.3, 1.0)  # how much red cells fade under the leukocyte
    red_cell_fill: tuple[float, float] = (0.5, 1.0)  # per red cell: interior density (low: ring-like)
    red_cell_pallor: tuple[float, float] = (0.0, 0.9)  # per red cell: paleness of the centre
    red_cell_rim: tuple[float, float] = (0.0, 1.2)  # per red cell: extra density of the rim
    red_cell_halo: tuple[float, float] = (0.0, 0.5)  # per red cell: bright refractile ring just outside
    granule_density: tuple[float, float] = (0.6, 1.4)  # eosinophil granules (the others follow the nucleus)
    outline: tuple[float, float] = (0.5, 2.5)  # irregularity of the leukocyte's outline (classic 1)
    nucleus_size: tuple[float, float] = (0.8, 1.3)  # nucleus drawn at this x the cell radius
    plasma_tint: tuple[float, float] = (0.0, 1.5)  # blotchy plasma tint
    streaks: tuple[float, float] = (0.0, 1.5)  # drying streaks
    texture: tuple[float, float] = (0.0, 1.0)  # fibrous background texture strength
    gradient: float = 0.25  # illumination slope across the image, +/- per axis
    vignette: tuple[float, float] = (0.0, 0.6)
    blur: tuple[float, float] = (0.3, 2.2)  # Gaussian sigma in u, log-uniform
    noise: tuple[float, float] = (0.5, 6.0)  # standard deviation in grey levels
    gamma: tuple[float, float] = (0.8, 1.25)  # log-uniform

    def __post_init__(self) -> None:
        unknown = [name for name in self.palettes if name not in PALETTES]
        if unknown or not self.palettes:
            raise ValueError(f"palettes: choose from {', '.join(PALETTES)}, got {list(self.palettes)}")


@dataclass(frozen=True)
class Style:
    """Everything random about one image but the positions and shapes, drawn before any pixel."""

    zoom: float
    whole_cell: bool  # False: the leukocyte may be cut off by the image edge (as in a tile or crop)
    light: np.ndarray  # R, G, B of bare glass (may exceed 255: clipped, over-exposed)
    plasma: np.ndarray  # stain optical densities (R, G, B)
    red_cell: np.ndarray
    platelet: np.ndarray
    nucleus: np.ndarray
    cytoplasm: np.ndarray
    granules: np.ndarray
    plasma_tint: float  # strength of the blotchy plasma tint
    streaks: float  # strength of the drying streaks
    texture: float  # strength of the fibrous texture
    outline: float  # irregularity of the leukocyte's outline
    nucleus_size: float
    red_cell_size: float
    red_cell_coverage: float
    red_cell_gap: float
    red_cell_clearance: float
    red_cell_under: float  # how much red cells fade where the leukocyte lies over them
    red_cell_look: dict[str, tuple[float, float]] = field(default_factory=dict)  # ranges per red cell
    gradient: tuple[float, float] = (0.0, 0.0)
    vignette: float = 0.0
    blur: float = 0.5  # Gaussian sigma in pixels
    noise: float = 2.0  # grey levels
    gamma: float = 1.0


_CLASSIC_RED_CELL = {"fill": (1.0, 1.0), "pallor": (0.35, 0.7), "rim": (0.15, 0.45), "halo": (0.0, 0.0)}


def render_smear(
    rng: np.random.Generator,
    cls: str,
    size: int = DEFAULT_SIZE,
    zoom: float = 1.0,
    randomization: Randomization | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one smear field with one leukocyte of class ``cls``.

    ``zoom`` magnifies everything (1.0: a 256-px image is about 7 red cells across, like LISC);
    small images for quick training may use a zoom > 1 so cells keep enough pixels. With
    ``randomization`` the look varies widely (see :class:`Randomization`) and the magnification
    is drawn per image from its ``cell_fraction`` (times ``zoom``). A cell too large for the
    image is drawn as large as fits.

    Returns ``(image, labels)``: a BGR uint8 image ``size x size x 3`` and uint8 part labels
    (0 background, 1 cytoplasm, 2 nucleus).
    """
    return draw_smear(rng, cls, size, sample_style(rng, cls, size, zoom, randomization))


RED_CELL_TO_LEUKOCYTE = (0.4, 0.8)  # red-cell diameter / leukocyte diameter (7.5 um against 9-18 um)
FIELD_BLUR = (0.3, 1.2)  # Gaussian sigma in pixels: light, as a pasted cell keeps its own focus
FIELD_COVERAGE = (0.3, 1.0)  # share of the field covered by red cells: from sparse to crowded


def render_field(
    rng: np.random.Generator, size: tuple[int, int], object_diameter: float, randomization: Randomization | None = None
) -> np.ndarray:
    """An RGB uint8 smear field WITHOUT a leukocyte, for leukocytes ``object_diameter`` pixels across.

    The background that copy-paste augmentation moves real leukocytes onto (the ``blood-smear``
    background): plasma, red cells from none to crowded (sized against the leukocyte, see
    :data:`RED_CELL_TO_LEUKOCYTE`), platelets, in a domain-randomised look (``randomization``,
    default :class:`Randomization`).
    """
    height, width = size
    side = max(height, width)
    style = sample_style(rng, "neutrophil", side, 1.0, randomization or Randomization())
    red_cell_radius = rng.uniform(*RED_CELL_TO_LEUKOCYTE) * object_diameter / 2.0
    u = red_cell_radius / (float(np.mean(RBC_RADIUS)) * style.red_cell_size)
    style = replace(
        style, zoom=u * 256.0 / side, blur=rng.uniform(*FIELD_BLUR), red_cell_coverage=rng.uniform(*FIELD_COVERAGE)
    )
    far = (-10.0 * side, -10.0 * side, 0.0)  # no leukocyte for the red cells to keep clear of
    layers = [_plasma(rng, side, u, style), _red_cells(rng, side, u, far, style), _platelets(rng, side, u, far)]
    stains = np.stack([style.plasma, style.red_cell, style.platelet])
    od = cv2.transform(cv2.merge([np.float32(layer) for layer in layers]), stains.T)
    return cv2.cvtColor(_optics(rng, od, style)[:height, :width], cv2.COLOR_BGR2RGB)


def sample_style(
    rng: np.random.Generator, cls: str, size: int, zoom: float = 1.0, randomization: Randomization | None = None
) -> Style:
    """Draw the :class:`Style` of one image: classic, or domain-randomised within ``randomization``."""
    if cls not in CELL_TYPES:
        raise ValueError(f"unknown leukocyte class {cls!r}; choose from {', '.join(CELL_TYPES)}")
    if not ZOOM_LIMITS[0] <= zoom <= ZOOM_LIMITS[1]:
        raise ValueError(f"zoom must be within {ZOOM_LIMITS[0]}..{ZOOM_LIMITS[1]}, got {zoom}")
    if randomization is None:
        return _classic_style(rng, CELL_TYPES[cls], size, zoom)
    return _random_style(rng, CELL_TYPES[cls], size, zoom, randomization)


def _classic_style(rng: np.random.Generator, look: CellType, size: int, zoom: float) -> Style:
    """One LISC-like look with mild variation of stain strength and hue, light, blur and noise."""
    stain_h = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    stain_e = rng.uniform(0.7, 1.25) * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    granules = np.zeros(3, np.float32)
    if look.granules is not None:
        granules = look.granules * (stain_e if look.granule_stain == "eosin" else stain_h)
    mix = rng.random()
    u = size / 256.0 * zoom
    return Style(
        zoom=zoom,
        whole_cell=True,
        light=_BACKGROUNDS[rng.integers(len(_BACKGROUNDS))] + rng.uniform(-7, 7, 3).astype(np.float32),
        plasma=_PLASMA,
        red_cell=((1 - mix) * _RBC[0] + mix * _RBC[1]) * stain_e,
        platelet=_PLATELET * stain_h,
        nucleus=look.nucleus * stain_h,
        cytoplasm=look.cytoplasm * stain_h,
        granules=granules,
        plasma_tint=rng.uniform(0.3, 1.0),
        streaks=rng.uniform(0.0, 1.0),
        texture=0.0,
        outline=1.0,
        nucleus_size=1.0,
        red_cell_size=1.0,
        red_cell_coverage=rng.uniform(0.45, 0.95),
        red_cell_gap=rng.uniform(1.1, 1.6),
        red_cell_clearance=0.35,
        red_cell_under=0.85,
        red_cell_look=_CLASSIC_RED_CELL,
        gradient=(rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)),
        vignette=rng.uniform(0.0, 0.5),
        blur=rng.uniform(0.35, 1.0) * u,
        noise=rng.uniform(1.0, 3.5),
    )


def _random_style(rng: np.random.Generator, look: CellType, size: int, zoom: float, spec: Randomization) -> Style:
    """A widely varied look (see :class:`Randomization`); a share of them the classic look at a random scale."""
    zoom = _random_zoom(rng, zoom, spec)
    if rng.random() < spec.classic:
        return _classic_style(rng, look, size, zoom)
    u = size / 256.0 * zoom
    palette = _mix_palettes(rng, spec.palettes)
    hue, saturation = np.radians(rng.uniform(-spec.hue_degrees, spec.hue_degrees)), rng.uniform(*spec.saturation)
    classic = PALETTES["wright"]
    nucleus_gain, cytoplasm_gain = palette.nucleus / classic.nucleus, palette.cytoplasm / classic.cytoplasm
    nucleus_density, cytoplasm_density = rng.uniform(*spec.nucleus_density), rng.uniform(*spec.cytoplasm_density)
    granules = np.zeros(3, np.float32)
    if look.granules is not None:
        gain, density = (
            (1.0, rng.uniform(*spec.granule_density))
            if look.granule_stain == "eosin"
            else (nucleus_gain, nucleus_density)
        )
        granules = recolour(look.granules * gain, hue, saturation, density)
    red_saturation, red_density = (
        saturation * rng.uniform(*spec.red_cell_saturation),
        rng.uniform(*spec.red_cell_density),
    )
    tint = rng.uniform(1 - spec.light_tint, 1 + spec.light_tint, 3).astype(np.float32)
    light = palette.light * tint * rng.uniform(*spec.exposure)
    cytoplasm = recolour(look.cytoplasm * cytoplasm_gain, hue, saturation, cytoplasm_density)
    return Style(
        zoom=zoom,
        whole_cell=bool(rng.random() >= spec.cut_off),
        light=light,
        plasma=recolour(palette.plasma, hue, saturation, 1.0),
        red_cell=recolour(palette.red_cell, hue, red_saturation, red_density),
        platelet=recolour(_PLATELET * nucleus_gain, hue, saturation, nucleus_density),
        nucleus=recolour(look.nucleus * nucleus_gain, hue, saturation, nucleus_density),
        cytoplasm=visible(cytoplasm, light),
        granules=granules,
        plasma_tint=rng.uniform(*spec.plasma_tint),
        streaks=rng.uniform(*spec.streaks),
        texture=rng.uniform(*spec.texture),
        outline=rng.uniform(*spec.outline),
        nucleus_size=rng.uniform(*spec.nucleus_size),
        red_cell_size=rng.uniform(*spec.red_cell_size),
        red_cell_coverage=rng.uniform(*spec.red_cell_coverage),
        red_cell_gap=rng.uniform(*spec.red_cell_gap),
        red_cell_clearance=rng.uniform(*spec.red_cell_clearance),
        red_cell_under=rng.uniform(*spec.red_cell_under),
        red_cell_look={part: getattr(spec, f"red_cell_{part}") for part in ("fill", "pallor", "rim", "halo")},
        gradient=(rng.uniform(-spec.gradient, spec.gradient), rng.uniform(-spec.gradient, spec.gradient)),
        vignette=rng.uniform(*spec.vignette),
        blur=_log_uniform(rng, spec.blur) * u,
        noise=rng.uniform(*spec.noise),
        gamma=_log_uniform(rng, spec.gamma),
    )


def _random_zoom(rng: np.random.Generator, zoom: float, spec: Randomization) -> float:
    """The magnification of one randomised image: the drawn cell fraction x ``zoom``, within ZOOM_LIMITS
    (a cell too large for the image is shrunk to fit when drawn)."""
    drawn = _log_uniform(rng, spec.cell_fraction) * 256.0 / (2.0 * REFERENCE_RADIUS) * zoom
    return float(min(max(drawn, ZOOM_LIMITS[0]), ZOOM_LIMITS[1]))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _mix_palettes(rng: np.random.Generator, names: Sequence[str]) -> Palette:
    """A random convex mix (Dirichlet(0.5) weights, so often one palette dominates) of the named palettes."""
    weights = rng.dirichlet(np.full(len(names), 0.5)).astype(np.float32)
    chosen = [PALETTES[name] for name in names]

    def mix(attr: str) -> np.ndarray:
        return sum((w * getattr(p, attr) for w, p in zip(weights, chosen, strict=True)), np.zeros(3, np.float32))

    return Palette(*(mix(attr) for attr in ("light", "plasma", "red_cell", "nucleus", "cytoplasm")))


def recolour(od: np.ndarray, hue: float, saturation: float, density: float) -> np.ndarray:
    """Stain ``od`` with its hue rotated by ``hue`` radians about the grey axis, its chroma (the part
    off the grey axis) scaled by ``saturation`` and everything by ``density``; never negative."""
    od = np.asarray(od, np.float32)
    grey = float(od.mean())
    chroma = od - grey
    axis = np.full(3, 1.0 / math.sqrt(3.0), np.float32)
    rotated = chroma * math.cos(hue) + np.cross(axis, chroma) * math.sin(hue)  # Rodrigues; chroma is off-axis
    return np.maximum((grey + saturation * rotated) * density, 0.0).astype(np.float32)


MIN_CONTRAST = 30.0
"""Grey levels (summed over R, G, B) by which a labelled stain must differ from the bare glass."""


def visible(od: np.ndarray, light: np.ndarray, min_contrast: float = MIN_CONTRAST) -> np.ndarray:
    """``od`` made denser if needed so that, seen on ``light`` (clipped at 255, as over-exposed glass
    is), it differs from the glass by at least ``min_contrast`` levels: what is labelled can be seen."""
    glass = np.minimum(light, 255.0)
    for _ in range(40):
        if np.abs(glass - np.minimum(light * np.exp(-od), 255.0)).sum() >= min_contrast:
            break
        od = od * 1.2 + 0.005
    return od.astype(np.float32)


def _extent(outline: float) -> float:
    """How far, per unit radius, an outline of this irregularity may reach (see :func:`_body`)."""
    return 1.0 + 0.09 * outline


def draw_smear(rng: np.random.Generator, cls: str, size: int, style: Style) -> tuple[np.ndarray, np.ndarray]:
    """Draw one smear with one leukocyte of class ``cls`` in ``style``: ``(BGR image, part labels)``."""
    look = CELL_TYPES[cls]
    u = size / 256.0 * style.zoom
    plasma = _plasma(rng, size, u, style)

    # the leukocyte (geometry first: red cells keep clear of it), whole and 1 px clear of the edge unless cut off
    radius = rng.uniform(*look.radius) * u
    if style.whole_cell:
        radius = min(radius, ((size - 3) / 2.0 - 3.0) / _extent(style.outline))
    half = int(np.ceil(radius * _extent(style.outline) + 2))
    if style.whole_cell:
        cx, cy = rng.uniform(half, size - half - 1), rng.uniform(half, size - half - 1)
    else:  # the centre at least half a radius inside: the nucleus and 40 % or more of the cell show
        inside = min(0.5 * radius, (size - 1) / 2.0)
        cx, cy = rng.uniform(inside, size - 1 - inside, 2)
    body, nucleus, granules, cyto = _leukocyte(rng, look, radius, half, cx - int(cx), cy - int(cy), u, style)
    window, patch = _overlap(int(cx) - half, int(cy) - half, 2 * half + 1, size)

    # red cells (pushed under the leukocyte), platelets; densities -> optical density in one product
    rbc = _red_cells(rng, size, u, (cx, cy, radius), style)
    rbc[window] *= 1.0 - style.red_cell_under * body[patch]
    platelets = _platelets(rng, size, u, (cx, cy, radius))
    stains = np.stack([style.plasma, style.red_cell, style.platelet])
    od = cv2.transform(cv2.merge([plasma, rbc, platelets]), stains.T)  # per pixel: densities @ stains
    cell = cv2.merge([body * cyto, nucleus, granules])[patch]
    od[window] += cv2.transform(cell, np.stack([style.cytoplasm, style.nucleus, style.granules]).T)
    image = _optics(rng, od, style)

    labels = np.zeros((size, size), np.uint8)
    part = np.where(nucleus > 0.5, NUCLEUS, CYTOPLASM).astype(np.uint8)
    if look.single_level:
        part[:] = NUCLEUS
    labels[window] = np.where(body > 0.5, part, 0)[patch]
    return image, labels


def _overlap(x0: int, y0: int, side: int, size: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Where a square patch at (x0, y0) overlaps a ``size`` image: (image slices, patch slices)."""
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, size), min(y0 + side, size)
    return (slice(ya, yb), slice(xa, xb)), (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))


def _plasma(rng: np.random.Generator, size: int, u: float, style: Style) -> np.ndarray:
    """Plasma density: a faint blotchy tint, drying streaks and (randomised) a fibrous texture."""
    plasma = _smooth_noise(rng, size, 24 * u, 0.5, 1.5) * style.plasma_tint
    plasma += _streaks(rng, size, u) * style.streaks
    if style.texture > 0:
        fibres = _streaks(rng, size, u, along=6.0, across=1.2) + _streaks(rng, size, u, along=6.0, across=1.2)
        # about +/- 0.1 optical density at full strength, whatever the plasma's own density
        plasma += (fibres - 1.0) * (0.1 * style.texture / max(float(np.mean(style.plasma)), 0.01))
    return plasma


def _optics(rng: np.random.Generator, od: np.ndarray, style: Style) -> np.ndarray:
    """Transmission x light (gradient, vignette), blur, noise, clipping, gamma -> BGR uint8."""
    size = od.shape[0]
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    (gx, gy), vignette = style.gradient, style.vignette
    light = 1.0 + gx * grid[None, :] + gy * grid[:, None] - vignette * (grid[None, :] ** 2 + grid[:, None] ** 2)
    np.negative(od, out=od)
    np.exp(od, out=od)
    od *= light[..., None]
    od *= np.asarray(style.light, np.float32)
    image = cv2.GaussianBlur(od, (0, 0), style.blur)
    noise = rng.random(image.shape, dtype=np.float32)
    image += (noise - 0.5) * (style.noise * np.sqrt(12.0))  # uniform noise of this standard deviation
    np.clip(image, 0, 255, out=image)
    if style.gamma != 1.0:
        image = 255.0 * (image / 255.0) ** style.gamma
    return cv2.cvtColor(image.round().astype(np.uint8), cv2.COLOR_RGB2BGR)


def _smooth_noise(rng: np.random.Generator, size: int, scale: float, lo: float, hi: float) -> np.ndarray:
    """Smooth random field in [lo, hi] with features of about ``scale`` pixels."""
    cells = max(2, int(round(size / max(scale, 1.0))) + 1)
    field = cv2.resize(rng.random((cells, cells), dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(lo + (hi - lo) * field, min(lo, hi), max(lo, hi))


def _streaks(rng: np.random.Generator, size: int, u: float, along: float = 40.0, across: float = 5.0) -> np.ndarray:
    """Smooth noise stretched along a random direction, in [0, 1]: features ``along`` x ``across`` u.

    The defaults give the drying pattern of a smear; short thin features give a fibrous texture.
    """
    grid = rng.random((size // 4 + 2, size // 4 + 2), dtype=np.float32)
    angle = rng.uniform(0, np.pi)
    xs = np.arange(size, dtype=np.float32)[None, :] - size / 2
    ys = np.arange(size, dtype=np.float32)[:, None] - size / 2
    map_x = (xs * np.cos(angle) + ys * np.sin(angle)) / (along * u) + grid.shape[1] / 2
    map_y = (ys * np.cos(angle) - xs * np.sin(angle)) / (across * u) + grid.shape[0] / 2
    return cv2.remap(
        grid, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )


def _red_cells(
    rng: np.random.Generator, size: int, u: float, wbc: tuple[float, float, float], style: Style
) -> np.ndarray:
    """Density map of overlapping red cells (biconcave: pale centre, darker rim), kept ``style``'s
    clearance from the leukocyte ``wbc`` = (x, y, radius)."""
    density = np.zeros((size, size), np.float32)
    bank = [
        _rbc_template(rng, rng.uniform(*RBC_RADIUS) * u * style.red_cell_size, style.red_cell_look)
        for _ in range(RBC_TEMPLATES)
    ]
    radii = np.array([r for r, _ in bank], np.float32)
    target = int(style.red_cell_coverage * size * size / (np.pi * float(np.mean(radii)) ** 2))
    count = 4 * target + 8
    centres = rng.uniform(-radii.mean(), size + radii.mean(), (count, 2)).astype(np.float32)
    kinds = rng.integers(0, RBC_TEMPLATES, count)
    r = radii[kinds]
    wx, wy, wr = wbc
    clear = np.hypot(centres[:, 0] - wx, centres[:, 1] - wy) >= wr + style.red_cell_clearance * r
    placed: list[int] = []  # a candidate is kept if it keeps the gap to every red cell kept before it
    for i in np.flatnonzero(clear):
        if len(placed) >= target:
            break
        if placed:
            dist = np.hypot(centres[placed, 0] - centres[i, 0], centres[placed, 1] - centres[i, 1])
            if np.any(dist < style.red_cell_gap * 0.5 * (r[i] + r[placed])):
                continue
        placed.append(int(i))
        _paste(density, bank[kinds[i]][1], int(round(centres[i, 0])), int(round(centres[i, 1])))
    return density


def _rbc_template(rng: np.random.Generator, r: float, look: dict[str, tuple[float, float]]) -> tuple[float, np.ndarray]:
    """One red cell of radius ``r``: slightly elliptic disc, soft edge; interior ``fill``, a pale
    centre (``pallor``), a darker ``rim`` and a bright refractile ``halo`` just outside (ranges in ``look``)."""
    ecc, angle = rng.uniform(0.0, 0.12), rng.uniform(0, np.pi)
    pallor, rim = rng.uniform(*look["pallor"]), rng.uniform(*look["rim"])
    fill, halo = rng.uniform(*look["fill"]), rng.uniform(*look["halo"])
    half = int(np.ceil(r * (1 + ecc) * (1.25 if halo else 1.0))) + 1
    grid = np.arange(-half, half + 1, dtype=np.float32)
    xs, ys = grid[None, :], grid[:, None]
    c, s = np.cos(angle), np.sin(angle)
    xr, yr = (xs * c + ys * s) / (1 + ecc), (ys * c - xs * s) / (1 - ecc)
    rho = np.sqrt(xr * xr + yr * yr) / r
    edge = np.clip((1.0 - rho) * r + 0.5, 0.0, 1.0)
    profile = fill * (1.0 - pallor * np.exp(-((rho / 0.5) ** 2))) + rim * np.exp(-(((rho - 0.9) / 0.09) ** 2))
    stamp = edge * profile
    if halo:
        stamp -= halo * np.exp(-(((rho - 1.08) / 0.06) ** 2)) * (1.0 - edge)
    return r, stamp.astype(np.float32)


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
    rng: np.random.Generator, look: CellType, radius: float, half: int, fx: float, fy: float, u: float, style: Style
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Body alpha, nucleus density, granule density and cytoplasm density on a (2*half+1)^2 patch.

    The cell centre is at patch pixel ``(half + fx, half + fy)``. What differs by type comes
    from ``look`` (:data:`CELL_TYPES`): the nucleus shape, the chromatin contrast and the cytoplasm.
    """
    n = 2 * half + 1
    body = _body(rng, n, half + fx, half + fy, radius, style.outline)
    canvas = _Canvas(n, half + fx, half + fy)
    look.nucleus_shape(rng, canvas, radius * style.nucleus_size, rng.uniform(0, 2 * np.pi))
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


def _body(rng: np.random.Generator, n: int, cx: float, cy: float, radius: float, irregularity: float) -> np.ndarray:
    """Alpha of an irregular disc of ``radius`` centred at patch pixel (cx, cy)."""
    xs = np.arange(n, dtype=np.float32)[None, :] - cx
    ys = np.arange(n, dtype=np.float32)[:, None] - cy
    dist = np.sqrt(xs * xs + ys * ys)
    phi = np.arctan2(ys, xs)
    outline = np.ones_like(phi)
    for k in (2, 3, 5):
        amplitude = rng.uniform(0.0, 0.035 if k < 5 else 0.012) * irregularity
        outline += amplitude * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
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
    randomization: Randomization | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write ``count`` synthetic smears (+ augmented copies of train originals if asked) to ``out``.

    ``randomization``: domain-randomised looks (see :class:`Randomization`), else the classic one.
    Same layout and manifest as :func:`flexplat_leukocyte.lisc.generate_lisc`; returns the manifest.
    """
    originals = synthetic_originals(count)
    index = {o.id: i for i, o in enumerate(originals)}

    def load(original: Original) -> tuple[np.ndarray, np.ndarray]:
        return render_smear(np.random.default_rng([seed, index[original.id]]), original.cls, size, zoom, randomization)

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
        extra=lambda: {"synthetic": synthetic_record(count, zoom, randomization)},
    )


def synthetic_record(count: int, zoom: float, randomization: Randomization | None) -> dict:
    """The manifest's ``synthetic`` entry: what was drawn and how (plain YAML types)."""
    record = {"count": count, "zoom": zoom, "renderer": RENDERER_VERSION, "randomization": None}
    if randomization is not None:
        record["randomization"] = {
            name: list(value) if isinstance(value, tuple) else value for name, value in asdict(randomization).items()
        }
    return record
