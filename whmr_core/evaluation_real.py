"""Scoring people found in real photographs against public labels (``test/data/real_images``).

The labels (``labels.json``, schema in ``test/data/real_images/README.md``) give per image the labelled
people: a box, COCO-17 keypoints and, for Human3.6M / MPI-INF-3DHP frames, 3D joints in the camera frame
with the camera's K. A *source* (whmr, the network on the true boxes, a fixed average pose, a keypoint
model) gives per image a list of ``PredictedPerson``. Definitions:

* **counted person**: a labelled person with at least ``MIN_LIMB_POINTS`` of the 12 limb points
  (shoulders to ankles) labelled; the others (small, crowded or cut-off people) are *ignored*: finding
  them is neither a hit nor a false alarm.
* **matching**: predicted and labelled boxes are paired greedily by IoU, highest first, pairs below
  ``MATCH_IOU`` (0.5) never; counted people first, then ignored ones. **Recall** = counted people paired /
  counted people. **Precision** = paired predictions / (paired + unpaired predictions), unpaired ones
  counted only on images where the data set labels every person (``all_people_labelled``).
* **PCK@a** on people found: of the 12 limb points labelled on the person, the share predicted within
  ``a * max(w, h)`` pixels of the label, (w, h) the labelled box's size; a point the source does not give
  (score <= 0) counts as a miss. Pooled over all such points.
* **mirrored**: a person found whose predicted limb points lie closer (mean distance) to the labels with
  left and right swapped than to the labels: a body facing the other way or with crossed limbs.
* **MPJPE / PA-MPJPE** (mm) on 3D-labelled people found, over ``JOINTS14`` (12 limb joints, neck,
  pelvis) of SMPL and of the data set's skeleton: MPJPE aligned at the hip midpoint, PA-MPJPE after a
  similarity (Procrustes) alignment (``whmr_core.metrics``). The labels' joints are the data sets' own
  motion-capture skeletons: Human3.6M's hips, knees, "feet" (the ankle joints), shoulders, elbows, wrists,
  its thorax as the neck and its root (pelvis) as the pelvis; MPI-INF-3DHP's limb joints, neck and root.
  In both, the root is the hips' midpoint exactly (checked on every labelled frame) and the neck / thorax
  lies 1-8 cm from the shoulders' midpoint, mostly above it; their hips are 24-29 cm apart. A body gives
  SMPL's joints (``joints14_from_smpl``: its own neck and pelvis joints); a keypoint model's 3D points at
  the COCO-17 limb points (BlazePose's world landmarks) give ``joints14_from_coco17``: the 12 limb points,
  neck = shoulders' midpoint, pelvis = hips' midpoint.
* **depth with K**: predicted over true depth (z) of the hip midpoint, camera frame, on 3D-labelled
  people found in images whose K the source was given; reported as the median of |ratio - 1| and the
  range of ratios.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core import metrics
from whmr_core.body.keypoints import COCO17_FLIP_PERM, COCO17_NAMES, COCO17_SMPL_JOINT
from whmr_core.body.skeleton import SMPL_JOINT_NAMES
from whmr_core.tracking import iou_matrix

__all__ = [
    "JOINTS14",
    "LABELS_SCHEMA",
    "LIMB_POINTS",
    "MATCH_IOU",
    "MIN_LIMB_POINTS",
    "PCK_ALPHAS",
    "LabelledImage",
    "LabelledPerson",
    "PredictedPerson",
    "box_iou",
    "format_table",
    "is_mirrored",
    "joints14_from_coco17",
    "joints14_from_label",
    "joints14_from_smpl",
    "load_labels",
    "match_people",
    "pck_counts",
    "persons_from_record",
    "score_source",
]

LABELS_SCHEMA = "whmr-real-images/1"
LIMB_POINTS: tuple[int, ...] = tuple(range(5, 17))  # COCO-17 shoulders .. ankles
MIN_LIMB_POINTS = 7  # "most joints": more than half of the 12 limb points labelled
MATCH_IOU = 0.5
PCK_ALPHAS = (0.1, 0.2)

# 3D joints scored: (name, SMPL joint, {label skeleton: joint name}). Shoulders..ankles are the same joints
# in every skeleton; SMPL's neck sits where H36M has its thorax; pelvis is each skeleton's root.
_LIMBS = [COCO17_NAMES[k] for k in LIMB_POINTS]
JOINTS14: tuple[tuple[str, str, dict[str, str]], ...] = (
    *((n, n, {"h36m17": n.replace("ankle", "foot"), "mpi_inf_3dhp17": n}) for n in _LIMBS),
    ("neck", "neck", {"h36m17": "thorax", "mpi_inf_3dhp17": "neck"}),
    ("pelvis", "pelvis", {"h36m17": "root", "mpi_inf_3dhp17": "root"}),
)
_HIPS14 = tuple(_LIMBS.index(n) for n in ("left_hip", "right_hip"))  # rows of JOINTS14


@dataclass(frozen=True)
class LabelledPerson:
    box: np.ndarray  # (4,) x1, y1, x2, y2 pixels
    keypoints: np.ndarray  # (17, 3) COCO-17 x, y, v (v > 0: labelled)
    joints3d: np.ndarray | None = None  # (14, 3) JOINTS14, camera frame, metres
    joints3d_valid: np.ndarray | None = None  # (14,) bool

    @property
    def counted(self) -> bool:
        return int((self.keypoints[list(LIMB_POINTS), 2] > 0).sum()) >= MIN_LIMB_POINTS


@dataclass(frozen=True)
class LabelledImage:
    file: str  # relative to the labels file
    dataset: str
    split: str  # "tune" or "heldout"
    width: int
    height: int
    K: np.ndarray | None  # (3, 3) or None
    all_people_labelled: bool
    people: tuple[LabelledPerson, ...]


@dataclass
class PredictedPerson:
    box: np.ndarray  # (4,) x1, y1, x2, y2 pixels
    keypoints: np.ndarray | None = None  # (17, 3) COCO-17 x, y, score; score <= 0: not given
    joints3d: np.ndarray | None = None  # (14, 3) JOINTS14, camera frame, metres
    depth_is_metric: bool = False  # joints3d z is metric (the source was given K)
    score: float = 1.0


# --- labels ----------------------------------------------------------------------------------------------


def load_labels(path: str | Path, *, check_images: bool = True) -> list[LabelledImage]:
    """Read ``labels.json``; ValueError naming what is wrong. With ``check_images`` every image must exist
    beside it with the recorded sha256."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e
    if not isinstance(data, dict) or data.get("schema") != LABELS_SCHEMA:
        raise ValueError(f"{path}: schema must be {LABELS_SCHEMA!r}")
    if list(data.get("coco17_names", [])) != list(COCO17_NAMES):
        raise ValueError(f"{path}: coco17_names differ from whmr's COCO-17 order")
    images = []
    for i, rec in enumerate(data.get("images", [])):
        where = f"{path}: images[{i}]"
        try:
            img = _image_of(rec)
        except KeyError as e:
            raise ValueError(f"{where}: missing {e}") from e
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from e
        if check_images:
            f = path.parent / img.file
            if not f.is_file():
                raise ValueError(f"{where}: {f} is missing")
            if hashlib.sha256(f.read_bytes()).hexdigest() != rec["sha256"]:
                raise ValueError(f"{where}: {f} does not match its sha256")
        images.append(img)
    if not images:
        raise ValueError(f"{path}: no images")
    return images


def _image_of(rec: Mapping[str, Any]) -> LabelledImage:
    if rec["split"] not in ("tune", "heldout"):
        raise ValueError(f"split must be tune or heldout, got {rec['split']!r}")
    K = None if rec.get("K") is None else np.asarray(rec["K"], dtype=np.float64)
    if K is not None and K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got {K.shape}")
    people = []
    for p in rec["people"]:
        box = np.asarray(p["box_xyxy"], dtype=np.float64)
        kp = np.asarray(p["keypoints_coco17"], dtype=np.float64)
        if box.shape != (4,) or kp.shape != (17, 3) or not (np.isfinite(box).all() and np.isfinite(kp).all()):
            raise ValueError("a person needs a finite box_xyxy (4) and keypoints_coco17 (17 x 3)")
        j3, valid = (None, None) if p.get("joints3d") is None else joints14_from_label(p["joints3d"])
        people.append(LabelledPerson(box, kp, j3, valid))
    return LabelledImage(
        str(rec["file"]), str(rec["dataset"]), str(rec["split"]), int(rec["width"]), int(rec["height"]),
        K, bool(rec["all_people_labelled"]), tuple(people),
    )  # fmt: skip


def joints14_from_label(joints3d: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A labels-file ``joints3d`` entry -> (14, 3) JOINTS14 metres and their validity (14,)."""
    skeleton = str(joints3d["skeleton"])
    names = list(joints3d["names"])
    xyz = np.asarray(joints3d["xyz_m"], dtype=np.float64)
    valid = np.asarray(joints3d["valid"], dtype=bool)
    if xyz.shape != (len(names), 3) or valid.shape != (len(names),):
        raise ValueError("joints3d: xyz_m and valid must have one row per name")
    out, ok = np.zeros((len(JOINTS14), 3)), np.zeros(len(JOINTS14), dtype=bool)
    for k, (_, _, by_skeleton) in enumerate(JOINTS14):
        if skeleton not in by_skeleton:
            raise ValueError(f"joints3d: unknown skeleton {skeleton!r}")
        j = names.index(by_skeleton[skeleton])
        out[k], ok[k] = xyz[j], valid[j] and np.isfinite(xyz[j]).all()
    return out, ok


def joints14_from_smpl(joints: np.ndarray) -> np.ndarray:
    """SMPL joints (>= 24, 3), named as ``SMPL_JOINT_NAMES`` -> (14, 3) JOINTS14."""
    joints = np.asarray(joints, dtype=np.float64)
    return np.stack([joints[SMPL_JOINT_NAMES.index(smpl)] for _, smpl, _ in JOINTS14])


def joints14_from_coco17(points: np.ndarray) -> np.ndarray:
    """3D points at the COCO-17 keypoints (17, 3) -> (14, 3) JOINTS14: the 12 limb points as they are, the
    neck at the shoulders' midpoint, the pelvis at the hips' midpoint (the face points are not used)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (len(COCO17_NAMES), 3):
        raise ValueError(f"expected ({len(COCO17_NAMES)}, 3) COCO-17 points, got {points.shape}")
    mid = {"neck": ("left_shoulder", "right_shoulder"), "pelvis": ("left_hip", "right_hip")}
    rows = []
    for name, _, _ in JOINTS14:
        pair = mid.get(name, (name, name))
        rows.append(0.5 * (points[COCO17_NAMES.index(pair[0])] + points[COCO17_NAMES.index(pair[1])]))
    return np.stack(rows)


def coco17_from_smpl_2d(joints_2d: np.ndarray) -> np.ndarray:
    """Projected SMPL joints (>= 24, 2) -> (17, 3) COCO-17 with score 1 on the 12 limb points (the face
    points, which need the mesh, are not given)."""
    out = np.zeros((17, 3))
    for k, j in COCO17_SMPL_JOINT.items():
        out[k] = (*joints_2d[j], 1.0)
    return out


def persons_from_record(record: Mapping[str, Any], *, keypoints: str = "body") -> list[PredictedPerson]:
    """The people of one ``whmr image`` JSON record. ``keypoints="body"``: the body's projected SMPL
    joints and its 3D joints; ``"model"``: the record's keypoint-model ``keypoints_2d`` (COCO-17 x, y, score),
    no 3D (people without them are skipped: the model gave none)."""
    out = []
    for p in record.get("persons", []):
        box = np.asarray(p["box_xyxy"], dtype=np.float64)
        score = float(p.get("score", 1.0))
        if keypoints == "model":
            if p.get("keypoints_2d") is None:
                continue
            kp = np.asarray(p["keypoints_2d"], dtype=np.float64).reshape(17, 3)
            out.append(PredictedPerson(box, kp, score=score))
        else:
            j2 = np.asarray(p["joints_2d"], dtype=np.float64)
            j3 = joints14_from_smpl(np.asarray(p["joints_camera"], dtype=np.float64))
            out.append(PredictedPerson(box, coco17_from_smpl_2d(j2), j3, bool(p["translation_is_metric"]),
                                       score))  # fmt: skip
    return out


# --- the measures ----------------------------------------------------------------------------------------


# Box overlap as the tracker computes it (one IoU in the project).
box_iou = iou_matrix


@dataclass
class Matching:
    pairs: list[tuple[int, int]]  # (labelled person, prediction) of counted people
    ignored: list[int]  # predictions paired with ignored people
    unpaired: list[int]  # predictions paired with nobody
    counted: int  # counted labelled people


def match_people(labels: Sequence[LabelledPerson], preds: Sequence[PredictedPerson]) -> Matching:
    """Greedy IoU pairing, highest first, counted people before ignored ones (see the module doc)."""
    counted = [i for i, p in enumerate(labels) if p.counted]
    ignored = [i for i, p in enumerate(labels) if not p.counted]
    free = set(range(len(preds)))
    iou = box_iou(
        np.array([p.box for p in labels]).reshape(-1, 4), np.array([p.box for p in preds]).reshape(-1, 4)
    )

    def greedy(rows: list[int]) -> list[tuple[int, int]]:
        cand = sorted(((iou[r, c], r, c) for r in rows for c in free if iou[r, c] >= MATCH_IOU), reverse=True)
        used_r, got = set(), []
        for _, r, c in cand:
            if r not in used_r and c in free:
                used_r.add(r)
                free.discard(c)
                got.append((r, c))
        return got

    pairs = greedy(counted)
    ign = [c for _, c in greedy(ignored)]
    return Matching(sorted(pairs), sorted(ign), sorted(free), len(counted))


def _box_size(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


def pck_counts(pred_kp: np.ndarray | None, label: LabelledPerson, alpha: float) -> tuple[int, int]:
    """(limb points within ``alpha * max(w, h)`` of the label, limb points labelled)."""
    idx = [k for k in LIMB_POINTS if label.keypoints[k, 2] > 0]
    if pred_kp is None or not idx:
        return 0, len(idx)
    given = pred_kp[idx, 2] > 0
    d = np.linalg.norm(pred_kp[idx, :2] - label.keypoints[idx, :2], axis=1)
    return int((given & (d <= alpha * _box_size(label.box))).sum()), len(idx)


def is_mirrored(pred_kp: np.ndarray | None, label: LabelledPerson) -> bool | None:
    """True when the predicted limb points are closer to the left/right-swapped labels than to the labels;
    None when no limb point is both labelled (in both versions) and predicted."""
    if pred_kp is None:
        return None
    flipped = label.keypoints[list(COCO17_FLIP_PERM)]
    idx = [k for k in LIMB_POINTS if label.keypoints[k, 2] > 0 and flipped[k, 2] > 0 and pred_kp[k, 2] > 0]
    if not idx:
        return None
    straight = np.linalg.norm(pred_kp[idx, :2] - label.keypoints[idx, :2], axis=1).mean()
    swapped = np.linalg.norm(pred_kp[idx, :2] - flipped[idx, :2], axis=1).mean()
    return bool(swapped < straight)


@dataclass
class SourceScore:
    """Totals of one source over a set of images (``summary()`` gives the reported figures)."""

    counted: int = 0
    found: int = 0
    predictions: int = 0  # paired + unpaired ones that count against precision
    pck: dict[float, list[int]] = field(default_factory=lambda: {a: [0, 0] for a in PCK_ALPHAS})
    mirrored: list[int] = field(default_factory=lambda: [0, 0])  # mirrored, decided
    mpjpe_mm: dict[str, list[float]] = field(default_factory=dict)  # per data set
    pa_mpjpe_mm: dict[str, list[float]] = field(default_factory=dict)
    depth_ratio: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def share(a: float, b: float) -> float | None:
            return None if b == 0 else a / b

        ratios = np.asarray(self.depth_ratio)
        all_mpjpe = [v for vs in self.mpjpe_mm.values() for v in vs]
        all_pa = [v for vs in self.pa_mpjpe_mm.values() for v in vs]
        return {
            "counted_people": self.counted,
            "found": self.found,
            "recall": share(self.found, self.counted),
            "precision": share(self.found, self.predictions),
            **{f"pck@{a}": share(*self.pck[a]) for a in PCK_ALPHAS},
            "pck_points": self.pck[PCK_ALPHAS[0]][1],
            "mirrored": share(*self.mirrored),
            "mirrored_people": self.mirrored[1],
            "mpjpe_mm": float(np.mean(all_mpjpe)) if all_mpjpe else None,
            "pa_mpjpe_mm": float(np.mean(all_pa)) if all_pa else None,
            "pa_mpjpe_mm_by_dataset": {d: float(np.mean(v)) for d, v in sorted(self.pa_mpjpe_mm.items())},
            "people_3d": len(all_pa),
            "depth_error_median": float(np.median(np.abs(ratios - 1))) if ratios.size else None,
            "depth_ratio_range": [float(ratios.min()), float(ratios.max())] if ratios.size else None,
        }


def score_source(
    images: Iterable[LabelledImage], predictions: Mapping[str, Sequence[PredictedPerson]]
) -> SourceScore:
    """Score one source's ``predictions`` (image file -> people) on ``images`` (all of them: an image
    missing from ``predictions`` is one where the source found nobody)."""
    s = SourceScore()
    for img in images:
        preds = list(predictions.get(img.file, ()))
        m = match_people(img.people, preds)
        s.counted += m.counted
        s.found += len(m.pairs)
        s.predictions += len(m.pairs) + (len(m.unpaired) if img.all_people_labelled else 0)
        for li, pi in m.pairs:
            label, pred = img.people[li], preds[pi]
            for a in PCK_ALPHAS:
                hit, n = pck_counts(pred.keypoints, label, a)
                s.pck[a][0] += hit
                s.pck[a][1] += n
            mir = is_mirrored(pred.keypoints, label)
            if mir is not None:
                s.mirrored[0] += int(mir)
                s.mirrored[1] += 1
            if label.joints3d is not None and pred.joints3d is not None:
                _score_3d(s, img, label, pred)
    return s


def _score_3d(s: SourceScore, img: LabelledImage, label: LabelledPerson, pred: PredictedPerson) -> None:
    ok = label.joints3d_valid if label.joints3d_valid is not None else np.ones(len(JOINTS14), bool)
    if not (ok[list(_HIPS14)].all() and ok.sum() >= 4 and np.isfinite(pred.joints3d).all()):
        return
    t = torch.as_tensor(label.joints3d[ok])[None]
    p = torch.as_tensor(pred.joints3d[ok])[None]
    hips = tuple(int(np.flatnonzero(ok).tolist().index(h)) for h in _HIPS14)
    s.mpjpe_mm.setdefault(img.dataset, []).append(1000 * float(metrics.mpjpe(p, t, root=hips)[0]))
    s.pa_mpjpe_mm.setdefault(img.dataset, []).append(1000 * float(metrics.pa_mpjpe(p, t)[0]))
    if pred.depth_is_metric and img.K is not None:
        z_true = label.joints3d[list(_HIPS14), 2].mean()
        z_pred = pred.joints3d[list(_HIPS14), 2].mean()
        s.depth_ratio.append(float(z_pred / z_true))


# --- the report ------------------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _mm(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


def _depth(s: Mapping[str, Any]) -> str:
    if s["depth_error_median"] is None:
        return "–"
    lo, hi = s["depth_ratio_range"]
    return f"{_pct(s['depth_error_median'])} ({lo:.2f}-{hi:.2f})"


def format_table(summaries: Mapping[str, Mapping[str, Any]], *, true_boxes: Iterable[str] = ()) -> str:
    """A markdown table, one column per source; sources in ``true_boxes`` were given the labelled boxes,
    so recall/precision say nothing about them."""
    boxed = set(true_boxes)
    names = list(summaries)
    rows = [
        ("people found (recall at IoU 0.5) / precision",
         lambda n, s: "–" if n in boxed else f"{_pct(s['recall'])} / {_pct(s['precision'])}"),
        ("PCK@0.1 / PCK@0.2 (12 limb points, people found)",
         lambda n, s: f"{_pct(s['pck@0.1'])} / {_pct(s['pck@0.2'])}"),
        ("left/right mirrored, people found", lambda n, s: _pct(s["mirrored"])),
        ("MPJPE / PA-MPJPE, mm (3D-labelled people found)",
         lambda n, s: f"{_mm(s['mpjpe_mm'])} / {_mm(s['pa_mpjpe_mm'])}"),
        ("PA-MPJPE by data set, mm",
         lambda n, s: ", ".join(f"{d} {v:.0f}" for d, v in s["pa_mpjpe_mm_by_dataset"].items()) or "–"),
        ("depth with K: median error (range of predicted/true)", lambda n, s: _depth(s)),
        ("people counted / found / 3D-scored",
         lambda n, s: f"{s['counted_people']} / {s['found']} / {s['people_3d']}"),
    ]  # fmt: skip
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for title, cell in rows:
        lines.append(f"| {title} | " + " | ".join(cell(n, summaries[n]) for n in names) + " |")
    return "\n".join(lines)
