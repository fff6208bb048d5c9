"""Synthetic scenes without pixels: people on a ground plane seen by a sampled camera, all ground truth exact.

World frame = G of DESIGN.md section 4 (origin at the camera, y down along gravity, z the camera's forward
made horizontal); the ground is the plane ``y_G = camera.height``. Camera frame C with ``X_C = R_c X_G``.
SMPL conventions (smplx): the root orientation turns the body about its rest pelvis ``J_0(betas)`` and
``transl`` is added afterwards, so ``body(global_orient=R, transl=t)`` has its pelvis at ``J_0 + t``.

``render_scene(scene, renderer)`` (later, with the renderer) draws a ``Scene``; everything here is the
geometry it and the annotation writer need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from whmr_core.data.cameras import Camera, CameraConfig, sample_camera
from whmr_core.data.poses import BodySample, PoseConfig, sample_body

__all__ = [
    "JointRegressors",
    "Person",
    "Scene",
    "SceneConfig",
    "person_at",
    "sample_scene",
    "sample_scene_at",
    "scene_rng",
]


@dataclass(frozen=True)
class JointRegressors:
    """Linear regressors from mesh vertices to keypoints.

    ``smpl24`` None uses the SMPL forward joints (the kinematic joints every smplx model returns).
    """

    coco17: np.ndarray  # (17, V)
    smpl24: np.ndarray | None = None  # (24, V)

    @classmethod
    def from_assets(cls, assets: Any) -> JointRegressors:
        """From ``whmr_core.body.body_assets(model)`` (attributes ``coco_regressor``, ``joint_regressor``)."""
        return cls(coco17=_dense(assets.coco_regressor), smpl24=_dense(assets.joint_regressor))


def _dense(a: Any) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64)


@dataclass(frozen=True)
class SceneConfig:
    """Scene sampler settings (metres, pixels)."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    num_people: tuple[int, int] = (1, 1)  # inclusive range per image
    distance_m: tuple[float, float] = (1.0, 12.0)  # camera -> pelvis
    # The person's projected height as a fraction of the image height (sets the usable distances).
    height_frac: tuple[float, float] = (0.15, 1.0)
    min_inside: float = 0.8  # fraction of the person's tight box that must lie inside the image
    min_box_px: float = 24.0  # smallest tight-box side worth a training crop
    min_depth_m: float = 0.1  # every vertex this far in front of the camera
    min_separation_m: float = 0.8  # pelvis-to-pelvis on the ground, between people
    bbox_padding: float = 1.2  # square box side = padding * longest side of the tight box (SPIN)
    placement_attempts: int = 30  # per person and camera
    max_attempts: int = 200  # cameras (with fresh people) before giving up
    # "mixed": half the placements distance-first, half on the ray of a random pixel (steep cameras see
    # people too); "ray": all on rays (steep cameras only); "column" (level cameras): box side
    # (height_frac) and image column drawn first and the depth solved from them, so neither the box size
    # nor its position says anything about the focal length (distance_m then bounds the depth).
    placement: str = "mixed"

    def __post_init__(self) -> None:
        lo, hi = self.num_people
        if not 1 <= lo <= hi:
            raise ValueError(f"SceneConfig.num_people: need 1 <= lo <= hi, got {self.num_people}")
        if not 0 < self.distance_m[0] <= self.distance_m[1]:
            raise ValueError(f"SceneConfig.distance_m: need 0 < lo <= hi, got {self.distance_m}")
        if not 0 < self.height_frac[0] <= self.height_frac[1]:
            raise ValueError(f"SceneConfig.height_frac: need 0 < lo <= hi, got {self.height_frac}")
        if not 0 < self.min_inside <= 1:
            raise ValueError(f"SceneConfig.min_inside: must lie in (0, 1], got {self.min_inside}")
        if self.placement not in ("mixed", "ray", "column"):
            raise ValueError(f"SceneConfig.placement: 'mixed', 'ray' or 'column', got {self.placement!r}")


@dataclass(frozen=True)
class Person:
    """One person, exact in both frames. Arrays float64; 2D in pixels (OpenCV pixel centres)."""

    family: str
    betas: np.ndarray  # (B,)
    body_pose: np.ndarray  # (23, 3) rotation vectors
    global_orient_cam: np.ndarray  # (3,) rotation vector, R_b^c
    global_orient_world: np.ndarray  # (3,) rotation vector in G, R_b = R_c^T R_b^c
    transl_cam: np.ndarray  # (3,) smplx transl giving the camera-frame body
    transl_world: np.ndarray  # (3,) smplx transl giving the G-frame body
    root_cam: np.ndarray  # (3,) rest pelvis J_0 + transl_cam: the pivot of the root rotation, in C
    vertices_cam: np.ndarray = field(repr=False)  # (V, 3)
    vertices_world: np.ndarray = field(repr=False)
    joints_cam: np.ndarray = field(repr=False)  # (24, 3) SMPL-24
    joints_world: np.ndarray = field(repr=False)
    coco_cam: np.ndarray = field(repr=False)  # (17, 3) COCO-17
    coco_world: np.ndarray = field(repr=False)
    joints2d: np.ndarray = field(repr=False)  # (24, 2)
    coco2d: np.ndarray = field(repr=False)  # (17, 2)
    joints_visible: np.ndarray = field(repr=False)  # (24,) bool: in front of the camera and inside the image
    coco_visible: np.ndarray = field(repr=False)  # (17,) bool
    tight_bbox: np.ndarray  # (4,) x0, y0, x1, y1 of the projected vertices
    bbox_center: np.ndarray  # (2,)
    bbox_size: float  # square side, padded
    yaw_deg: float  # heading about gravity; 0 faces the camera
    distance: float  # camera -> pelvis, metres

    @property
    def pose(self) -> np.ndarray:
        """(72,) SMPL pose with the camera-frame root first (SPIN/PyMAF ``pose``)."""
        return np.concatenate([self.global_orient_cam, self.body_pose.reshape(-1)])

    @property
    def scale(self) -> float:
        """SPIN's box scale: side / 200 pixels."""
        return self.bbox_size / 200.0


@dataclass(frozen=True)
class Scene:
    """A camera and the people it sees; reproducible from (seed, index) through ``scene_rng``."""

    camera: Camera
    people: tuple[Person, ...]
    seed: int | None = None
    index: int | None = None

    @property
    def image_wh(self) -> tuple[int, int]:
        return self.camera.image_wh

    @property
    def K(self) -> np.ndarray:
        return self.camera.K

    @property
    def R_c(self) -> np.ndarray:
        return self.camera.R_c

    @property
    def gravity_cam(self) -> np.ndarray:
        return self.camera.gravity_cam


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a data set made with ``seed`` (independent streams)."""
    return np.random.default_rng([int(seed), int(index)])


def _rot_y(deg: float) -> np.ndarray:
    return Rotation.from_euler("y", deg, degrees=True).as_matrix()


# Body frame (y up, facing +z) -> G (y down): a half turn about x. Facing -z_G means facing the camera.
_UPRIGHT = np.diag([1.0, -1.0, -1.0])


def _tight_box(p2d: np.ndarray) -> np.ndarray:
    return np.concatenate([p2d.min(axis=0), p2d.max(axis=0)])


def _inside_fraction(box: np.ndarray, w: int, h: int) -> float:
    # Image extent in continuous coordinates with pixel centres at integers: [-0.5, W - 0.5].
    ix = max(0.0, min(box[2], w - 0.5) - max(box[0], -0.5))
    iy = max(0.0, min(box[3], h - 0.5) - max(box[1], -0.5))
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    return ix * iy / area


def _visible(p2d: np.ndarray, depth: np.ndarray, w: int, h: int) -> np.ndarray:
    x, y = p2d[:, 0], p2d[:, 1]
    return (depth > 0) & (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def _column_placement(
    rng: np.random.Generator, cam: Camera, rel: np.ndarray, pelvis_y: float, cfg: SceneConfig
) -> np.ndarray | None:
    """Pelvis position (G) of a "column" placement, or None outside ``distance_m``.

    The longest side of the person's tight box is a fraction of the image height drawn log-uniformly from
    ``height_frac``, and its image column is uniform in pixels: neither depends on the lens. The depth is
    solved for that side by a few fixed-point steps (perspective makes near body parts bigger, so
    ``f * extent / depth`` alone would give wide-angle close-ups bigger boxes).
    """
    w, h = cam.image_wh
    f = float(cam.focal.mean())
    target = math.exp(rng.uniform(math.log(cfg.height_frac[0]), math.log(cfg.height_frac[1]))) * h
    column = rng.uniform(0.1 * w, 0.9 * w) - cam.principal_point[0]
    z = f * float(rel[:, 1].max() - rel[:, 1].min()) / target
    for _ in range(4):
        if not cfg.distance_m[0] <= z <= cfg.distance_m[1]:
            return None
        P_w = np.array([z * column / f, pelvis_y, z])
        verts_c = (rel + P_w) @ cam.R_c.T
        if verts_c[:, 2].min() < cfg.min_depth_m:
            return None
        box = _tight_box(cam.project(verts_c))
        z *= max(box[2] - box[0], box[3] - box[1]) / target
    return np.array([z * column / f, pelvis_y, z])


def _place(
    rng: np.random.Generator,
    cam: Camera,
    sample: BodySample,
    regs: JointRegressors,
    cfg: SceneConfig,
    others: list[Person],
) -> Person | None:
    """One placement try of ``sample`` in view of ``cam``; None when it fails a check."""
    w, h = cam.image_wh
    yaw = float(rng.uniform(-180.0, 180.0))
    # The sample's vertices already carry its root lean (pose[0]) about the pelvis; heading and the turn
    # into G come on top (person_at composes the world root orientation the same way).
    turn = _rot_y(yaw) @ _UPRIGHT
    p0 = sample.joints[0]  # rest pelvis: the pivot of the root rotation
    rel = (sample.vertices - p0) @ turn.T  # body about its pelvis, in G
    # Lowest point on the ground: the ground is at y_G = height (y down).
    pelvis_y = cam.height - float(rel[:, 1].max())
    extent = float(rel[:, 1].max() - rel[:, 1].min())
    f = float(cam.focal.mean())
    d_lo = max(cfg.distance_m[0], f * extent / (cfg.height_frac[1] * h), abs(pelvis_y) + 0.05)
    d_hi = min(cfg.distance_m[1], f * extent / (cfg.height_frac[0] * h))
    if d_lo >= d_hi:
        return None
    if cfg.placement == "column":
        P_w = _column_placement(rng, cam, rel, pelvis_y, cfg)
        if P_w is None:
            return None
    elif cfg.placement == "mixed" and rng.random() < 0.5:
        # Distance first, log-uniform (close, distorted shots are common), then a heading within the
        # horizontal field of view: good for near-level cameras.
        d = math.exp(rng.uniform(math.log(d_lo), math.log(d_hi)))
        d_h = math.sqrt(d * d - pelvis_y * pelvis_y)
        half = math.atan(w / (2 * f))
        az = rng.uniform(-0.9 * half, 0.9 * half)
        P_w = np.array([d_h * math.sin(az), pelvis_y, d_h * math.cos(az)])
    else:
        # Pelvis on the ray of a random pixel, at the depth where that ray meets the pelvis height: the only
        # way steeply pitched cameras see anyone, so their share of the accepted scenes stays fair.
        ray = cam.ray_world(rng.uniform((0.1 * w, 0.1 * h), (0.9 * w, 0.9 * h)))
        if ray[1] * pelvis_y <= 0:
            return None
        P_w = ray * (pelvis_y / ray[1])
        if not d_lo <= float(np.linalg.norm(P_w)) <= d_hi:
            return None
    for o in others:
        root_w = cam.R_c.T @ o.root_cam
        if np.hypot(*(root_w - P_w)[[0, 2]]) < cfg.min_separation_m:
            return None
    verts_w = rel + P_w
    verts_c = verts_w @ cam.R_c.T
    if verts_c[:, 2].min() < cfg.min_depth_m:
        return None
    v2d = cam.project(verts_c)
    box = _tight_box(v2d)
    if min(box[2] - box[0], box[3] - box[1]) < cfg.min_box_px or _inside_fraction(box, w, h) < cfg.min_inside:
        return None

    return person_at(cam, sample, regs, yaw, P_w, cfg.bbox_padding)


def person_at(
    cam: Camera,
    sample: BodySample,
    regs: JointRegressors,
    yaw_deg: float,
    pelvis_world: np.ndarray,
    bbox_padding: float = 1.2,
) -> Person:
    """``sample`` turned by ``yaw_deg`` about gravity (0 faces the camera) with its rest pelvis at
    ``pelvis_world`` (G), seen by ``cam``: every quantity of ``Person``, exact. No checks (sequences place
    people on their own paths; ``sample_scene`` checks its placements first)."""
    w, h = cam.image_wh
    yaw = float(yaw_deg)
    P_w = np.asarray(pelvis_world, dtype=np.float64).reshape(3)
    turn = _rot_y(yaw) @ _UPRIGHT
    R_w = turn @ Rotation.from_rotvec(sample.pose[0]).as_matrix()
    p0 = sample.joints[0]
    verts_w = (sample.vertices - p0) @ turn.T + P_w
    verts_c = verts_w @ cam.R_c.T
    box = _tight_box(cam.project(verts_c))

    def regress(reg: np.ndarray | None, verts: np.ndarray, fk: np.ndarray) -> np.ndarray:
        return fk if reg is None else reg @ verts

    joints_fk_w = (sample.joints - p0) @ turn.T + P_w
    joints_w = regress(regs.smpl24, verts_w, joints_fk_w)
    joints_c = joints_w @ cam.R_c.T
    coco_w = regs.coco17 @ verts_w
    coco_c = coco_w @ cam.R_c.T
    j2d, c2d = cam.project(joints_c), cam.project(coco_c)
    R_cam = cam.R_c @ R_w
    root_c = cam.R_c @ P_w
    return Person(
        family=sample.family,
        betas=sample.betas.copy(),
        body_pose=sample.pose[1:].copy(),
        global_orient_cam=Rotation.from_matrix(R_cam).as_rotvec(),
        global_orient_world=Rotation.from_matrix(R_w).as_rotvec(),
        transl_cam=root_c - p0,
        transl_world=P_w - p0,
        root_cam=root_c,
        vertices_cam=verts_c,
        vertices_world=verts_w,
        joints_cam=joints_c,
        joints_world=joints_w,
        coco_cam=coco_c,
        coco_world=coco_w,
        joints2d=j2d,
        coco2d=c2d,
        joints_visible=_visible(j2d, joints_c[:, 2], w, h),
        coco_visible=_visible(c2d, coco_c[:, 2], w, h),
        tight_bbox=box,
        bbox_center=(box[:2] + box[2:]) / 2,
        bbox_size=float(bbox_padding * max(box[2] - box[0], box[3] - box[1])),
        yaw_deg=yaw,
        distance=float(np.linalg.norm(P_w)),
    )


def sample_scene(
    rng: np.random.Generator,
    body: torch.nn.Module,
    regressors: JointRegressors,
    config: SceneConfig | None = None,
    *,
    seed: int | None = None,
    index: int | None = None,
) -> Scene:
    """Sample a camera and its people (no pixels). Raises RuntimeError after ``max_attempts`` cameras.

    A camera whose view cannot hold the first person (e.g. a telephoto lens pitched steeply at the ground
    near a low camera) is redrawn with a fresh person, so the accepted pitch/focal distribution is the
    sampled one thinned where such views are impossible (docs/data.md gives the measured rates).
    ``seed``/``index`` are only recorded; use ``sample_scene_at`` to derive the generator from them.
    """
    cfg = config or SceneConfig()
    if int(body.v_template.shape[0]) != regressors.coco17.shape[1]:
        raise ValueError(
            f"regressors: coco17 has {regressors.coco17.shape[1]} columns, body has "
            f"{int(body.v_template.shape[0])} vertices"
        )
    n_people = int(rng.integers(cfg.num_people[0], cfg.num_people[1] + 1))
    for _ in range(cfg.max_attempts):
        cam = sample_camera(rng, cfg.camera)
        people: list[Person] = []
        for _k in range(n_people):
            sample = sample_body(rng, body, cfg.pose)
            person = None
            for _try in range(cfg.placement_attempts):
                person = _place(rng, cam, sample, regressors, cfg, people)
                if person is not None:
                    break
            if person is None:
                break
            people.append(person)
        if len(people) == n_people:
            return Scene(camera=cam, people=tuple(people), seed=seed, index=index)
    raise RuntimeError(
        f"sample_scene: no camera out of {cfg.max_attempts} could see {n_people} person(s) with the "
        f"constraints of {cfg!r}; widen distance_m / height_frac / camera ranges or lower min_inside"
    )


def sample_scene_at(
    seed: int,
    index: int,
    body: torch.nn.Module,
    regressors: JointRegressors,
    config: SceneConfig | None = None,
) -> Scene:
    """Scene ``index`` of the data set made with ``seed``: identical on every call and machine."""
    return sample_scene(scene_rng(seed, index), body, regressors, config, seed=seed, index=index)
