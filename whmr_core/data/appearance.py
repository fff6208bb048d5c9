"""How a synthetic scene looks: procedural backgrounds, ground, props/occluders, clothing, lighting, noise.

Nothing here is downloaded: backgrounds are gradients, multi-octave value noise and random shapes drawn
with OpenCV; props are boxes and spheres from ``whmr_core.render.primitives`` standing on the ground.
Geometry (props, ground anchor) is in the gravity frame G of the scene (DESIGN.md section 4, y down, the
ground is ``y_G = camera.height``); ``Appearance.translated`` moves it when the camera moves (sequences).
The exact ground truth lives in ``scene.Scene``; an appearance only changes pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from whmr_core.render.primitives import box, uv_sphere

__all__ = [
    "MATERIALS",
    "Appearance",
    "AppearanceConfig",
    "Prop",
    "procedural_background",
    "sample_appearance",
    "value_noise",
]

# Clothing materials a body vertex can carry (whmr_core.data.synth assigns them from the body's parts).
MATERIALS = ("skin", "shirt", "trousers", "shoes", "hair", "forearm", "shin")


@dataclass(frozen=True)
class AppearanceConfig:
    """Appearance sampler settings (probabilities, metres, grey levels 0-255)."""

    occluder_prob: float = 0.3  # an image gets 1-2 props between the camera and one of its people
    clutter: tuple[int, int] = (0, 4)  # props standing elsewhere on the ground (context, maybe occluding)
    shapes_prob: float = 0.7  # random 2D shapes over the background
    noise_std: tuple[float, float] = (0.0, 6.0)  # Gaussian pixel noise, std drawn per image
    blur_prob: float = 0.25  # slight defocus/motion-like blur of the whole image
    ground_texture: tuple[float, float] = (0.0, 0.35)  # strength of the noise texture on the ground
    long_sleeves_prob: float = 0.5
    long_trousers_prob: float = 0.7

    def __post_init__(self) -> None:
        for name in ("occluder_prob", "shapes_prob", "blur_prob", "long_sleeves_prob", "long_trousers_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AppearanceConfig.{name}: must lie in [0, 1], got {getattr(self, name)}")
        for name in ("clutter", "noise_std", "ground_texture"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"AppearanceConfig.{name}: need 0 <= lo <= hi, got {(lo, hi)}")


@dataclass(frozen=True)
class Prop:
    """A rigid primitive in G: (V,3) vertices, (F,3) faces, RGB colour in [0, 1]; ``occluder`` if placed
    on purpose in front of a person."""

    vertices: np.ndarray = field(repr=False)
    faces: np.ndarray = field(repr=False)
    color: tuple[float, float, float]
    occluder: bool = False


@dataclass(frozen=True)
class Appearance:
    """Everything about the pixels of one image (or one sequence) that is not ground truth."""

    background: np.ndarray = field(repr=False)  # (H,W,3) uint8
    ground_anchor: np.ndarray  # (3,) a point of the ground plane in G, where the tiles start
    ground_colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    ground_tile: float  # metres
    ground_texture: np.ndarray = field(repr=False)  # (H,W) float32 multiplicative texture around 1
    props: tuple[Prop, ...]
    palettes: np.ndarray = field(repr=False)  # (P, len(MATERIALS), 3) albedo per person and material
    light_dirs: np.ndarray  # (2,3) towards the lights, camera frame
    light_gains: tuple[float, float]
    ambient: float
    specular: float
    noise_std: float
    blur_sigma: float  # 0: no blur
    gain: np.ndarray  # (3,) white balance / exposure per channel

    def translated(self, delta_g: np.ndarray) -> Appearance:
        """The same look with its 3D parts moved by ``delta_g`` (e.g. minus a camera displacement)."""
        d = np.asarray(delta_g, dtype=np.float64).reshape(3)
        props = tuple(replace(p, vertices=p.vertices + d) for p in self.props)
        return replace(self, ground_anchor=self.ground_anchor + d, props=props)


def value_noise(rng: np.random.Generator, width: int, height: int, octaves: int = 3) -> np.ndarray:
    """(H,W) float32 in [0, 1]: smooth random texture, octaves of upsampled random grids."""
    out = np.zeros((height, width), np.float32)
    total = 0.0
    cells = int(rng.integers(2, 6))
    for k in range(octaves):
        grid = rng.random((cells * 2**k + 1, cells * 2**k + 1)).astype(np.float32)
        amp = 0.5**k
        out += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amp
    return np.clip(out / total, 0.0, 1.0)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (0-255) from a random hue, saturation and value: natural and saturated colours."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 200), rng.uniform(40, 240)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    c0, c1 = _random_colour(rng), _random_colour(rng)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xx * math.cos(ang) / width + yy * math.sin(ang) / height
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c0 + t[..., None] * (c1 - c0)


def _shapes(rng: np.random.Generator, img: np.ndarray) -> None:
    """Random rectangles, ellipses, polygons and lines drawn in place (float32 image)."""
    h, w = img.shape[:2]
    s = max(w, h)
    for _ in range(int(rng.integers(4, 30))):
        colour = tuple(float(c) for c in _random_colour(rng))
        kind = int(rng.integers(4))
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if kind == 0:
            q = (p[0] + int(rng.integers(-s // 3, s // 3)), p[1] + int(rng.integers(-s // 3, s // 3)))
            cv2.rectangle(img, p, q, colour, -1)
        elif kind == 1:
            axes = (int(rng.integers(3, s // 6)), int(rng.integers(3, s // 6)))
            cv2.ellipse(img, p, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 2:
            pts = (np.array(p) + rng.integers(-s // 5, s // 5, size=(int(rng.integers(3, 7)), 2))).astype(
                np.int32
            )
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
        else:
            q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p, q, colour, int(rng.integers(1, max(2, s // 40))), cv2.LINE_AA)


def procedural_background(
    rng: np.random.Generator, width: int, height: int, shapes_prob: float = 0.7
) -> np.ndarray:
    """(H,W,3) uint8: a gradient or a coloured noise texture, often with random shapes over it."""
    if rng.random() < 0.5:
        img = _gradient(rng, width, height)
    else:
        n = value_noise(rng, width, height)[..., None]
        img = _random_colour(rng) + n * (_random_colour(rng) - _random_colour(rng))
    img = np.ascontiguousarray(img, dtype=np.float32)
    if rng.random() < shapes_prob:
        _shapes(rng, img)
    return np.clip(img, 0, 255).astype(np.uint8)


def _yawed_box(center: np.ndarray, size: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    v, f = box(np.zeros(3), size)
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # about the vertical y_G
    return v @ rot.T + center, f


def _prop_on_ground(rng: np.random.Generator, ground_y: float, xz: np.ndarray, max_height: float) -> Prop:
    """A box (crate, wall, table, pole) or a ball standing on the ground at horizontal position ``xz``."""
    colour = tuple(float(c) / 255 for c in _random_colour(rng))
    if rng.random() < 0.25:
        r = float(rng.uniform(0.1, min(0.4, max_height / 2)))
        v, f = uv_sphere(np.array([xz[0], ground_y - r, xz[1]]), r, n_lat=10, n_lon=16)
    else:
        size = np.array([rng.uniform(0.15, 1.2), rng.uniform(0.2, max_height), rng.uniform(0.1, 0.8)])
        centre = np.array([xz[0], ground_y - size[1] / 2, xz[1]])
        v, f = _yawed_box(centre, size, float(rng.uniform(0, math.pi)))
    return Prop(v, f, colour)  # type: ignore[arg-type]


def _free(xz: np.ndarray, radius: float, people_xz: np.ndarray, min_gap: float = 0.35) -> bool:
    return bool(len(people_xz) == 0 or np.hypot(*(people_xz - xz).T).min() > radius + min_gap)


def _props(rng: np.random.Generator, scene: object, cfg: AppearanceConfig) -> tuple[Prop, ...]:
    cam = scene.camera  # type: ignore[attr-defined]
    people = scene.people  # type: ignore[attr-defined]
    ground_y = float(cam.height)
    people_xz = np.array([p.vertices_world[:, [0, 2]].mean(0) for p in people]).reshape(-1, 2)
    heights = [float(np.ptp(p.vertices_world[:, 1])) for p in people]
    props: list[Prop] = []
    if rng.random() < cfg.occluder_prob:
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(len(people)))
            for _try in range(10):
                # On the line of sight to the person, partway there: hides part of the body, not all.
                xz = people_xz[k] * rng.uniform(0.35, 0.8) + rng.normal(0, 0.25, 2)
                if np.hypot(*xz) < 0.6 or not _free(xz, 0.5, people_xz):
                    continue
                prop = _prop_on_ground(rng, ground_y, xz, max(0.3, 0.6 * heights[k]))
                props.append(replace(prop, occluder=True))
                break
    for _ in range(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))):
        for _try in range(10):
            # Anywhere within 15 m in front of the camera, away from people.
            d, az = rng.uniform(1.5, 15.0), rng.uniform(-0.8, 0.8)
            xz = np.array([d * math.sin(az), d * math.cos(az)])
            if _free(xz, 0.9, people_xz):
                props.append(_prop_on_ground(rng, ground_y, xz, 2.5))
                break
    return tuple(props)


def _palette(rng: np.random.Generator, cfg: AppearanceConfig) -> np.ndarray:
    # Skin tones along a light-dark line; clothes and shoes any colour; hair dark to blond.
    t = rng.uniform(0, 1)
    skin = (1 - t) * np.array([0.95, 0.78, 0.66]) + t * np.array([0.36, 0.22, 0.14])
    skin = skin * rng.uniform(0.9, 1.1, 3)
    shirt, trousers, shoes = (_random_colour(rng) / 255 for _ in range(3))
    hair = np.array([0.1, 0.07, 0.05]) + rng.uniform(0, 1) ** 2 * np.array([0.6, 0.5, 0.3])
    forearm = shirt if rng.random() < cfg.long_sleeves_prob else skin
    shin = trousers if rng.random() < cfg.long_trousers_prob else skin
    table = {"skin": skin, "shirt": shirt, "trousers": trousers, "shoes": shoes * 0.6, "hair": hair,
             "forearm": forearm, "shin": shin}  # fmt: skip
    return np.clip(np.stack([table[m] for m in MATERIALS]), 0.0, 1.0)


def sample_appearance(
    rng: np.random.Generator, scene: object, config: AppearanceConfig | None = None
) -> Appearance:
    """A random look for ``scene`` (a ``scene.Scene``): props are placed clear of its people."""
    cfg = config or AppearanceConfig()
    cam = scene.camera  # type: ignore[attr-defined]
    w, h = cam.image_wh
    background = procedural_background(rng, w, h, cfg.shapes_prob)
    g0, g1 = _random_colour(rng) / 255, _random_colour(rng) / 255
    if rng.random() < 0.5:  # often a near-uniform floor (asphalt, grass, carpet) rather than a checkerboard
        g1 = g0 * rng.uniform(0.85, 1.0)
    strength = rng.uniform(*cfg.ground_texture)
    texture = 1.0 + strength * (value_noise(rng, w, h, octaves=4) - 0.5) * 2
    palettes = np.stack([_palette(rng, cfg) for _ in scene.people])  # type: ignore[attr-defined]
    # Key light from the camera's side (negative z: towards the camera), anywhere above or beside.
    key = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.3), -rng.uniform(0.2, 1.0)])
    fill = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), -rng.uniform(0.2, 1.0)])
    dirs = np.stack([key, fill])
    return Appearance(
        background=background,
        ground_anchor=np.array([rng.uniform(-5, 5), cam.height, rng.uniform(-5, 5)]),
        ground_colors=(tuple(g0.tolist()), tuple(g1.tolist())),  # type: ignore[arg-type]
        ground_tile=float(rng.uniform(0.3, 2.0)),
        ground_texture=texture.astype(np.float32),
        props=_props(rng, scene, cfg),
        palettes=palettes,
        light_dirs=dirs / np.linalg.norm(dirs, axis=1, keepdims=True),
        light_gains=(float(rng.uniform(0.45, 0.8)), float(rng.uniform(0.1, 0.4))),
        ambient=float(rng.uniform(0.15, 0.4)),
        specular=float(rng.uniform(0.0, 0.2)),
        noise_std=float(rng.uniform(*cfg.noise_std)),
        blur_sigma=float(rng.uniform(0.4, 1.2)) if rng.random() < cfg.blur_prob else 0.0,
        gain=rng.uniform(0.85, 1.15, 3),
    )
