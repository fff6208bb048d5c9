"""A synthetic sequence: a person walking and turning in front of a moving, tilting camera, with an IMU.

World frame W = the gravity frame G of the first frame (origin at the camera at t = 0, y down along gravity,
no yaw); the ground is ``y_W = camera_height_m``. The camera sways (translation, no yaw) and its pitch and
roll oscillate, so frame t's gravity frame G_t is W shifted by the camera position ``c(t)``. Each frame is a
``scene.Scene`` in its own G_t (exact camera and world quantities, as the data set's scenes), rendered with
one appearance kept fixed in W. The IMU (``imu_sim.simulate_imu``, REP 145, noise and bias) runs at its own
rate on the same analytic camera motion; it is mounted like a robot's IMU (x forward, y left, z up) with a
small misalignment. Lever-arm accelerations of the IMU offset are not modelled (millimetres per s^2 here).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from whmr_core.data.appearance import Appearance, AppearanceConfig, sample_appearance
from whmr_core.data.cameras import Camera, camera_rotation, focal_from_hfov
from whmr_core.data.imu_sim import ImuNoise, SimulatedImu, simulate_imu
from whmr_core.data.poses import BodySample, body_frame_forward, sample_betas, walking_pose
from whmr_core.data.scene import JointRegressors, Scene, person_at
from whmr_core.data.synth import SynthConfig, SynthImage, render_scene
from whmr_core.render import Renderer

__all__ = ["Sequence", "SequenceConfig", "make_sequence", "render_frames"]

# IMU frame (x forward, y left, z up) seen from the camera optical frame (x right, y down, z forward).
_IMU_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class SequenceConfig:
    """Sequence settings (seconds, Hz, metres, degrees)."""

    seconds: float = 4.0
    fps: float = 30.0
    imu_rate_hz: float = 200.0
    start_ns: int = 1_764_000_000 * 10**9  # first stamp (any fixed time: bags are reproducible)
    image_wh: tuple[int, int] = (320, 240)
    hfov_deg: float = 75.0
    camera_height_m: float = 1.3
    pitch_mean_deg: float = 8.0  # positive looks down
    pitch_amp_deg: float = 10.0
    pitch_period_s: float = 3.1
    roll_amp_deg: float = 8.0
    roll_period_s: float = 2.3
    sway_m: tuple[float, float, float] = (0.25, 0.04, 0.15)  # camera translation amplitudes along x, y, z
    sway_period_s: tuple[float, float, float] = (4.2, 0.9, 5.3)
    walk_centre_m: float = 4.5  # the person walks on a circle around this point straight ahead
    walkers: int = 1  # people in view; walker k > 0 circles a point beside and behind the first one's
    walk_radius_m: float = 1.6
    walk_speed: float = 1.0  # m/s
    gait_period_s: float = 1.1  # one full stride (two steps)
    imu_offset_m: tuple[float, float, float] = (0.03, -0.02, -0.01)  # IMU origin in the camera frame
    imu_misalignment_deg: tuple[float, float, float] = (0.8, -0.5, 1.2)  # small mounting error (xyz Euler)
    imu_noise: ImuNoise | None = field(default_factory=ImuNoise)
    appearance: AppearanceConfig = field(
        # No image-space ground texture (it would not move with the ground) and no occluders on the path.
        default_factory=lambda: AppearanceConfig(
            occluder_prob=0.0, clutter=(3, 6), ground_texture=(0.0, 0.0), blur_prob=0.0, noise_std=(1.0, 3.0)
        )
    )

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.fps <= 0 or self.imu_rate_hz <= 0:
            raise ValueError("SequenceConfig: seconds, fps and imu_rate_hz must be > 0")
        if self.walkers < 1:
            raise ValueError(f"SequenceConfig: walkers must be >= 1, got {self.walkers}")
        if self.walk_radius_m >= self.walk_centre_m - 0.8:
            raise ValueError("SequenceConfig: the walking circle must stay 0.8 m in front of the camera")

    @property
    def camera_from_imu(self) -> np.ndarray:
        """R_CI (X_C = R_CI X_I): the nominal mount times the misalignment."""
        return _IMU_AXES @ Rotation.from_euler("xyz", self.imu_misalignment_deg, degrees=True).as_matrix()


@dataclass(frozen=True)
class Sequence:
    """Frames with exact ground truth, IMU readings and the fixed look."""

    config: SequenceConfig
    frame_stamps_ns: np.ndarray  # (T,) int64
    scenes: tuple[Scene, ...]  # frame t in its gravity frame G_t
    camera_positions: np.ndarray  # (T,3) camera centre in W
    imu: SimulatedImu
    appearance: Appearance = field(repr=False)  # in W


def _stamps(cfg: SequenceConfig, rate: float) -> np.ndarray:
    n = round(cfg.seconds * rate)
    return cfg.start_ns + (np.arange(n, dtype=np.int64) * 10**9) // round(rate * 1000) * 1000


def _motion(cfg: SequenceConfig, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera centre in W, its acceleration, pitch and roll (degrees) at times ``t`` (seconds from start)."""
    amp = np.asarray(cfg.sway_m)
    w = 2 * math.pi / np.asarray(cfg.sway_period_s)
    pos = amp * np.sin(w * t[:, None])  # zero at t = 0: W is the first frame's gravity frame
    acc = -amp * w**2 * np.sin(w * t[:, None])
    pitch = cfg.pitch_mean_deg + cfg.pitch_amp_deg * np.sin(2 * math.pi * t / cfg.pitch_period_s)
    roll = cfg.roll_amp_deg * np.sin(2 * math.pi * t / cfg.roll_period_s + 0.7)
    return pos, acc, pitch, roll


@dataclass(frozen=True)
class _Walker:
    """One walker's draws: shape, gait style, start on its circle, direction, gait phase."""

    centre: np.ndarray  # (x, z) of its circle in W
    betas: np.ndarray
    style_seed: int
    phi0: float
    direction: float
    gait0: float

    @classmethod
    def draw(cls, rng: np.random.Generator, num_betas: int, centre: np.ndarray) -> _Walker:
        betas = sample_betas(rng, num_betas)
        style_seed = int(rng.integers(2**31))
        phi0 = math.pi + rng.uniform(-1.0, 1.0)  # angle on the circle; pi is the point nearest the camera
        direction = 1.0 if rng.random() < 0.5 else -1.0
        return cls(centre, betas, style_seed, phi0, direction, rng.uniform(0, 2 * math.pi))


def _walker_centre(cfg: SequenceConfig, k: int) -> np.ndarray:
    """Walker 0 circles straight ahead; the others alternate left and right of it, a metre further back
    per pair, so that they cross in front of each other now and then (occlusions, track swaps)."""
    if k == 0:
        return np.array([0.0, cfg.walk_centre_m])
    side = 1.0 if k % 2 else -1.0
    return np.array([side * 2.0, cfg.walk_centre_m + 1.0 * ((k + 1) // 2)])


def make_sequence(
    body: torch.nn.Module, regressors: JointRegressors, seed: int, config: SequenceConfig | None = None
) -> Sequence:
    """The sequence of ``seed``: walkers (shape, gait style, start, direction), look and IMU noise."""
    cfg = config or SequenceConfig()
    walkers = [
        _Walker.draw(
            np.random.default_rng([int(seed), 7] if k == 0 else [int(seed), 7, k]),
            int(body.num_betas),
            _walker_centre(cfg, k),
        )
        for k in range(cfg.walkers)
    ]

    stamps = _stamps(cfg, cfg.fps)
    t = (stamps - cfg.start_ns) * 1e-9
    pos, _, pitch, roll = _motion(cfg, t)
    w, h = cfg.image_wh
    f = focal_from_hfov(w, cfg.hfov_deg)
    K = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    scenes = []
    for k, tk in enumerate(t):
        cam = Camera(
            image_wh=(w, h), K=K, R_c=camera_rotation(pitch[k], roll[k]),
            height=cfg.camera_height_m - pos[k, 1], pitch_deg=float(pitch[k]), roll_deg=float(roll[k]),
        )  # fmt: skip
        people = []
        for walker in walkers:
            phi = walker.phi0 + walker.direction * cfg.walk_speed / cfg.walk_radius_m * tk
            xz = walker.centre + cfg.walk_radius_m * np.array([math.sin(phi), math.cos(phi)])
            # Facing along the circle: yaw 0 faces the camera (-z_G); forward is (-sin yaw, -cos yaw) in x-z.
            yaw = math.degrees(phi) - 90.0 + (0.0 if walker.direction > 0 else 180.0)
            pose = walking_pose(
                walker.gait0 + 2 * math.pi * tk / cfg.gait_period_s, np.random.default_rng(walker.style_seed)
            )
            verts, joints = body_frame_forward(body, pose, walker.betas)
            sample = BodySample("walking", pose, walker.betas, verts, joints)
            # Lowest vertex on the ground; the body's y (up) becomes -y_G whatever the yaw.
            pelvis_y = cam.height - (joints[0, 1] - verts[:, 1].min())
            pelvis_g = np.array([xz[0] - pos[k, 0], pelvis_y, xz[1] - pos[k, 2]])
            people.append(person_at(cam, sample, regressors, yaw, pelvis_g))
        scenes.append(Scene(camera=cam, people=tuple(people), seed=seed, index=k))

    imu_stamps = _stamps(cfg, cfg.imu_rate_hz)
    ti = (imu_stamps - cfg.start_ns) * 1e-9
    _, acc_i, pitch_i, roll_i = _motion(cfg, ti)
    r_c = np.stack([camera_rotation(p, r) for p, r in zip(pitch_i, roll_i, strict=True)])
    imu = simulate_imu(
        imu_stamps, r_c, acc_i, camera_from_imu=cfg.camera_from_imu, noise=cfg.imu_noise,
        rng=np.random.default_rng([int(seed), 8]),
    )  # fmt: skip
    app = sample_appearance(np.random.default_rng([int(seed), 9]), scenes[0], cfg.appearance)
    # Keep props off the walking circles.
    props = tuple(
        p
        for p in app.props
        if all(
            abs(np.hypot(*(p.vertices[:, [0, 2]].mean(0) - w.centre)) - cfg.walk_radius_m) > 1.0
            for w in walkers
        )
    )
    return Sequence(cfg, stamps, tuple(scenes), pos, imu, replace(app, props=props))


def render_frames(seq: Sequence, renderer: Renderer, body: torch.nn.Module) -> Iterator[SynthImage]:
    """Frame by frame: the fixed look moved into each frame's gravity frame, fresh pixel noise."""
    rng = np.random.default_rng([int(seq.scenes[0].seed or 0), 10])
    cfg = SynthConfig(min_visible_joints=0.0)
    for scene, c in zip(seq.scenes, seq.camera_positions, strict=True):
        yield render_scene(scene, renderer, body, seq.appearance.translated(-c), rng=rng, config=cfg)
