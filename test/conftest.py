"""Shared test fixtures."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from whmr_core.body.skeleton import SMPL_PARENTS, kintree_table

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def photo_boxes() -> dict:
    """data/photos' person boxes (person_boxes.json), per photo file."""
    import json

    return json.loads((DATA / "photos" / "person_boxes.json").read_text())


@pytest.fixture(scope="session")
def tune_crowd():
    """``tune_crowd(n) -> (image, boxes)``: the real-image benchmark's tune AI Challenger photo (3 labelled
    people) repeated n x n, a real crowd of 3 n^2 people, and their labelled boxes (3 n^2, 4) in it."""
    import cv2

    from whmr_core.evaluation_real import load_labels

    labels = DATA / "real_images" / "labels.json"
    (img,) = [
        im for im in load_labels(labels, check_images=False) if im.dataset == "aic" and im.split == "tune"
    ]
    image = cv2.cvtColor(cv2.imread(str(labels.parent / img.file)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]

    def crowd(n: int) -> tuple[np.ndarray, np.ndarray]:
        shifts = [(dx, dy) for dx in range(0, n * w, w) for dy in range(0, n * h, h)]
        boxes = [q.box + np.array([dx, dy, dx, dy]) for dx, dy in shifts for q in img.people]
        return np.tile(image, (n, n, 1)), np.array(boxes)

    return crowd


# --- A tiny stand-in SMPL body (swapped for the shipped low-res model once it lands) ---------------------

# T-pose joints in metres, SMPL rest frame (y up, facing +z, x to the person's left); mirror-symmetric.
_LEFT_JOINTS = {
    1: (0.09, -0.08, 0.0), 4: (0.10, -0.48, 0.0), 7: (0.10, -0.88, -0.02), 10: (0.11, -0.94, 0.10),
    13: (0.07, 0.42, 0.0), 16: (0.18, 0.45, 0.0), 18: (0.44, 0.45, 0.0), 20: (0.69, 0.45, 0.0),
    22: (0.78, 0.45, 0.0),
}  # fmt: skip
_CENTRE_JOINTS = {0: (0.0, 0.0, 0.0), 3: (0.0, 0.11, 0.0), 6: (0.0, 0.24, 0.0), 9: (0.0, 0.30, 0.0),
                  12: (0.0, 0.50, 0.0), 15: (0.0, 0.60, 0.0)}  # fmt: skip
# COCO-17 keypoints as SMPL joints (body) or extra face vertices (index into _FACE).
_COCO_FROM_SMPL = {5: 16, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 1, 12: 2, 13: 4, 14: 5, 15: 7, 16: 8}
_FACE = {"nose": (0.0, 0.62, 0.10), "leye": (0.03, 0.66, 0.09), "reye": (-0.03, 0.66, 0.09),
         "lear": (0.08, 0.63, 0.0), "rear": (-0.08, 0.63, 0.0)}  # fmt: skip


def _toy_joints() -> np.ndarray:
    j = np.zeros((24, 3))
    for i, p in _CENTRE_JOINTS.items():
        j[i] = p
    for i, p in _LEFT_JOINTS.items():
        j[i] = p
        j[i + 1] = (-p[0], p[1], p[2])  # SMPL numbers each right joint one after its left twin
    return j


def build_toy_body_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of a ~500-vertex SMPL-format body: rings around each bone, rigidly skinned, mirror-symmetric."""
    joints = _toy_joints()
    verts: list[np.ndarray] = []
    owner: list[int] = []
    faces: list[tuple[int, int, int]] = []
    # One vertex on each joint: J_regressor picks these, so rest joints are exact.
    for i in range(24):
        verts.append(joints[i])
        owner.append(i)
    for child in range(1, 24):
        parent = SMPL_PARENTS[child]
        a, b = joints[parent], joints[child]
        axis = (b - a) / np.linalg.norm(b - a)
        helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(axis, helper)
        u /= np.linalg.norm(u)
        v = np.cross(axis, u)
        radius = 0.09 if parent in (0, 3, 6, 9) and child in (3, 6, 9, 12) else 0.035
        start = len(verts)
        for t in (0.25, 0.5, 0.75):
            for k in range(6):
                ang = k * np.pi / 3
                verts.append(a + t * (b - a) + radius * (np.cos(ang) * u + np.sin(ang) * v))
                owner.append(parent)
        for ring in range(2):
            for k in range(6):
                p0 = start + ring * 6 + k
                p1 = start + ring * 6 + (k + 1) % 6
                faces.append((p0, p1, p0 + 6))
                faces.append((p1, p1 + 6, p0 + 6))
    face_ids = {}
    for name, p in _FACE.items():
        face_ids[name] = len(verts)
        verts.append(np.asarray(p))
        owner.append(15)
    v_template = np.asarray(verts)
    n = len(v_template)
    weights = np.zeros((n, 24))
    weights[np.arange(n), owner] = 1.0
    j_regressor = np.zeros((24, n))
    j_regressor[np.arange(24), np.arange(24)] = 1.0
    # Mirror-equivariant shape fields (x odd, y and z even in x) so a mirrored body is the same body.
    rng = np.random.default_rng(seed)
    x, y, z = v_template.T
    shapedirs = np.zeros((n, 3, 10))
    shapedirs[:, :, 0] = 0.05 * v_template  # overall size
    for k in range(1, 10):
        c = rng.normal(0.0, 0.02, size=4)
        shapedirs[:, 0, k] = c[0] * x * (1 + np.sin(3 * y + k))
        shapedirs[:, 1, k] = c[1] * y * (y < c[3])
        shapedirs[:, 2, k] = c[2] * z + 0.5 * c[2] * x * x
    coco = np.zeros((17, n))
    for ci, name in enumerate(("nose", "leye", "reye", "lear", "rear")):
        coco[ci, face_ids[name]] = 1.0
    for ci, si in _COCO_FROM_SMPL.items():
        coco[ci, si] = 1.0
    kintree = np.array(kintree_table(), dtype=np.int64)
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((n, 3, 207)),
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": np.asarray(faces, dtype=np.int64),
        "coco_regressor": coco,
        "face_ids": np.array([face_ids[k] for k in ("nose", "reye", "leye", "rear", "lear")]),
    }


@pytest.fixture(scope="session")
def body():
    """Tiny smplx.SMPL stand-in: 24 SMPL joints, SMPL kinematic tree, y-up T-pose, metres."""
    import smplx

    arrays = build_toy_body_arrays()
    keys = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    struct = smplx.utils.Struct(**{k: arrays[k] for k in keys})
    nose, reye, leye, rear, lear = (int(i) for i in arrays["face_ids"])
    vertex_ids = {"nose": nose, "reye": reye, "leye": leye, "rear": rear, "lear": lear}
    model = smplx.SMPL(
        model_path="", data_struct=struct, vertex_ids=vertex_ids, use_hands=False, use_feet_keypoints=False
    )
    model.requires_grad_(False)
    return model.eval()


@pytest.fixture(scope="session")
def body_assets(body):
    """What ``whmr_core.body.body_assets`` gives for the real model: regressors and faces."""
    arrays = build_toy_body_arrays()
    return types.SimpleNamespace(
        coco_regressor=arrays["coco_regressor"],
        joint_regressor=arrays["J_regressor"],
        faces=arrays["f"],
    )


@pytest.fixture(scope="session")
def net_body():
    """Network tests' body: (smplx.SMPL, assets), synthetic SMPL-format (384 vertices, 24 sparse, 24 markers).

    Kept synthetic so network tests do not depend on the shipped model's assets; the network is also
    tested on the shipped low-res model (test_model_network.py::test_shipped_lowres_body). To run all
    network tests on it instead: ``m = whmr_core.body.load_body_model(variant="lowres")`` and return
    ``m, whmr_core.body.body_assets(m)``.
    """
    from whmr_core.model.standin_body import make_standin_body

    return make_standin_body(n_vertices=384, n_markers=24)


@pytest.fixture(scope="session")
def big_model(net_body):
    """``big_model(name)``: the big network configs, each built once per session on ``net_body`` (seed 0,
    stochastic depth off so a backward pass reaches every block). Shared by the shape, gradient and export
    tests; a test that trains it leaves it in eval mode with no gradients."""
    import dataclasses

    import torch

    from whmr_core.model import build_model
    from whmr_core.model.config import get_config

    built: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in built:
            cfg = get_config(name)
            cfg = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, drop_path=0.0))
            torch.manual_seed(0)
            built[name] = build_model(cfg, net_body)
        model = built[name].eval()
        model.zero_grad(set_to_none=True)
        return model

    return get


# --- ROS 2 (the node, colcon build, launch): skipped with the reason where no ROS is sourced -----------


def _ros_missing() -> str:
    import shutil

    try:
        import rclpy  # noqa: F401
    except ImportError as e:
        return f"no ROS 2 sourced (rclpy not importable: {e}); source a ROS 2 setup (../shared/ros2/activate)"
    if shutil.which("colcon") is None:
        return "ROS 2 is sourced but colcon is not on PATH"
    return ""


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """A ROS_DOMAIN_ID of this test run alone (from the pid), for this process and its children."""
    import os

    missing = _ros_missing()
    if missing:
        pytest.skip(missing)
    domain = 1 + os.getpid() % 100
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    return domain


@pytest.fixture(scope="session")
def whmr_ws(tmp_path_factory, ros_domain_id):
    """``colcon build --packages-select whmr_ros`` of this repository in a temporary workspace, once.

    ``WHMR_TEST_WS=DIR`` keeps the workspace in DIR and rebuilds there (colcon is incremental: faster
    reruns while working on the ROS side)."""
    import os

    from ros_helpers import build_workspace

    keep = os.environ.get("WHMR_TEST_WS")
    root = Path(keep) if keep else tmp_path_factory.mktemp("ws")
    return build_workspace(root, Path(__file__).resolve().parents[1])


@pytest.fixture(scope="session")
def whmr_msgs(whmr_ws):
    """The built messages importable in this process (``whmr_ros.msg`` beside the source modules)."""
    from ros_helpers import use_built_messages

    use_built_messages(whmr_ws)
    return whmr_ws
