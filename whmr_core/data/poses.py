"""Plausible SMPL-24 poses and shapes for synthetic people.

Poses are (24, 3) rotation vectors (axis-angle) in SMPL's layout: row 0 is the root orientation relative to
an upright body facing its own +z, rows 1-23 are each joint's rotation in its parent's frame. In SMPL's rest
frame (T-pose, y up, the person faces +z, x points to the person's left) every local frame starts aligned
with the body, so the limits below are stated on the rotation-vector components about those axes:

- x: flexion/extension. Hips: negative brings the thigh forward. Knees: positive bends. Spine/neck/head:
  positive bends forward. Ankles: positive points the toes down.
- y: twist about the vertical axis for the trunk and legs; for the arms (which lie along x) it swings the
  arm forward (left: negative, right: positive) and bends the elbow (left: negative, right: positive).
- z: sideways. Left hip: positive abducts; left shoulder: negative lowers the arm from the T-pose to the side
  (right side mirrored: y and z change sign, x keeps it).

The ranges are anatomical ranges of motion (AAOS/kinesiology tables, rounded) narrowed where SMPL's
kinematics make a full range look wrong (e.g. knees cannot bend backwards, elbows do not hyperextend).
A box on the components is a plausibility envelope, not a full joint-coupling model; the self-intersection
check below catches the gross failures a box lets through.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from whmr_core.body.skeleton import SMPL_FLIP_PERM, SMPL_JOINT_NAMES

__all__ = [
    "FAMILIES",
    "JOINT_LIMITS_DEG",
    "BodySample",
    "PoseConfig",
    "body_frame_forward",
    "limb_torso_violations",
    "sample_betas",
    "sample_body",
    "sample_pose",
    "walking_pose",
    "within_limits",
]

# Per joint: ((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi)) in degrees on the rotation vector (module docstring).
_L = {
    "root": ((-10, 60), (-20, 20), (-15, 15)),  # lean relative to upright; yaw is the scene's job
    "hip": ((-125, 30), (-40, 40), (-25, 45)),  # flexion 125, extension 30, rotation 40, abduction 45
    "spine1": ((-20, 45), (-25, 25), (-20, 20)),
    "knee": ((0, 150), (-10, 10), (-5, 5)),
    "spine2": ((-15, 30), (-20, 20), (-15, 15)),
    "ankle": ((-25, 45), (-20, 20), (-20, 20)),  # dorsiflexion 25, plantarflexion 45
    "spine3": ((-15, 30), (-20, 20), (-15, 15)),
    "foot": ((-35, 35), (-5, 5), (-5, 5)),  # toes
    "neck": ((-35, 45), (-45, 45), (-30, 30)),
    "collar": ((-10, 10), (-20, 20), (-15, 30)),  # elevation 30, depression 15
    "head": ((-30, 40), (-45, 45), (-30, 30)),
    "shoulder": ((-100, 100), (-120, 50), (-100, 95)),  # twist, forward flexion 120 / extension 50, abduction
    "elbow": ((-60, 60), (-150, 0), (-10, 10)),  # twist (pronation/supination), flexion 150
    "wrist": ((-50, 50), (-35, 35), (-75, 75)),
    "hand": ((-20, 20), (-20, 20), (-20, 20)),
}


def _mirror(lim: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Right-side limits from left-side ones: y and z change sign."""
    (xl, xh), (yl, yh), (zl, zh) = lim
    return ((xl, xh), (-yh, -yl), (-zh, -zl))


def _limits_table() -> np.ndarray:
    rows: list[tuple[tuple[int, int], ...]] = []
    for name in SMPL_JOINT_NAMES:
        if name == "pelvis":
            rows.append(_L["root"])
        elif name.startswith("left_"):
            rows.append(_L[name[5:]])
        elif name.startswith("right_"):
            rows.append(_mirror(_L[name[6:]]))
        else:
            rows.append(_L[name])
    return np.array(rows, dtype=np.float64)  # (24, 3, 2)


JOINT_LIMITS_DEG: np.ndarray = _limits_table()
JOINT_LIMITS_DEG.setflags(write=False)
_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@dataclass(frozen=True)
class PoseConfig:
    """Pose/shape sampler settings."""

    families: tuple[str, ...] = ("standing", "walking", "sitting", "crouching", "reaching", "waving", "mixed")
    family_weights: tuple[float, ...] | None = None  # uniform when None
    betas_clip: float = 2.5  # betas ~ N(0, 1) clipped to +-betas_clip
    noise_deg: float = 4.0  # per-component jitter added to every family's nominal pose
    max_attempts: int = 50  # pose draws before giving up on a self-intersection-free one

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"PoseConfig.families: unknown {unknown}; known: {sorted(FAMILIES)}")
        if self.family_weights is not None and len(self.family_weights) != len(self.families):
            raise ValueError("PoseConfig.family_weights: one weight per family expected")


class _Pose:
    """Mutable (24, 3) pose in degrees-per-axis, composed into rotation vectors at the end."""

    def __init__(self) -> None:
        self.rot = [Rotation.identity() for _ in range(24)]

    def set(
        self, joint: str, x: float = 0.0, y: float = 0.0, z: float = 0.0, *, mirror: bool = False
    ) -> None:
        """Rotation R_z R_y R_x (x first, in the local frame); ``mirror`` also sets the right-side twin."""
        j = _J[joint]
        self.rot[j] = Rotation.from_euler("ZYX", [z, y, x], degrees=True)
        if mirror:
            twin = SMPL_JOINT_NAMES[SMPL_FLIP_PERM[j]]
            self.rot[_J[twin]] = Rotation.from_euler("ZYX", [-z, -y, x], degrees=True)

    def rotvec(self) -> np.ndarray:
        return np.stack([r.as_rotvec() for r in self.rot])


def _arms_down(p: _Pose, rng: np.random.Generator, elbow: float = 10.0) -> None:
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        p.set(
            f"{side}_shoulder", x=rng.normal(0, 5), y=sgn * rng.normal(-5, 5), z=sgn * rng.uniform(-80, -60)
        )
        p.set(f"{side}_elbow", y=-sgn * abs(rng.normal(elbow, 8)))


def _standing(p: _Pose, rng: np.random.Generator) -> None:
    _arms_down(p, rng)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        p.set(f"{side}_hip", x=rng.normal(0, 4), y=sgn * rng.normal(0, 5), z=sgn * rng.uniform(0, 8))
        p.set(f"{side}_knee", x=abs(rng.normal(0, 4)))
    p.set("head", x=rng.normal(0, 8), y=rng.normal(0, 15))


def _walking(p: _Pose, rng: np.random.Generator, phase: float | None = None) -> None:
    # The phase is drawn first, so a given phase with a fixed-seed generator animates one walker's gait.
    phase = rng.uniform(0, 2 * math.pi) if phase is None else phase
    amp = rng.uniform(15, 35)
    s = math.sin(phase)
    # Opposite legs and arms swing in counter-phase; the knee of the swinging leg bends most.
    p.set("left_hip", x=-amp * s, z=rng.uniform(0, 5))
    p.set("right_hip", x=amp * s, z=-rng.uniform(0, 5))
    p.set("left_knee", x=5 + 45 * max(0.0, math.sin(phase + 0.6)))
    p.set("right_knee", x=5 + 45 * max(0.0, -math.sin(phase + 0.6)))
    p.set("left_ankle", x=10 * math.cos(phase))
    p.set("right_ankle", x=-10 * math.cos(phase))
    swing = rng.uniform(10, 30)
    p.set("left_shoulder", y=swing * s, z=rng.uniform(-80, -65))
    p.set("right_shoulder", y=swing * s, z=rng.uniform(65, 80))
    p.set("left_elbow", y=-rng.uniform(10, 40))
    p.set("right_elbow", y=rng.uniform(10, 40))
    p.set("spine2", y=-5 * s)
    p.set("head", y=rng.normal(0, 10))


def _sitting(p: _Pose, rng: np.random.Generator) -> None:
    on_ground = rng.random() < 0.3
    hip = rng.uniform(-100, -75)
    knee = rng.uniform(10, 40) if on_ground else rng.uniform(75, 105)
    spread = rng.uniform(0, 20)
    p.set("left_hip", x=hip, y=rng.normal(0, 5), z=spread, mirror=True)
    p.set("left_knee", x=knee, mirror=True)
    p.set("left_ankle", x=rng.normal(0, 8), mirror=True)
    # Hands resting forward on the lap or thighs.
    p.set("left_shoulder", y=-rng.uniform(15, 45), z=-rng.uniform(55, 75), mirror=True)
    p.set("left_elbow", y=-rng.uniform(30, 80), mirror=True)
    p.set("spine1", x=rng.normal(5, 5))
    p.set("head", x=rng.normal(5, 8), y=rng.normal(0, 12))


def _crouching(p: _Pose, rng: np.random.Generator) -> None:
    # The trunk leans forward at the root; the hips flex further so the thighs stay near horizontal.
    p.set("pelvis", x=rng.uniform(15, 40))
    p.set("left_hip", x=-rng.uniform(100, 125), z=rng.uniform(5, 25), mirror=True)
    p.set("left_knee", x=rng.uniform(110, 145), mirror=True)
    p.set("left_ankle", x=-rng.uniform(10, 25), mirror=True)
    p.set("spine1", x=rng.uniform(0, 15))
    p.set("neck", x=-rng.uniform(0, 25))
    p.set("left_shoulder", y=-rng.uniform(20, 60), z=-rng.uniform(50, 75), mirror=True)
    p.set("left_elbow", y=-rng.uniform(20, 70), mirror=True)


def _reaching(p: _Pose, rng: np.random.Generator) -> None:
    _standing(p, rng)
    side, sgn = ("left", 1.0) if rng.random() < 0.5 else ("right", -1.0)
    # Arm out in a random forward/sideways/up direction, elbow nearly straight.
    p.set(f"{side}_shoulder", x=rng.normal(0, 15), y=-sgn * rng.uniform(0, 90), z=sgn * rng.uniform(-40, 60))
    p.set(f"{side}_elbow", y=-sgn * rng.uniform(0, 25))
    p.set("spine2", y=sgn * rng.uniform(0, 15), z=-sgn * rng.uniform(0, 10))
    p.set("spine3", x=rng.uniform(0, 15))


def _waving(p: _Pose, rng: np.random.Generator) -> None:
    _standing(p, rng)
    side, sgn = ("left", 1.0) if rng.random() < 0.5 else ("right", -1.0)
    # Upper arm raised sideways and twisted so the elbow's bend lifts the forearm up; the wave is the
    # elbow's swing around vertical.
    p.set(f"{side}_shoulder", x=-90, y=-sgn * rng.uniform(0, 30), z=sgn * rng.uniform(0, 35))
    p.set(f"{side}_elbow", y=-sgn * rng.uniform(60, 120))
    p.set(f"{side}_wrist", z=rng.normal(0, 15))


_LOWER = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
          "left_foot", "right_foot")  # fmt: skip


def _mixed(p: _Pose, rng: np.random.Generator) -> None:
    """Legs (and root lean) of one family with the trunk, arms and head of another."""
    bases = ("standing", "walking", "sitting", "crouching", "reaching", "waving")
    a, b = rng.choice(len(bases), size=2, replace=False)
    lower, upper = _Pose(), _Pose()
    FAMILIES[bases[a]](lower, rng)
    FAMILIES[bases[b]](upper, rng)
    for j, name in enumerate(SMPL_JOINT_NAMES):
        p.rot[j] = lower.rot[j] if name in _LOWER else upper.rot[j]


FAMILIES: dict[str, Callable[[_Pose, np.random.Generator], None]] = {
    "standing": _standing,
    "walking": _walking,
    "sitting": _sitting,
    "crouching": _crouching,
    "reaching": _reaching,
    "waving": _waving,
    "mixed": _mixed,
}


# Jitter per joint relative to ``noise_deg``: the trunk chain gets less, since three spine joints and the
# neck add up and an upright family should stay upright.
_NOISE_SCALE = np.array(
    [0.4 if n in ("spine1", "spine2", "spine3", "neck") else 1.0 for n in SMPL_JOINT_NAMES]
)


def within_limits(pose: np.ndarray, tol_deg: float = 1e-6) -> np.ndarray:
    """(..., 24, 3) rotation vectors -> (..., 24, 3) bool: each component inside its limit."""
    deg = np.degrees(np.asarray(pose, dtype=np.float64))
    lim = JOINT_LIMITS_DEG
    return (deg >= lim[..., 0] - tol_deg) & (deg <= lim[..., 1] + tol_deg)


def sample_pose(rng: np.random.Generator, family: str, noise_deg: float = 4.0) -> np.ndarray:
    """One (24, 3) rotation-vector pose of ``family``: nominal pose + jitter, clipped to the joint limits."""
    if family not in FAMILIES:
        raise ValueError(f"family: unknown {family!r}; known: {sorted(FAMILIES)}")
    p = _Pose()
    FAMILIES[family](p, rng)
    pose = p.rotvec()
    pose[1:] += np.radians(rng.normal(0.0, noise_deg, size=(23, 3))) * _NOISE_SCALE[1:, None]
    lim = np.radians(JOINT_LIMITS_DEG)
    return np.clip(pose, lim[..., 0], lim[..., 1])


def walking_pose(phase: float, rng: np.random.Generator) -> np.ndarray:
    """(24, 3) walking pose at gait ``phase`` (radians); the style (stride, arm swing) comes from ``rng``.

    A fresh generator with the same seed for every frame gives one walker's gait cycle (sequences).
    """
    p = _Pose()
    _walking(p, rng, phase)
    lim = np.radians(JOINT_LIMITS_DEG)
    return np.clip(p.rotvec(), lim[..., 0], lim[..., 1])


def sample_betas(rng: np.random.Generator, num_betas: int = 10, clip: float = 2.5) -> np.ndarray:
    """Shape coefficients ~ N(0, 1), clipped to +-clip (the tails give implausible bodies)."""
    return np.clip(rng.standard_normal(num_betas), -clip, clip)


def body_frame_forward(body: torch.nn.Module, pose: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, ...]:
    """SMPL forward in the body frame (root orientation applied about the rest pelvis, no translation).

    Returns float64 (vertices (V,3), joints (24,3)); the pelvis stays at its rest position J_0(betas).
    """
    dtype = body.shapedirs.dtype
    with torch.no_grad():
        out = body(
            betas=torch.as_tensor(betas, dtype=dtype)[None],
            global_orient=torch.as_tensor(pose[0], dtype=dtype)[None],
            body_pose=torch.as_tensor(pose[1:].reshape(-1), dtype=dtype)[None],
            transl=torch.zeros(1, 3, dtype=dtype),
        )
    return out.vertices[0].double().numpy(), out.joints[0, :24].double().numpy()


def _segment_points(a: np.ndarray, b: np.ndarray, n: int = 8) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return a[None] * (1 - t) + b[None] * t


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=-1)


def limb_torso_violations(joints: np.ndarray) -> list[str]:
    """Gross self-intersections visible in the posed SMPL-24 joints; empty when none.

    The torso is a capsule around pelvis -> neck with a radius of a quarter of the shoulder width (well
    inside the real torso, so touching one's belly passes). Arm segments (shoulder-elbow-wrist-hand) must
    stay out of it and out of a head sphere; the two legs' thigh and shin segments must stay apart.
    """
    j = np.asarray(joints, dtype=np.float64)
    shoulder_w = float(np.linalg.norm(j[16] - j[17]))
    r_torso = 0.25 * shoulder_w
    r_head = 0.2 * shoulder_w
    found: list[str] = []
    pelvis, neck, head = j[0], j[12], j[15]
    for side, chain in (("left", (16, 18, 20, 22)), ("right", (17, 19, 21, 23))):
        # Skip the first half of the upper arm: it is attached to the torso by construction.
        pts = [_segment_points(j[a], j[b]) for a, b in itertools.pairwise(chain)]
        arm = np.concatenate([pts[0][4:], *pts[1:]])
        if (_point_segment_distance(arm, pelvis, neck) < r_torso).any():
            found.append(f"{side} arm crosses the torso")
        if (np.linalg.norm(arm - head, axis=-1) < r_head).any():
            found.append(f"{side} arm crosses the head")
    min_leg_gap = 0.15 * shoulder_w
    for a, b in ((4, 7), (1, 4)):  # shin, thigh (lower half)
        left = _segment_points(j[a], j[b])[2:]
        ra, rb = SMPL_FLIP_PERM[a], SMPL_FLIP_PERM[b]
        right = _segment_points(j[ra], j[rb])[2:]
        if (np.linalg.norm(left[:, None] - right[None], axis=-1) < min_leg_gap).any():
            found.append(f"legs cross ({SMPL_JOINT_NAMES[a]}-{SMPL_JOINT_NAMES[b]})")
    return found


@dataclass(frozen=True)
class BodySample:
    """A sampled person in its own body frame (y up, facing +z, no translation)."""

    family: str
    pose: np.ndarray  # (24,3) rotation vectors; row 0 relative to upright
    betas: np.ndarray  # (B,)
    vertices: np.ndarray  # (V,3) float64
    joints: np.ndarray  # (24,3) float64, SMPL forward joints; joints[0] is the rest pelvis J_0(betas)


def sample_body(
    rng: np.random.Generator,
    body: torch.nn.Module,
    config: PoseConfig | None = None,
    families: Sequence[str] | None = None,
) -> BodySample:
    """Draw family, pose and betas; redraw the pose until the posed joints show no gross self-intersection."""
    cfg = config or PoseConfig()
    fams = tuple(families) if families is not None else cfg.families
    weights = cfg.family_weights if families is None else None
    prob = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    family = fams[int(rng.choice(len(fams), p=prob))]
    betas = sample_betas(rng, int(body.num_betas), cfg.betas_clip)
    problems: list[str] = []
    for _ in range(cfg.max_attempts):
        pose = sample_pose(rng, family, cfg.noise_deg)
        vertices, joints = body_frame_forward(body, pose, betas)
        problems = limb_torso_violations(joints)
        if not problems:
            return BodySample(family, pose, betas, vertices, joints)
    raise RuntimeError(
        f"sample_body: no self-intersection-free {family!r} pose in {cfg.max_attempts} attempts "
        f"(last: {'; '.join(problems)})"
    )
