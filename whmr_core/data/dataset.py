"""Torch ``Dataset`` over an annotation file and an image folder (ours or standard SPIN/PyMAF/CLIFF files).

One item is one annotated person. Keys (float32 tensors unless said; J = the 33 points of
``whmr_core.body.joint_layouts.SUPERVISION_NAMES``, SMPL-24 first, whatever the file's ``joints_layout``;
points the file does not label have confidence 0):

- ``img`` (3,R,R) crop, ImageNet-normalised RGB; ``glob_info`` (5,) eq. 7 of the augmented box
- ``center`` (2,), ``bbox_size`` (), ``scale`` () = size / 200: the augmented box in the full image
- ``image_wh`` (2,), ``K`` (3,3), ``focal`` (2,), ``principal_point`` (2,), ``has_K`` (): K known
  (file focal/principal point) or 0 with the stage-I pseudo focal sqrt(W^2+H^2) and the image centre
- ``keypoints_full`` (J,3) full-image pixels + confidence; ``keypoints`` (J,3) crop coordinates in [-1, 1]
- ``coco_full`` (17,3), ``coco`` (17,3), ``coco3d`` (17,4), ``has_coco`` ()
- ``joints3d`` (J,4) camera frame + confidence, ``joints3d_root`` (J,) weights of the joints whose mean is
  the file's protocol root (3D alignment), ``has_joints3d`` (): labelled, root included
- ``pose`` (72,) camera-frame root first, ``betas`` (10,), ``has_smpl`` ()
- ``transl_cam`` (3,), ``has_transl`` (); ``cam_rotation`` (3,3), ``gravity_cam`` (3,), ``has_gravity`` ()
- ``global_orient_world`` (3,), ``joints3d_world`` (24,3) SMPL joints, ``has_world`` ()
- ``flip`` (), ``rot`` () degrees, ``index`` () int64, ``imgname`` str
- with ``with_maps``: ``iuv_part`` (R,R) int64, ``iuv_uv`` (2,R,R), ``inv_depth`` (1,R,R) 1/metres on the
  body, ``has_maps`` () (0 for flipped samples and files without maps)
Missing fields are zeros with their ``has_*`` mask 0, never dropped samples.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from whmr_core.body.joint_layouts import (
    SUPERVISION_FLIP_PERM,
    SUPERVISION_NAMES,
    get_layout,
    root_weights,
    to_supervision,
)
from whmr_core.body.skeleton import SMPL_FLIP_PERM
from whmr_core.crops import normalise_pixels
from whmr_core.data.annotations import AnnotationError, Annotations
from whmr_core.data.augment import (
    AugmentConfig,
    AugmentParams,
    Targets,
    apply_augmentation,
    crop_keypoints,
    crop_matrix,
    sample_augment_params,
)
from whmr_core.data.formats import read_dataset
from whmr_core.geometry import glob_info

__all__ = ["HumanDataset", "targets_from_annotations"]

log = logging.getLogger(__name__)
_MAX_BAD_IN_A_ROW = 16  # consecutive unreadable samples: a wrong image folder rather than a few bad files


def targets_from_annotations(ann: Annotations, i: int, image_wh: tuple[int, int]) -> tuple[Targets, bool]:
    """Full-image ``Targets`` of row ``i``; the flag says whether K came from the file."""
    w, h = image_wh
    f = ann.get("focal")
    pp = ann.get("principal_point")
    cam_int = ann.get("cam_int")
    has_k = True
    if f is not None:
        fx, fy = f[i]
        cx, cy = pp[i] if pp is not None else (w / 2, h / 2)
    elif cam_int is not None:
        fx, fy, cx, cy = cam_int[i][0, 0], cam_int[i][1, 1], cam_int[i][0, 2], cam_int[i][1, 2]
    elif ann.get("focal_length") is not None:
        fx, fy = ann["focal_length"][i]
        cx, cy = w / 2, h / 2
    else:
        # Stage-I pseudo focal (eq. 8) and the image centre; has_K = 0 tells the losses.
        fx = fy = float(np.hypot(w, h))
        cx, cy = w / 2, h / 2
        has_k = False
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
    # Joint labels in the supervision layout whatever the file's (joint_layouts): batches of several data sets
    # stack, and the losses compare each label with the same point of the prediction.
    layout = get_layout(ann.joints_layout)
    part = ann.get("part")
    kp = np.zeros((len(SUPERVISION_NAMES), 3)) if part is None else to_supervision(part[i], layout)
    smpl_2d = ann.get("smpl_2dkps")
    if smpl_2d is not None:  # 2D SMPL joints (PyMAF / W-HMR release): where part has no label
        fill = to_supervision(smpl_2d[i], "smpl24")
        take = (kp[:, 2] <= 0) & (fill[:, 2] > 0)
        kp[take] = fill[take]
    j3d = None
    if ann.get("S") is not None:
        j3d = to_supervision(ann["S"][i], layout)
    elif ann.get("joints3d_cam") is not None:
        j3d = to_supervision(np.concatenate([ann["joints3d_cam"][i], np.ones((24, 1))], axis=1), "smpl24")
    world = ann.get("joints3d_world")

    def opt(name: str) -> np.ndarray | None:
        a = ann.get(name)
        return None if a is None else np.asarray(a[i], dtype=np.float64)

    t = Targets(
        image_wh=np.array([w, h], dtype=np.float64),
        K=K,
        center=np.asarray(ann["center"][i], dtype=np.float64),
        bbox_size=float(ann["scale"][i]) * 200.0,
        keypoints2d=kp,
        flip_perm=SUPERVISION_FLIP_PERM,
        joints3d=j3d,
        coco2d=opt("coco2d"),
        coco3d=opt("coco3d"),
        pose=opt("pose"),
        betas=opt("shape"),
        transl_cam=opt("transl_cam"),
        root_cam=opt("root_cam"),
        cam_rotation=opt("cam_rotation"),
        gravity_cam=opt("gravity_cam"),
        global_orient_world=opt("global_orient_world"),
        joints3d_world=None if world is None else np.asarray(world[i], dtype=np.float64),
        world_flip_perm=SMPL_FLIP_PERM,
    )
    return t, has_k


def _f(x: np.ndarray | float | None, shape: Sequence[int]) -> torch.Tensor:
    if x is None:
        return torch.zeros(tuple(shape), dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(tuple(shape)))


class HumanDataset(torch.utils.data.Dataset):
    """People of an annotation file, cropped and augmented (module docstring lists the keys)."""

    def __init__(
        self,
        annotation_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        *,
        crop_res: int = 224,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        check_images: bool = True,
        extra_ignored: Sequence[str] = (),
        with_maps: bool = False,
        skip_bad: bool = False,
        body: str = "full",
    ) -> None:
        self.ann = read_dataset(annotation_file, ignore=extra_ignored, body=body, images=image_dir)
        self.image_dir = Path(image_dir)
        self.crop_res = int(crop_res)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.joints_layout = self.ann.joints_layout
        self.with_maps = bool(with_maps)  # IUV/depth targets for the auxiliary heads (whmr synth writes them)
        # Training: a sample whose image (or map) cannot be read is replaced by the next readable one and
        # counted in the item's ``bad_samples``; the trainer stops past its limit.
        self.skip_bad = bool(skip_bad)
        if check_images and self.ann.image_source is None:
            # Fail at start-up, naming the first missing image, rather than mid-epoch.
            for i, name in enumerate(self.ann["imgname"]):
                if not (self.image_dir / str(name)).is_file():
                    raise AnnotationError(
                        self.ann.path, i, "imgname", f"image not found: {self.image_dir / name}"
                    )

    def __len__(self) -> int:
        return len(self.ann)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from (seed, epoch, index): reproducible and different every epoch."""
        self.epoch = int(epoch)

    def params(self, index: int) -> AugmentParams:
        if self.augment is None:
            return AugmentParams()
        return sample_augment_params(np.random.default_rng([self.seed, self.epoch, index]), self.augment)

    def load_image(self, index: int) -> np.ndarray:
        """RGB uint8 full image of row ``index``."""
        path = self.image_dir / str(self.ann["imgname"][index])
        if self.ann.image_source is not None:  # inside a tar: decoded from its bytes
            path = Path(str(self.ann["imgname"][index]))
            data = np.frombuffer(self.ann.image_source.read(index), np.uint8)
            img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        else:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise AnnotationError(self.ann.path, index, "imgname", f"image missing or unreadable: {path}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __getitem__(self, index: int) -> dict[str, object]:
        if not self.skip_bad:
            return self.item(index, self.params(index))
        bad = 0
        for k in range(min(len(self), _MAX_BAD_IN_A_ROW)):
            j = (index + k) % len(self)
            try:
                out = self.item(j, self.params(j))
            except AnnotationError as err:
                bad += 1
                log.warning("bad sample skipped (replaced by the next one): %s", err)
                continue
            out["bad_samples"] = torch.tensor(bad, dtype=torch.int64)
            return out
        raise AnnotationError(self.ann.path, index, "imgname", f"{bad} samples in a row cannot be read")

    def label_counts(self) -> dict[str, int]:
        """How many samples carry each kind of label the losses use (0: those losses are off)."""
        a, n = self.ann, len(self.ann)

        def labelled(name: str) -> np.ndarray:
            arr = a.get(name)
            return np.zeros(n, bool) if arr is None else (arr[..., -1] > 0).any(axis=1)

        def flag(name: str) -> np.ndarray:
            arr = a.get(name)
            return np.ones(n, bool) if arr is None else np.asarray(arr, dtype=np.float64) > 0

        smpl = flag("has_smpl") if a.get("pose") is not None else np.zeros(n, bool)
        world = flag("has_world") if a.get("global_orient_world") is not None else np.zeros(n, bool)
        joints3d = labelled("S") | (
            np.ones(n, bool) if a.get("joints3d_cam") is not None else np.zeros(n, bool)
        )
        maps = self.with_maps and a.get("iuvname") is not None and a.get("depthname") is not None
        return {
            "keypoints2d": int(labelled("part").sum()),
            "joints3d": int(joints3d.sum()),
            "smpl": int(smpl.sum()),
            "world_joints": int((world & (a.get("joints3d_world") is not None)).sum()),
            "world_smpl": int((world & smpl).sum()),
            "maps": n if maps else 0,
        }

    def item(self, index: int, params: AugmentParams) -> dict[str, object]:
        """Row ``index`` under explicit augmentation parameters (tests and visualisation use this)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image = self.load_image(index)
        h, w = image.shape[:2]
        wh = self.ann.get("image_wh")
        if wh is not None and tuple(int(x) for x in wh[index]) != (w, h):
            raise AnnotationError(
                self.ann.path, index, "image_wh", f"file says {tuple(wh[index])}, image is {(w, h)}"
            )
        t, has_k = targets_from_annotations(self.ann, index, (w, h))
        crop, t = apply_augmentation(image, t, params, self.crop_res)
        n_j = len(t.keypoints2d)
        root = root_weights(t.joints3d, get_layout(self.joints_layout))
        center = torch.as_tensor(t.center, dtype=torch.float32)
        size = torch.tensor(t.bbox_size, dtype=torch.float32)
        image_wh = torch.tensor([w, h], dtype=torch.float32)
        has = {
            "has_K": has_k,
            "has_coco": t.coco2d is not None,
            "has_joints3d": root is not None,
            "has_smpl": t.pose is not None and bool(self._row("has_smpl", index, 1.0)),
            "has_transl": t.transl_cam is not None,
            "has_gravity": t.cam_rotation is not None,
            "has_world": t.global_orient_world is not None and bool(self._row("has_world", index, 1.0)),
        }
        out: dict[str, object] = {
            "img": torch.from_numpy(normalise_pixels(crop)),
            "glob_info": glob_info(center[None], size[None], image_wh[None])[0],
            "center": center,
            "bbox_size": size,
            "scale": size / 200.0,
            "image_wh": image_wh,
            "K": _f(t.K, (3, 3)),
            "focal": _f(t.K[[0, 1], [0, 1]], (2,)),
            "principal_point": _f(t.K[:2, 2], (2,)),
            "keypoints_full": _f(t.keypoints2d, (n_j, 3)),
            "keypoints": _f(crop_keypoints(t.keypoints2d, t.center, t.bbox_size), (n_j, 3)),
            "coco_full": _f(t.coco2d, (17, 3)),
            "coco": _f(
                None if t.coco2d is None else crop_keypoints(t.coco2d, t.center, t.bbox_size), (17, 3)
            ),
            "coco3d": _f(t.coco3d, (17, 4)),
            "joints3d": _f(t.joints3d, (n_j, 4)),
            "joints3d_root": _f(root, (n_j,)),
            "pose": _f(t.pose, (72,)),
            "betas": _f(t.betas, (10,)),
            "transl_cam": _f(t.transl_cam, (3,)),
            "cam_rotation": _f(t.cam_rotation, (3, 3)),
            "gravity_cam": _f(t.gravity_cam, (3,)),
            "global_orient_world": _f(t.global_orient_world, (3,)),
            "joints3d_world": _f(t.joints3d_world, (24, 3)),
            "flip": torch.tensor(float(params.flip)),
            "rot": torch.tensor(float(params.rot_deg)),
            "index": torch.tensor(index, dtype=torch.int64),
            "imgname": str(self.ann["imgname"][index]),
        }
        out.update({k: torch.tensor(float(v)) for k, v in has.items()})
        if self.with_maps:
            out.update(self._maps(index, t, params))
        return out

    def _maps(self, index: int, t: Targets, params: AugmentParams) -> dict[str, torch.Tensor]:
        """IUV and inverse-depth targets cut with the image's crop warp (nearest neighbour), at crop size.

        Flipped samples carry no maps (``has_maps`` 0): mirroring would also have to mirror the U, V charts.
        Rotation and box jitter keep depth (the optical axis is unchanged) and the part labels."""
        res = self.crop_res
        empty = {
            "iuv_part": torch.zeros((res, res), dtype=torch.int64),
            "iuv_uv": torch.zeros((2, res, res)),
            "inv_depth": torch.zeros((1, res, res)),
            "has_maps": torch.tensor(0.0),
        }
        names = self.ann.get("iuvname"), self.ann.get("depthname")
        if names[0] is None or names[1] is None or params.flip:
            return empty
        iuv = cv2.imread(str(self.image_dir / str(names[0][index])), cv2.IMREAD_UNCHANGED)
        depth = cv2.imread(str(self.image_dir / str(names[1][index])), cv2.IMREAD_UNCHANGED)
        if iuv is None or depth is None:
            raise AnnotationError(self.ann.path, index, "iuvname/depthname", "map missing or unreadable")
        iuv = cv2.cvtColor(iuv, cv2.COLOR_BGR2RGB)
        m = crop_matrix(t.center, t.bbox_size, params.rot_deg, res)
        warp = {"flags": cv2.INTER_NEAREST, "borderMode": cv2.BORDER_CONSTANT}
        iuv_c = cv2.warpAffine(iuv, m, (res, res), **warp)
        depth_c = cv2.warpAffine(depth, m, (res, res), **warp).astype(np.float32) / 1000.0
        part = iuv_c[..., 0].astype(np.int64)
        inv = np.where((depth_c > 0) & (part > 0), 1.0 / np.maximum(depth_c, 1e-3), 0.0).astype(np.float32)
        return {
            "iuv_part": torch.from_numpy(part),
            "iuv_uv": torch.from_numpy(iuv_c[..., 1:].transpose(2, 0, 1).astype(np.float32) / 255.0),
            "inv_depth": torch.from_numpy(inv[None]),
            "has_maps": torch.tensor(1.0),
        }

    def _row(self, name: str, index: int, default: float) -> float:
        a = self.ann.get(name)
        return default if a is None else float(a[index])
