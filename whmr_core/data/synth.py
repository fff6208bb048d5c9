"""Synthetic images with exact ground truth: pixels, depth and IUV maps, occlusion-aware keypoints, data sets.

``render_scene`` draws a ``scene.Scene`` (people with exact camera/world quantities) with an ``Appearance``
(procedural background, ground, props, clothing, lighting, noise) in one renderer pass, and derives from the
face ids and barycentrics:

- ``depth``: camera-frame z (metres) on person pixels, 0 elsewhere; saved as 16-bit PNG in millimetres;
- ``iuv``: I = body part 1..24 (0 = not a person; part p is the region skinned most by SMPL joint p - 1,
  ``whmr_core.body.parts``) of the face corner nearest the visible point, U/V interpolated with the
  barycentrics; saved as a 3-channel uint8 PNG (I, 255 U, 255 V);
- keypoint confidences: a keypoint inside the image whose pixel shows another person or a prop nearer than
  the keypoint is occluded (confidence 0). Self-occlusion (the keypoint behind its own body, e.g. the far
  wrist of a person seen side-on) keeps confidence 1, as in SPIN/H36M ground truth: the network must still
  place those joints, and the depth ordering inside one body is exact in the 3D targets.

``generate_dataset`` writes ``images/``, ``maps/`` and one annotation file per split (docs/synth.md); sample
``i`` depends only on ``(seed, i)``: the scene comes from ``scene_rng(seed, i)`` and the look from the
independent stream ``[seed, i, 1]`` (``SynthConfig.appearance_stream``).

``PROFILES`` names whole generator settings (``whmr synth --profile NAME``): the default training data,
a held-out profile with cameras, looks and crowds that training never sees, and a controlled profile in
which the person's image size says nothing about the focal length.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from whmr_core.data.annotations import annotations_from_scenes, write_annotations
from whmr_core.data.appearance import MATERIALS, Appearance, AppearanceConfig, sample_appearance
from whmr_core.data.cameras import CameraConfig
from whmr_core.data.scene import JointRegressors, Scene, SceneConfig, sample_scene_at
from whmr_core.render import GroundPlane, Mesh, PinholeCamera, Renderer

__all__ = [
    "PROFILES",
    "BodyLabels",
    "SynthConfig",
    "SynthImage",
    "appearance_rng",
    "body_labels",
    "generate_dataset",
    "load_body",
    "render_scene",
    "scene_annotation_rows",
    "synth_profile",
    "write_depth_png",
    "write_iuv_png",
]

_PERSON_GREY = 0.5  # people are drawn grey, then recoloured by clothing: shading = colour / grey


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings: the scene sampler's, the appearance sampler's and the file formats."""

    scene: SceneConfig = field(default_factory=lambda: SceneConfig(num_people=(1, 2)))
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    image_format: str = "jpg"  # "jpg" (small, as the public sets) or "png" (lossless)
    jpeg_quality: int = 92
    # Occluders that leave a person fewer than this fraction of its in-image joints are dropped (the
    # image is redrawn without them), so every row stays a usable training sample.
    min_visible_joints: float = 0.3
    # Third element of the look's random stream [seed, i, stream]: another stream gives every sample
    # another look (clothes, background, props, light) for the same scene.
    appearance_stream: int = 1

    def __post_init__(self) -> None:
        if self.appearance_stream == 0:
            raise ValueError("SynthConfig.appearance_stream: 0 is reserved (scene streams are [seed, i])")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"SynthConfig.image_format: 'jpg' or 'png', got {self.image_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"SynthConfig.jpeg_quality: 1-100, got {self.jpeg_quality}")

    @classmethod
    def small(cls, width: int = 160, height: int = 120, **kwargs: Any) -> SynthConfig:
        """Fixed small images (tests, quick CPU runs): one aspect ratio, one size."""
        g = np.gcd(width, height)
        cam = CameraConfig(aspect_ratios=((width // g, height // g),), long_side=(max(width, height),) * 2)
        people = kwargs.pop("num_people", (1, 2))
        return cls(scene=SceneConfig(camera=cam, num_people=people), **kwargs)


def _profiles() -> dict[str, SynthConfig]:
    default = SynthConfig()
    cam = CameraConfig()
    # Cameras outside every default range (mast or ceiling mounted, looking steeply down through a wider
    # lens than any in the default set), 2-3 people per image and another look stream.
    heldout = SynthConfig(
        scene=SceneConfig(
            camera=replace(cam, hfov_deg=(100.5, 110.0), pitch_deg=(50.0, 65.0), height_m=(3.1, 4.0)),
            num_people=(2, 3),
            height_frac=(0.2, 1.0),  # a wide lens high up makes people small; keep them worth a crop
            placement="ray",  # at these pitches a person at a horizontal heading is out of view
        ),
        appearance_stream=2,
    )
    # Focal length without a size cue: one image size, a level camera at robot-head height (so a person's
    # box fits the frame at any lens and rejections do not depend on it), and each person's depth solved
    # for a box side and image column drawn independently of the focal length ("column" placement).
    # Only perspective (and what the image shows of the scene) can tell a wide lens from a telephoto one.
    # The hFOV range keeps the depths (1-9 m) inside the depth head's 10 m range.
    focal_controlled = SynthConfig(
        scene=SceneConfig(
            camera=CameraConfig(
                aspect_ratios=((4, 3),),
                long_side=(320, 320),
                hfov_deg=(35.0, 100.0),
                pitch_deg=(0.0, 0.0),
                roll_deg=(0.0, 0.0),
                height_m=(0.7, 1.1),
                # The FULL^2 path puts the principal point at the image centre (the network never sees
                # K): an offset there biases the depth that loss points at more than the lens does.
                principal_point_std=0.0,
                principal_point_max=0.0,
            ),
            num_people=(1, 1),
            distance_m=(0.5, 9.5),
            height_frac=(0.4, 0.75),
            placement="column",
        ),
        appearance_stream=3,
    )
    return {"default": default, "heldout": heldout, "focal-controlled": focal_controlled}


# Named generator settings (``whmr synth --profile NAME``); docs/synth.md lists their ranges.
PROFILES: dict[str, SynthConfig] = _profiles()


def synth_profile(name: str) -> SynthConfig:
    """The named ``SynthConfig`` of ``PROFILES``; a clear error for an unknown name."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown synth profile {name!r}; known: {', '.join(PROFILES)}") from None


@dataclass(frozen=True)
class BodyLabels:
    """Per-vertex tables of one body model (computed once): faces, IUV labels, clothing materials."""

    faces: np.ndarray  # (F,3) int64
    parts: np.ndarray  # (V,) int 1..24
    uv: np.ndarray  # (V,2) float in [0, 1]
    material: np.ndarray  # (V,) index into appearance.MATERIALS


_LABELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# SMPL joint -> clothing material of the part it skins (module docstring of appearance.py lists them).
_M = {m: i for i, m in enumerate(MATERIALS)}
_JOINT_MATERIAL = {
    **dict.fromkeys((0, 1, 2), "trousers"),  # pelvis, thighs
    **dict.fromkeys((4, 5), "shin"),
    **dict.fromkeys((7, 8, 10, 11), "shoes"),
    **dict.fromkeys((3, 6, 9, 13, 14, 16, 17), "shirt"),  # trunk, collars, upper arms
    **dict.fromkeys((18, 19), "forearm"),
    **dict.fromkeys((12, 15, 20, 21, 22, 23), "skin"),  # neck, head, hands
}


def body_labels(body: torch.nn.Module) -> BodyLabels:
    """Faces, parts, UVs and clothing materials of ``body`` (cached per model object)."""
    cached = _LABELS.get(body)
    if cached is not None:
        return cached
    from whmr_core.body import body_assets
    from whmr_core.body.parts import vertex_parts, vertex_uv

    faces = body_assets(body).faces.numpy().astype(np.int64)
    parts = vertex_parts(body)
    material = np.array([_M[_JOINT_MATERIAL[p - 1]] for p in parts], dtype=np.int64)
    # Hair: the upper back of the head, from the rest pose (y up, the person faces +z).
    template = body.v_template.detach().double().numpy()
    joints = body.J_regressor.detach().double().numpy() @ template
    head = parts == 16
    top = template[head, 1].max() if head.any() else 0.0
    rel = template - joints[15]
    hair = head & ((rel[:, 1] > 0.55 * (top - joints[15, 1])) | ((rel[:, 2] < -0.01) & (rel[:, 1] > 0)))
    material[hair] = _M["hair"]
    labels = BodyLabels(faces=faces, parts=parts, uv=vertex_uv(body), material=material)
    _LABELS[body] = labels
    return labels


@dataclass
class SynthImage:
    """One rendered sample; maps are aligned with ``image`` (row 0 at the top)."""

    image: np.ndarray  # (H,W,3) uint8 RGB
    depth: np.ndarray  # (H,W) float32 metres on person pixels, 0 elsewhere
    iuv: np.ndarray  # (H,W,3) uint8: part 0..24, 255 U, 255 V
    person: np.ndarray  # (H,W) int16: index of the visible person, -1 elsewhere
    face: np.ndarray  # (H,W) int64: face of that person's mesh, -1 elsewhere
    bary: np.ndarray  # (H,W,3) float32 barycentrics in that face
    joints_conf: np.ndarray  # (P,24) float: in the image and not hidden by another person or a prop
    coco_conf: np.ndarray  # (P,17)
    visible_pixels: np.ndarray  # (P,) int
    occluders_dropped: bool = False  # the appearance's occluders hid a person and were left out


def appearance_rng(seed: int, index: int, stream: int = 1) -> np.random.Generator:
    """The look's generator of sample ``index``: independent of ``scene_rng(seed, index)``."""
    return np.random.default_rng([int(seed), int(index), int(stream)])


class _Lighting:
    """Temporarily set a renderer's lights (they are plain attributes read at render time)."""

    _NAMES = ("light_dirs", "light_gains", "ambient", "specular")

    def __init__(self, renderer: Renderer, app: Appearance) -> None:
        self.renderer, self.app = renderer, app

    def __enter__(self) -> None:
        self.saved = [getattr(self.renderer, n) for n in self._NAMES]
        for n in self._NAMES:
            setattr(self.renderer, n, getattr(self.app, n))

    def __exit__(self, *exc: object) -> None:
        for n, v in zip(self._NAMES, self.saved, strict=True):
            setattr(self.renderer, n, v)


def _occlusion_conf(
    p2d: np.ndarray, z: np.ndarray, inside: np.ndarray, k: int, mesh: np.ndarray, depth: np.ndarray
) -> np.ndarray:
    """1 for keypoints in the image and not behind another mesh (person or prop) at their pixel."""
    h, w = mesh.shape
    u = np.clip(np.rint(p2d[:, 0]).astype(np.int64), 0, w - 1)
    v = np.clip(np.rint(p2d[:, 1]).astype(np.int64), 0, h - 1)
    m = mesh[v, u]
    hidden = (m >= 0) & (m != k) & (depth[v, u] < z)
    return (inside & ~hidden).astype(np.float64)


def _draw(scene: Scene, renderer: Renderer, labels: BodyLabels, app: Appearance, with_occluders: bool) -> Any:
    cam = scene.camera
    w, h = cam.image_wh
    pcam = PinholeCamera.from_K(cam.K, w, h, near=0.05, far=300.0)
    meshes = [Mesh(p.vertices_world, labels.faces, color=(_PERSON_GREY,) * 3) for p in scene.people]
    meshes += [
        Mesh(pr.vertices, pr.faces, color=pr.color, smooth=False)
        for pr in app.props
        if with_occluders or not pr.occluder
    ]
    # Everything in G; the renderer takes it to the camera (X_C = R_c X_G), so ground tiles stay fixed in
    # the world when the camera tilts or moves.
    T = np.eye(4)
    T[:3, :3] = cam.R_c
    ground = GroundPlane(
        point=app.ground_anchor, normal=np.array([0.0, -1.0, 0.0]), size=400.0, tile=app.ground_tile,
        colors=app.ground_colors,
    )  # fmt: skip
    with _Lighting(renderer, app):
        return renderer.render(meshes, pcam, world_to_camera=T, ground=ground, background=app.background)


def render_scene(
    scene: Scene,
    renderer: Renderer,
    body: torch.nn.Module,
    appearance: Appearance | None = None,
    *,
    rng: np.random.Generator | None = None,
    config: SynthConfig | None = None,
) -> SynthImage:
    """Draw ``scene`` and derive its maps and keypoint confidences (module docstring).

    ``appearance`` None samples one from ``rng``; ``rng`` None uses ``appearance_rng(scene.seed,
    scene.index, config.appearance_stream)`` (a scene without a seed then needs an explicit ``rng``).
    The same ``rng`` draws the pixel noise. ``body`` is the model the scene was sampled with (faces and
    labels).
    """
    cfg = config or SynthConfig()
    if rng is None:
        if scene.seed is None or scene.index is None:
            raise ValueError("render_scene: the scene has no (seed, index); pass rng=")
        rng = appearance_rng(scene.seed, scene.index, cfg.appearance_stream)
    app = appearance if appearance is not None else sample_appearance(rng, scene, cfg.appearance)
    if app.palettes.shape[0] < len(scene.people):
        raise ValueError(f"appearance: {app.palettes.shape[0]} palettes for {len(scene.people)} people")
    labels = body_labels(body)
    n_people = len(scene.people)

    out = _draw(scene, renderer, labels, app, with_occluders=True)
    mesh, face = out.mesh_and_face()
    confs = _confidences(scene, mesh, out.depth)
    dropped = False
    if any(p.occluder for p in app.props) and _too_hidden(scene, confs, cfg.min_visible_joints):
        out = _draw(scene, renderer, labels, app, with_occluders=False)
        mesh, face = out.mesh_and_face()
        confs = _confidences(scene, mesh, out.depth)
        dropped = True

    person = np.where(mesh < n_people, mesh, -1).astype(np.int16)
    on = person >= 0
    face = np.where(on, face, -1)
    bary = np.where(on[..., None], out.bary, 0.0).astype(np.float32)
    depth = np.where(on, out.depth, 0.0).astype(np.float32)

    # Per person pixel: the face's corners, the nearest corner (largest barycentric) for discrete labels.
    corners = labels.faces[face[on]]  # (N,3)
    b = bary[on]
    nearest = corners[np.arange(len(corners)), b.argmax(axis=1)]
    iuv = np.zeros((*person.shape, 3), np.uint8)
    iuv[on, 0] = labels.parts[nearest]
    uv = np.einsum("nk,nkc->nc", b, labels.uv[corners])
    iuv[on, 1:] = np.clip(np.rint(uv * 255), 0, 255).astype(np.uint8)

    image = out.color.astype(np.float32)
    # Clothing: albedo of the nearest corner's material times the grey body's shading.
    albedo = app.palettes[person[on], labels.material[nearest]]
    image[on] = albedo * image[on] / _PERSON_GREY
    ground = out.face_id == -1
    image[ground] *= app.ground_texture[ground][:, None]
    image *= app.gain
    if app.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), app.blur_sigma)
    if app.noise_std > 0:
        image += rng.normal(0.0, app.noise_std, image.shape).astype(np.float32)
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    return SynthImage(
        image=pixels,
        depth=depth,
        iuv=iuv,
        person=person,
        face=face,
        bary=bary,
        joints_conf=np.stack([c[0] for c in confs]),
        coco_conf=np.stack([c[1] for c in confs]),
        visible_pixels=np.bincount(person[on].astype(np.int64), minlength=n_people),
        occluders_dropped=dropped,
    )


def _confidences(scene: Scene, mesh: np.ndarray, depth: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (
            _occlusion_conf(p.joints2d, p.joints_cam[:, 2], p.joints_visible, k, mesh, depth),
            _occlusion_conf(p.coco2d, p.coco_cam[:, 2], p.coco_visible, k, mesh, depth),
        )
        for k, p in enumerate(scene.people)
    ]


def _too_hidden(scene: Scene, confs: list, min_fraction: float) -> bool:
    for p, (jc, _) in zip(scene.people, confs, strict=True):
        inside = int(p.joints_visible.sum())
        if inside and jc.sum() < min_fraction * inside:
            return True
    return False


# --- files -----------------------------------------------------------------------------------------


def write_depth_png(path: str | os.PathLike, depth_m: np.ndarray) -> None:
    """16-bit PNG in millimetres (0 = no person); depths beyond 65.5 m are clipped."""
    mm = np.clip(np.rint(np.asarray(depth_m, dtype=np.float64) * 1000.0), 0, 65535).astype(np.uint16)
    if not cv2.imwrite(str(path), mm):
        raise OSError(f"could not write {path}")


def write_iuv_png(path: str | os.PathLike, iuv: np.ndarray) -> None:
    """3-channel uint8 PNG: channel 0 = part I, 1 = 255 U, 2 = 255 V (in that order when read as RGB)."""
    if not cv2.imwrite(str(path), np.ascontiguousarray(iuv[..., ::-1])):
        raise OSError(f"could not write {path}")


def _write_image(path: Path, rgb: np.ndarray, cfg: SynthConfig) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality] if cfg.image_format == "jpg" else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f"could not write {path}")


def scene_annotation_rows(
    scene: Scene, synth: SynthImage, imgname: str, depthname: str | None = None, iuvname: str | None = None
) -> dict[str, np.ndarray]:
    """Annotation columns of one rendered scene: ``annotations_from_scenes`` with occlusion-aware 2D
    confidences (``part`` and ``coco2d`` column 2) from the render."""
    rows = annotations_from_scenes(
        [scene],
        [imgname],
        depthnames=None if depthname is None else [depthname],
        iuvnames=None if iuvname is None else [iuvname],
    )
    rows["part"][:, :, 2] = synth.joints_conf
    rows["coco2d"][:, :, 2] = synth.coco_conf
    return rows


# --- data sets -------------------------------------------------------------------------------------


def load_body(spec: str | os.PathLike) -> torch.nn.Module:
    """ "lowres" / "full" (the shipped free model) or a path to a SMPL/whmr model file."""
    from whmr_core.body import load_body_model

    if str(spec) in ("lowres", "full"):
        return load_body_model(variant=str(spec))  # type: ignore[arg-type]
    return load_body_model(path=spec)


class _Worker:
    """Per-process state: body model, regressors, renderer (one llvmpipe thread per worker process).
    ``worker_process``: one torch thread, set only in a pool's own processes, never in the caller's."""

    def __init__(
        self,
        body_spec: str,
        cfg: SynthConfig,
        out_dir: str,
        seed: int,
        threads: int | None,
        worker_process: bool = False,
    ):
        from whmr_core.body import body_assets

        if worker_process:
            torch.set_num_threads(1)
        self.body = load_body(body_spec)
        self.regs = JointRegressors.from_assets(body_assets(self.body))
        self.renderer = Renderer(threads=threads)
        self.cfg, self.out, self.seed = cfg, Path(out_dir), seed

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        scene = sample_scene_at(self.seed, index, self.body, self.regs, self.cfg.scene)
        synth = render_scene(scene, self.renderer, self.body, config=self.cfg)
        stem = f"{index:06d}"
        img = f"images/{stem}.{self.cfg.image_format}"
        dep, iuv = f"maps/{stem}_depth.png", f"maps/{stem}_iuv.png"
        _write_image(self.out / img, synth.image, self.cfg)
        write_depth_png(self.out / dep, synth.depth)
        write_iuv_png(self.out / iuv, synth.iuv)
        return scene_annotation_rows(scene, synth, img, dep, iuv)


_worker: _Worker | None = None


def _init_worker(*args: Any) -> None:
    global _worker
    _worker = _Worker(*args)


def _run_worker(index: int) -> tuple[int, dict[str, np.ndarray]]:
    assert _worker is not None, "worker not initialised"
    return index, _worker(index)


def _concat(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def generate_dataset(
    out_dir: str | os.PathLike,
    num: int,
    seed: int,
    *,
    split_val: float = 0.0,
    workers: int = 2,
    body: str | os.PathLike = "full",
    config: SynthConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Render ``num`` samples into ``out_dir``; returns the summary also written to ``synth.json``.

    Layout: ``images/NNNNNN.jpg``, ``maps/NNNNNN_depth.png`` and ``maps/NNNNNN_iuv.png`` (names relative to
    ``out_dir``, which is the dataset's image folder), ``train.npz`` and, when ``split_val`` > 0,
    ``val.npz`` with the last ``round(num * split_val)`` samples. ``workers`` processes (spawned, one
    llvmpipe thread each); 0 renders in this process. ``body``: "lowres", "full" or a model file.
    """
    from tqdm import tqdm

    cfg = config or SynthConfig()
    if num < 1:
        raise ValueError(f"num: need at least one sample, got {num}")
    if not 0.0 <= split_val < 1.0:
        raise ValueError(f"split_val: must lie in [0, 1), got {split_val}")
    n_val = round(num * split_val)
    if split_val > 0 and not 0 < n_val < num:
        raise ValueError(f"split_val: {split_val} of {num} samples leaves an empty split")
    out = Path(out_dir)
    for sub in ("images", "maps"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    args = (str(body), cfg, str(out), int(seed))
    rows: list[dict[str, np.ndarray] | None] = [None] * num
    t0 = time.perf_counter()
    bar = tqdm(total=num, desc="whmr synth", unit="img", disable=not progress)
    if workers <= 0:
        work = _Worker(*args, None)
        for i in range(num):
            rows[i] = work(i)
            bar.update()
    else:
        ctx = mp.get_context("spawn")  # fresh interpreters: no forked GL/torch state
        chunk = max(1, min(16, num // (4 * workers)))
        with ctx.Pool(workers, initializer=_init_worker, initargs=(*args, 1, True)) as pool:
            for i, r in pool.imap_unordered(_run_worker, range(num), chunksize=chunk):
                rows[i] = r
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    done = [r for r in rows if r is not None]
    if len(done) != num:
        raise RuntimeError(f"generate_dataset: {num - len(done)} samples missing")
    splits = {"train": done[: num - n_val], "val": done[num - n_val :]}
    counts = {}
    for name, part in splits.items():
        if part:
            write_annotations(out / f"{name}.npz", _concat(part))
            counts[name] = {"images": len(part), "people": sum(len(r["imgname"]) for r in part)}
    summary = {
        "seed": int(seed),
        "num": int(num),
        "body": str(body),
        "splits": counts,
        "workers": int(workers),
        "seconds": round(elapsed, 2),
        "images_per_second": round(num / elapsed, 2),
        "config": asdict(cfg),
    }
    (out / "synth.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary
