"""The real-image scorer against hand-computed cases, and the benchmark's labels file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from whmr_core import evaluation_real as R
from whmr_core.body.keypoints import COCO17_FLIP_PERM, COCO17_NAMES, COCO17_SMPL_JOINT
from whmr_core.body.skeleton import SMPL_JOINT_NAMES

LABELS = Path(__file__).parent / "data" / "real_images" / "labels.json"
LABELS_SHA256 = "e6164167310de68dddc46d6f2c5d818204a78892ef78bf14ea8c3f40dd5c160a"

# A person facing the camera in the box [100, 100, 200, 300] (size max(w, h) = 200 px): their left side is
# on the image's right. Left/right partners lie 44 (shoulders), 60, 70, 18 (hips), 24 and 28 px apart.
LIMBS = {
    "left_shoulder": (172, 140), "right_shoulder": (128, 140), "left_elbow": (180, 180),
    "right_elbow": (120, 180), "left_wrist": (185, 220), "right_wrist": (115, 220), "left_hip": (159, 210),
    "right_hip": (141, 210), "left_knee": (162, 250), "right_knee": (138, 250), "left_ankle": (164, 290),
    "right_ankle": (136, 290),
}  # fmt: skip
BOX = np.array([100.0, 100.0, 200.0, 300.0])


def keypoints(points: dict[str, tuple[float, float]], v: float = 2.0) -> np.ndarray:
    kp = np.zeros((17, 3))
    for name, xy in points.items():
        kp[COCO17_NAMES.index(name)] = (*xy, v)
    return kp


def person(box=BOX, points=LIMBS, joints3d=None) -> R.LabelledPerson:
    valid = None if joints3d is None else np.ones(len(R.JOINTS14), bool)
    return R.LabelledPerson(np.asarray(box, float), keypoints(points), joints3d, valid)


def image(people, *, complete=True, K=None, dataset="toy") -> R.LabelledImage:
    return R.LabelledImage("a.jpg", dataset, "heldout", 640, 480, K, complete, tuple(people))


def test_perfect_prediction_scores_full_marks():
    j3 = np.random.default_rng(0).normal(size=(14, 3)) * 0.3 + [0, 0, 4]
    label = person(joints3d=j3)
    pred = R.PredictedPerson(BOX.copy(), label.keypoints.copy(), j3.copy(), depth_is_metric=True)
    s = R.score_source([image([label], K=np.eye(3))], {"a.jpg": [pred]}).summary()
    assert (s["recall"], s["precision"], s["pck@0.1"], s["pck@0.2"], s["mirrored"]) == (1, 1, 1, 1, 0)
    assert s["mpjpe_mm"] == pytest.approx(0, abs=1e-9)
    assert s["pa_mpjpe_mm"] == pytest.approx(0, abs=1e-6)
    assert s["depth_ratio_range"] == pytest.approx([1, 1]) and s["depth_error_median"] == pytest.approx(0)


def test_mirrored_prediction_is_counted_mirrored_and_scored_by_hand():
    label = person()
    flipped = label.keypoints[list(COCO17_FLIP_PERM)]  # every left point where the right one is
    pred = R.PredictedPerson(BOX.copy(), flipped)
    assert R.is_mirrored(pred.keypoints, label) is True
    assert R.is_mirrored(label.keypoints, label) is False
    # 0.1 x 200 = 20 px: only the hips (18 px apart) are within; 40 px: hips, knees (24), ankles (28).
    assert R.pck_counts(pred.keypoints, label, 0.1) == (2, 12)
    assert R.pck_counts(pred.keypoints, label, 0.2) == (6, 12)
    s = R.score_source([image([label])], {"a.jpg": [pred]}).summary()
    assert s["mirrored"] == 1 and s["pck@0.2"] == pytest.approx(0.5)


def test_pck_threshold_and_missing_points_by_hand():
    label = person()
    pred = label.keypoints.copy()
    pred[5, 0] += 15  # left shoulder 15 px off: within 0.1 (20 px)
    pred[6, 1] += 25  # right shoulder 25 px off: only within 0.2 (40 px)
    pred[7, 2] = 0  # left elbow not given: a miss at any threshold
    assert R.pck_counts(pred, label, 0.1) == (10, 12)
    assert R.pck_counts(pred, label, 0.2) == (11, 12)
    assert R.pck_counts(None, label, 0.2) == (0, 12)
    unlabelled = R.LabelledPerson(BOX, keypoints({"left_knee": (1, 1)}, v=0))
    assert R.pck_counts(pred, unlabelled, 0.2) == (0, 0)


def test_recall_precision_on_hand_made_boxes():
    a = person([0, 0, 10, 10])
    b = person([100, 0, 110, 10])
    few = R.LabelledPerson(np.array([200.0, 0, 210, 10]), keypoints(dict(list(LIMBS.items())[:6])))
    assert (a.counted, b.counted, few.counted) == (True, True, False)  # 6 of 12 limb points: ignored
    preds = [
        R.PredictedPerson(np.array([0.0, 0, 10, 8])),  # IoU 0.8 with a: found
        R.PredictedPerson(np.array([200.0, 0, 210, 10])),  # the ignored person: no hit, no false alarm
        R.PredictedPerson(np.array([300.0, 0, 310, 10])),  # nobody: a false alarm
        R.PredictedPerson(np.array([104.0, 0, 114, 10])),  # IoU 6/14 = 0.43 with b: below 0.5
    ]
    m = R.match_people([a, b, few], preds)
    assert (m.pairs, m.ignored, m.unpaired, m.counted) == ([(0, 0)], [1], [2, 3], 2)
    full = R.score_source([image([a, b, few])], {"a.jpg": preds}).summary()
    assert full["recall"] == pytest.approx(1 / 2) and full["precision"] == pytest.approx(1 / 3)
    partial = R.score_source([image([a, b, few], complete=False)], {"a.jpg": preds}).summary()
    assert partial["precision"] == 1  # people may be unlabelled there: unpaired ones do not count
    nothing = R.score_source([image([a, b, few])], {}).summary()
    assert nothing["recall"] == 0 and nothing["precision"] is None


def test_matching_takes_the_best_overlap_first():
    labels = [person([0, 0, 10, 10]), person([0, 0, 10, 12])]
    preds = [R.PredictedPerson(np.array([0.0, 0, 10, 11.5])), R.PredictedPerson(np.array([0.0, 0, 10, 9]))]
    # IoU: pred0-label1 11.5/12 is the best pair; pred1 then goes to label0 (0.9)
    assert R.match_people(labels, preds).pairs == [(0, 1), (1, 0)]
    iou = R.box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou.shape == (1, 2) and iou[0] == pytest.approx([1 / 3, 0])


def test_3d_scores_by_hand_scaled_about_the_camera():
    rng = np.random.default_rng(1)
    j3 = rng.normal(size=(14, 3)) * 0.3 + [0.2, 0.1, 5.0]
    label = person(joints3d=j3)
    pred = R.PredictedPerson(BOX.copy(), label.keypoints.copy(), 0.8 * j3, depth_is_metric=True)
    s = R.score_source([image([label], K=np.eye(3))], {"a.jpg": [pred]}).summary()
    names = [j[0] for j in R.JOINTS14]
    hips = [names.index("left_hip"), names.index("right_hip")]  # MPJPE is aligned at their midpoint
    centred = j3 - j3[hips].mean(0)
    assert s["mpjpe_mm"] == pytest.approx(1000 * np.linalg.norm(0.2 * centred, axis=1).mean())
    assert s["pa_mpjpe_mm"] == pytest.approx(0, abs=1e-6)  # a similarity transform: nothing left
    assert s["depth_ratio_range"] == pytest.approx([0.8, 0.8]) and s["depth_error_median"] == pytest.approx(
        0.2
    )
    relative = R.PredictedPerson(BOX.copy(), label.keypoints.copy(), 0.8 * j3, depth_is_metric=False)
    s = R.score_source([image([label], K=np.eye(3))], {"a.jpg": [relative]}).summary()
    assert s["depth_ratio_range"] is None and s["pa_mpjpe_mm"] == pytest.approx(0, abs=1e-6)


def test_joint_maps():
    assert [j[0] for j in R.JOINTS14][:12] == list(COCO17_NAMES[5:])
    h36m = ["root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot", "spine",
            "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
            "right_elbow", "right_wrist"]  # fmt: skip
    xyz = np.arange(17 * 3, dtype=float).reshape(17, 3)
    valid = [True] * 17
    valid[h36m.index("thorax")] = False
    out, ok = R.joints14_from_label({"skeleton": "h36m17", "names": h36m, "xyz_m": xyz, "valid": valid})
    names = [j[0] for j in R.JOINTS14]
    assert out[names.index("right_ankle")] == pytest.approx(xyz[h36m.index("right_foot")])
    assert out[names.index("pelvis")] == pytest.approx(xyz[0])
    assert not ok[names.index("neck")] and ok.sum() == 13
    smpl = np.arange(24 * 3, dtype=float).reshape(24, 3)
    j14 = R.joints14_from_smpl(smpl)
    assert j14[names.index("left_wrist")] == pytest.approx(smpl[SMPL_JOINT_NAMES.index("left_wrist")])
    with pytest.raises(ValueError, match="unknown skeleton"):
        R.joints14_from_label({"skeleton": "lsp", "names": h36m, "xyz_m": xyz, "valid": valid})


def test_joints14_from_coco17_by_hand():
    # COCO-17 points numbered so each is recognisable: point k at (k, 10 k, 100 k) cm.
    coco = np.array([[k, 10 * k, 100 * k] for k in range(17)], dtype=float) / 100
    j14 = R.joints14_from_coco17(coco)
    names = [j[0] for j in R.JOINTS14]
    for k in range(5, 17):  # the limb points are taken as they are
        assert j14[names.index(COCO17_NAMES[k])] == pytest.approx(coco[k])
    assert j14[names.index("neck")] == pytest.approx([0.055, 0.55, 5.5])  # shoulders 5 and 6
    assert j14[names.index("pelvis")] == pytest.approx([0.115, 1.15, 11.5])  # hips 11 and 12
    with pytest.raises(ValueError, match="COCO-17"):
        R.joints14_from_coco17(coco[:12])
    # Scored as any source: a label equal to the mapped points, turned and shifted, gives PA-MPJPE 0, and
    # one knee 10 cm off gives MPJPE 10 / 14 cm (the hips, hence the alignment, unchanged).
    j3 = np.random.default_rng(2).normal(size=(17, 3)) * 0.3 + [0, 0, 4]
    label = person(joints3d=R.joints14_from_coco17(j3))
    moved = j3.copy()
    moved[COCO17_NAMES.index("left_knee")] += [0, 0, 0.1]
    pred = R.PredictedPerson(BOX.copy(), label.keypoints.copy(), R.joints14_from_coco17(moved))
    s = R.score_source([image([label])], {"a.jpg": [pred]}).summary()
    assert s["mpjpe_mm"] == pytest.approx(100 / 14)


def test_persons_from_record_body_and_keypoint_model():
    j2 = np.arange(48, dtype=float).reshape(24, 2)
    kp = np.full((17, 3), 7.0)
    rec = {"persons": [
        {"box_xyxy": [0, 0, 5, 5], "score": 0.9, "joints_2d": j2.tolist(),
         "joints_camera": np.ones((24, 3)).tolist(), "translation_is_metric": True,
         "keypoints_2d": kp.tolist()},
        {"box_xyxy": [1, 1, 5, 5], "score": 0.8, "joints_2d": j2.tolist(),
         "joints_camera": np.ones((24, 3)).tolist(), "translation_is_metric": False},
    ]}  # fmt: skip
    body = R.persons_from_record(rec)
    assert len(body) == 2 and body[0].depth_is_metric and not body[1].depth_is_metric
    for k, j in COCO17_SMPL_JOINT.items():
        assert body[0].keypoints[k] == pytest.approx([*j2[j], 1.0])
    assert (body[0].keypoints[:5] == 0).all()  # face points not given by the body's joints
    model = R.persons_from_record(rec, keypoints="model")
    assert len(model) == 1 and model[0].keypoints == pytest.approx(kp) and model[0].joints3d is None


# --- the shipped labels ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> list[R.LabelledImage]:
    return R.load_labels(LABELS)  # checks every image's sha256


def test_labels_file_is_the_built_one(shipped):
    assert hashlib.sha256(LABELS.read_bytes()).hexdigest() == LABELS_SHA256
    assert len(shipped) == 36 and sum(im.split == "heldout" for im in shipped) == 24
    assert sum(len(im.people) for im in shipped) == 75
    assert sum(p.joints3d is not None for im in shipped for p in im.people) == 8
    for im in shipped:
        for p in im.people:
            assert 0 <= p.box[0] < p.box[2] <= im.width and 0 <= p.box[1] < p.box[3] <= im.height
            if p.joints3d is not None:
                assert im.K is not None


def test_3d_labels_project_onto_the_2d_labels_with_k(shipped):
    for im in shipped:
        for p in im.people:
            if p.joints3d is None:
                continue
            uv = p.joints3d[:12] @ im.K.T
            uv = uv[:, :2] / uv[:, 2:]
            labelled = p.keypoints[5:, 2] > 0
            assert np.abs(uv - p.keypoints[5:, :2])[labelled].max() < 2.5, im.file


def test_altered_image_or_schema_is_refused(tmp_path: Path):
    data = json.loads(LABELS.read_text(encoding="utf-8"))
    rec = data["images"][0]
    (tmp_path / "images").mkdir()
    original = (LABELS.parent / rec["file"]).read_bytes()
    (tmp_path / rec["file"]).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    data["images"] = [rec]
    (tmp_path / "labels.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="does not match its sha256"):
        R.load_labels(tmp_path / "labels.json")
    assert len(R.load_labels(tmp_path / "labels.json", check_images=False)) == 1
    data["schema"] = "other/1"
    (tmp_path / "labels.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="schema"):
        R.load_labels(tmp_path / "labels.json", check_images=False)


def test_average_pose_reference_fills_the_true_box():
    import importlib.util

    path = Path(__file__).parents[1] / "scripts" / "bench_real_images.py"
    spec = importlib.util.spec_from_file_location("bench_real_images", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    joints = np.zeros((24, 3))
    joints[SMPL_JOINT_NAMES.index("left_wrist")] = (0.5, 0.0, 0.0)
    verts = np.array([[-0.5, -1.0, -0.1], [0.5, 1.0, 0.1]])  # a 1 m x 2 m body, centred on the pelvis
    K = np.array([[1000.0, 0, 0], [0, 1000.0, 0], [0, 0, 1]])
    (p,) = bench.mean_pose_people(image([person()], K=K), joints, verts)
    # the box [100, 100, 200, 300]: 100 px per metre both ways; the pelvis at its centre (150, 200)
    assert p.keypoints[COCO17_NAMES.index("left_wrist")] == pytest.approx([200, 200, 1])
    assert p.keypoints[COCO17_NAMES.index("left_hip")] == pytest.approx([150, 200, 1])
    # 2 m tall over 200 px with f = 1000 px: 10 m away; the box centre back-projected at that depth
    names = [j[0] for j in R.JOINTS14]
    assert p.joints3d[names.index("pelvis")] == pytest.approx([1.5, 2.0, 10.0])
    assert p.depth_is_metric
