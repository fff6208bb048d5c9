"""Training augmentations that keep full-image targets, crop targets and glob info consistent.

Everything is stated in the *full image* first and the crop is derived from it, so the three views can
never drift apart (the released W-HMR code flips and rotates the crop but keeps the original full-image
box and keypoints, so its FULL^2 targets and glob info disagree with the image). Order per sample:

1. flip (whole image): x -> W - 1 - x for keypoints, box centre and principal point (OpenCV pixel centres);
   left/right joints swap; the camera-frame 3D (joints, root, translation) mirrors through the camera's
   x = 0 plane, ``M = diag(-1, 1, 1)``; SMPL pose mirrors as SPIN does (swap joints, negate the axis-angle
   y and z); gravity mirrors (``g -> M g``, so ``R_c -> M R_c M``) and so does the world frame.
2. box jitter: centre shift and scale of the square box (the full image is untouched).
3. in-plane rotation by ``rot`` degrees, counter-clockwise as displayed, about the (jittered) box centre c.
   Full-image keypoints are rotated exactly about c. In 3D this is a rotation ``R_z`` of the camera frame
   about the optical axis -- SPIN's treatment of the root orientation -- and we apply the same ``R_z`` to
   joints, translation and gravity (``R_c -> R_z R_c``; world-frame targets do not change). A rotation of
   the image equals a rotation of the camera about its optical axis only when it turns about the principal
   point; about c it is that rotation plus an image shift ``(I - R)(c - p)``, which no camera motion makes.
   We therefore move the principal point with the image, ``p' = c + R (p - c)``, and return that K: the
   rotated 3D projected with the returned K lands exactly on the rotated keypoints (for ``f_x = f_y``; with
   anisotropic pixels the rotated image is no pinhole image at all and this is the nearest one).
4. crop: the axis-aligned square box of the rotated image, one ``cv2.warpAffine`` from the original image.
   Crop coordinates in [-1, 1]: ``q = 2 (p' - c) / b`` (pixel edges of the crop at -1 and 1).
5. colour noise (per-channel gain, SPIN's ``pn``) and a synthetic occluder in the crop; labels unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from whmr_core.crops import image_to_crop_affine

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "Targets",
    "apply_augmentation",
    "crop_keypoints",
    "crop_matrix",
    "flip_pose",
    "flip_targets",
    "rotate_targets",
    "sample_augment_params",
]

_MIRROR = np.diag([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class AugmentConfig:
    """SPIN's defaults, plus occluders."""

    flip_prob: float = 0.5
    rot_prob: float = 0.6
    rot_factor: float = 30.0  # rot = clip(N(0, 1) * factor, -2 factor, 2 factor) degrees
    scale_factor: float = 0.25  # box side *= clip(1 + N(0, 1) * factor, 1 - factor, 1 + factor)
    trans_factor: float = 0.1  # centre += U(-1, 1) * factor * side, per axis
    noise_factor: float = 0.4  # colour gain per channel U(1 - factor, 1 + factor)
    occluder_prob: float = 0.3
    occluder_size: tuple[float, float] = (0.1, 0.4)  # side as a fraction of the crop


@dataclass(frozen=True)
class AugmentParams:
    flip: bool = False
    rot_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box side
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Occluder: (centre x, centre y, width, height) in crop fractions, colour RGB 0-255, ellipse or box.
    occluder: tuple[float, float, float, float] | None = None
    occluder_colour: tuple[int, int, int] = (0, 0, 0)
    occluder_ellipse: bool = False


def sample_augment_params(rng: np.random.Generator, cfg: AugmentConfig) -> AugmentParams:
    """Draw one sample's augmentation."""
    rot = 0.0
    if rng.random() < cfg.rot_prob:
        rot = float(np.clip(rng.normal() * cfg.rot_factor, -2 * cfg.rot_factor, 2 * cfg.rot_factor))
    sf = cfg.scale_factor
    occ = None
    if rng.random() < cfg.occluder_prob:
        wh = rng.uniform(*cfg.occluder_size, size=2)
        occ = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9)), float(wh[0]), float(wh[1]))
    return AugmentParams(
        flip=bool(rng.random() < cfg.flip_prob),
        rot_deg=rot,
        scale=float(np.clip(1 + rng.normal() * sf, 1 - sf, 1 + sf)),
        shift=tuple(float(x) for x in rng.uniform(-cfg.trans_factor, cfg.trans_factor, size=2)),
        colour=tuple(float(x) for x in rng.uniform(1 - cfg.noise_factor, 1 + cfg.noise_factor, size=3)),
        occluder=occ,
        occluder_colour=tuple(int(x) for x in rng.integers(0, 256, size=3)),
        occluder_ellipse=bool(rng.random() < 0.5),
    )


@dataclass(frozen=True)
class Targets:
    """One person's targets in the full image and the camera/world frames (float64 numpy).

    Optional entries are None when the annotation file lacks them; ``flip_perm``/``coco_flip_perm`` give
    the left/right swap of ``keypoints2d``/``joints3d`` and of the COCO arrays.
    """

    image_wh: np.ndarray  # (2,)
    K: np.ndarray  # (3,3)
    center: np.ndarray  # (2,)
    bbox_size: float
    keypoints2d: np.ndarray  # (J,3) pixels + confidence
    flip_perm: Sequence[int]
    joints3d: np.ndarray | None = None  # (J,4) camera frame + confidence
    coco2d: np.ndarray | None = None  # (17,3)
    coco3d: np.ndarray | None = None  # (17,4)
    coco_flip_perm: Sequence[int] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    pose: np.ndarray | None = None  # (72,) camera-frame root first
    betas: np.ndarray | None = None
    transl_cam: np.ndarray | None = None  # smplx transl
    root_cam: np.ndarray | None = None  # J_0 + transl: the root rotation's pivot
    cam_rotation: np.ndarray | None = None  # R_c
    gravity_cam: np.ndarray | None = None
    global_orient_world: np.ndarray | None = None
    joints3d_world: np.ndarray | None = None  # (24,3) SMPL joints
    world_flip_perm: Sequence[int] | None = None  # of joints3d_world; None: ``flip_perm``


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(v, dtype=np.float64).reshape(3, 1))[0]


def _matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(m, dtype=np.float64))[0].reshape(3)


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror a (72,) SMPL pose through the x = 0 plane: swap left/right joints, negate axis-angle y, z."""
    from whmr_core.body.skeleton import SMPL_FLIP_PERM

    p = np.asarray(pose, dtype=np.float64).reshape(24, 3)[list(SMPL_FLIP_PERM)].copy()
    p[:, 1:] *= -1
    return p.reshape(72)


def _mirror_points(x: np.ndarray | None, perm: Sequence[int]) -> np.ndarray | None:
    if x is None:
        return None
    out = np.asarray(x, dtype=np.float64)[list(perm)].copy()
    out[:, 0] *= -1
    return out


def flip_targets(t: Targets) -> Targets:
    """Targets of the horizontally mirrored full image (see the module docstring, step 1)."""
    w = float(t.image_wh[0])
    K = t.K.copy()
    K[0, 2] = w - 1 - K[0, 2]

    def flip2d(kp: np.ndarray | None, perm: Sequence[int]) -> np.ndarray | None:
        if kp is None:
            return None
        out = np.asarray(kp, dtype=np.float64)[list(perm)].copy()
        out[:, 0] = w - 1 - out[:, 0]
        return out

    transl = root = None
    if t.root_cam is not None and t.transl_cam is not None:
        # smplx turns the body about J_0(betas), unchanged by mirroring: keep t = root - J_0 with the
        # mirrored root (pose mirroring keeps the betas, so J_0 stays).
        root = _MIRROR @ t.root_cam
        transl = root - (t.root_cam - t.transl_cam)
    R_c = None if t.cam_rotation is None else _MIRROR @ t.cam_rotation @ _MIRROR
    g = None if t.gravity_cam is None else _MIRROR @ t.gravity_cam
    orient_w = None
    if t.global_orient_world is not None:
        orient_w = _matrix_to_rotvec(_MIRROR @ _rotvec_to_matrix(t.global_orient_world) @ _MIRROR)
    return replace(
        t,
        K=K,
        center=np.array([w - 1 - t.center[0], t.center[1]]),
        keypoints2d=flip2d(t.keypoints2d, t.flip_perm),
        joints3d=_mirror_points(t.joints3d, t.flip_perm),
        coco2d=flip2d(t.coco2d, t.coco_flip_perm),
        coco3d=_mirror_points(t.coco3d, t.coco_flip_perm),
        pose=None if t.pose is None else flip_pose(t.pose),
        transl_cam=transl,
        root_cam=root,
        cam_rotation=R_c,
        gravity_cam=g,
        global_orient_world=orient_w,
        joints3d_world=_mirror_points(
            t.joints3d_world, t.flip_perm if t.world_flip_perm is None else t.world_flip_perm
        ),
    )


def _rot2d(rot_deg: float) -> np.ndarray:
    """Counter-clockwise as displayed (image y points down)."""
    a = math.radians(rot_deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def rotate_targets(t: Targets, rot_deg: float) -> Targets:
    """Targets of the full image rotated by ``rot_deg`` about the box centre (module docstring, step 3)."""
    if rot_deg == 0:
        return t
    r2 = _rot2d(rot_deg)
    r3 = np.eye(3)
    r3[:2, :2] = r2  # rotation about the optical axis with the same action on normalised coordinates
    c = np.asarray(t.center, dtype=np.float64)

    def rot2d(kp: np.ndarray | None) -> np.ndarray | None:
        if kp is None:
            return None
        out = np.asarray(kp, dtype=np.float64).copy()
        out[:, :2] = (out[:, :2] - c) @ r2.T + c
        return out

    def rot3d(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        out = np.asarray(x, dtype=np.float64).copy()
        out[:, :3] = out[:, :3] @ r3.T
        return out

    K = t.K.copy()
    K[:2, 2] = c + r2 @ (K[:2, 2] - c)  # the principal point moves with the image
    pose = None
    if t.pose is not None:
        pose = np.asarray(t.pose, dtype=np.float64).copy()
        pose[:3] = _matrix_to_rotvec(r3 @ _rotvec_to_matrix(pose[:3]))
    transl = root = None
    if t.root_cam is not None and t.transl_cam is not None:
        root = r3 @ t.root_cam
        transl = root - (t.root_cam - t.transl_cam)
    return replace(
        t,
        K=K,
        keypoints2d=rot2d(t.keypoints2d),
        coco2d=rot2d(t.coco2d),
        joints3d=rot3d(t.joints3d),
        coco3d=rot3d(t.coco3d),
        pose=pose,
        transl_cam=transl,
        root_cam=root,
        cam_rotation=None if t.cam_rotation is None else r3 @ t.cam_rotation,
        gravity_cam=None if t.gravity_cam is None else r3 @ t.gravity_cam,
    )


def crop_matrix(center: np.ndarray, size: float, rot_deg: float, res: int) -> np.ndarray:
    """(2,3) affine from original full-image pixels to crop pixels: rotate about c, scale, centre.

    Pixel centres at integers on both sides, so c lands on the crop's centre (res - 1) / 2: the crop
    convention of inference (``whmr_core.crops``), with the augmentation's rotation.
    """
    return image_to_crop_affine(center, size, (res, res), _rot2d(rot_deg))


def crop_keypoints(kp_full: np.ndarray, center: np.ndarray, size: float) -> np.ndarray:
    """Full-image keypoints (already rotated) -> crop coordinates in [-1, 1], confidence kept."""
    out = np.asarray(kp_full, dtype=np.float64).copy()
    out[:, :2] = 2 * (out[:, :2] - center) / size
    return out


def apply_augmentation(
    image: np.ndarray, targets: Targets, params: AugmentParams, res: int
) -> tuple[np.ndarray, Targets]:
    """Augment one person: returns the crop (res, res, 3) uint8 and the full-image targets after it.

    ``image`` is the *original* full image; the flip and rotation are folded into one warp of it.
    Crop-space targets follow from the returned targets with ``crop_keypoints``.
    """
    t = targets
    h, w = image.shape[:2]
    if (w, h) != tuple(int(x) for x in t.image_wh):
        raise ValueError(f"image: size {(w, h)} differs from the annotation's image_wh {tuple(t.image_wh)}")
    if params.flip:
        image = cv2.flip(image, 1)
        t = flip_targets(t)
    size = t.bbox_size * params.scale
    center = t.center + np.asarray(params.shift) * t.bbox_size
    t = replace(t, center=center, bbox_size=float(size))
    t = rotate_targets(t, params.rot_deg)
    m = crop_matrix(center, size, params.rot_deg, res)
    crop = cv2.warpAffine(image, m, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if params.colour != (1.0, 1.0, 1.0):
        crop = np.clip(crop.astype(np.float32) * np.asarray(params.colour, np.float32), 0, 255).astype(
            np.uint8
        )
    if params.occluder is not None:
        crop = crop.copy()
        cx, cy, ow, oh = (v * res for v in params.occluder)
        colour = tuple(int(c) for c in params.occluder_colour)
        if params.occluder_ellipse:
            cv2.ellipse(crop, (round(cx), round(cy)), (round(ow / 2), round(oh / 2)), 0, 0, 360, colour, -1)
        else:
            p0 = (round(cx - ow / 2), round(cy - oh / 2))
            p1 = (round(cx + ow / 2), round(cy + oh / 2))
            cv2.rectangle(crop, p0, p1, colour, -1)
    return crop, t
