"""The runtime's seams: the typed engine outputs, the pure per-person decoding, one crop convention for
training and inference, and the package layering (core knows no ROS; export never imports runtime)."""

from __future__ import annotations

import ast
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from whmr_fakes import TEMPLATE_JOINTS, TOPOLOGY, FakeEngine, SeenBody, rot_y

from whmr_core import geometry
from whmr_core.crops import crop_to_image, square_boxes
from whmr_core.graph_io import OUTPUT_NAMES, EngineError, EngineOutputs, PersonOutputs
from whmr_core.rotations import matrix_to_quaternion_xyzw
from whmr_core.runtime.decode import PersonBox, UnusablePerson, check_outputs, decode_person

ROOT = Path(__file__).resolve().parents[1]
W, H = 640, 480
K = np.array([[500.0, 0.0, 300.0], [0.0, 500.0, 260.0], [0.0, 0.0, 1.0]])


def _engine_call(body: SeenBody, n: int = 1):
    """A FakeEngine's outputs for ``body`` seen through a box around it, and that box."""
    engine = FakeEngine((W, H), focal=500.0, principal_point=(300.0, 260.0))
    engine.bodies = [body]
    box = np.array(engine.box_of(body))
    centres, sides = square_boxes(box[None], engine.crop_hw, 1.2)
    wh = torch.tensor([[W, H]], dtype=torch.float64)
    info = geometry.glob_info(torch.as_tensor(centres), torch.as_tensor(sides), wh).numpy()
    crops = np.zeros((n, 3, *engine.crop_hw), np.float32)
    out = engine.infer(crops, np.repeat(info, n, 0).astype(np.float32), np.repeat(np.eye(3)[None], n, 0))
    return out, PersonBox(box, 0.9, "detection", centres[0], float(sides[0]))


def test_engine_outputs_are_checked_once_when_an_engine_fills_them():
    out, _ = _engine_call(SeenBody(np.array([0.3, 0.2, 4.0])), n=3)
    assert len(out) == 3 and out.num_vertices == TOPOLOGY.num_vertices and out.num_joints == 3
    assert (
        [f.name for f in fields(EngineOutputs)]
        == [f.name for f in fields(PersonOutputs)]
        == list(OUTPUT_NAMES)
    )
    good = out.as_dict()
    with pytest.raises(EngineError, match=r"outputs \['focal'\] missing"):
        EngineOutputs.from_named({k: v for k, v in good.items() if k != "focal"})
    with pytest.raises(EngineError, match=r"world_vertices has V = 7, other outputs V = 8"):
        EngineOutputs.from_named({**good, "world_vertices": good["world_vertices"][:, :7]})
    with pytest.raises(EngineError, match=r"cam_crop has shape \(3, 4\)"):
        EngineOutputs.from_named({**good, "cam_crop": np.zeros((3, 4), np.float32)})
    with pytest.raises(EngineError, match="dtype int64"):
        EngineOutputs.from_named({**good, "tz": np.zeros(3, np.int64)})
    both = EngineOutputs.concatenate([out, out])
    assert len(both) == 6 and np.array_equal(both.vertices[3:], out.vertices)


def test_decode_person_places_the_body_metrically_with_K():
    body = SeenBody(np.array([0.3, 0.2, 4.0]), rot_y(0.4))
    out, box = _engine_call(body)
    p = decode_person(out.person(0), box, K, np.eye(3), (W, H), track_id=5)
    np.testing.assert_allclose(p.translation_camera, body.position, atol=1e-4)
    assert p.translation_is_metric and p.track_id == 5 and p.score == 0.9
    head = body.position + TEMPLATE_JOINTS[1] @ body.root.T
    u, v = 500.0 * head[:2] / head[2] + (300.0, 260.0)  # eq. 2 by hand
    np.testing.assert_allclose(p.joints_2d[1], (u, v), atol=1e-2)
    np.testing.assert_allclose(p.root_orientation_camera, body.root, atol=1e-6)


def test_decode_person_without_K_uses_the_networks_focal_in_pixels():
    out, box = _engine_call(SeenBody(np.array([0.3, 0.2, 4.0])))
    o = out.person(0)
    p = decode_person(o, box, None, np.eye(3), (W, H))
    assert not p.translation_is_metric
    assert p.focal_px == pytest.approx(float(o.focal) * math.hypot(W, H), rel=1e-6)
    np.testing.assert_allclose(p.principal_point, (W / 2, H / 2))


def test_unusable_outputs_raise_with_the_reason():
    out, box = _engine_call(SeenBody(np.array([0.3, 0.2, 4.0])))
    o = out.person(0)
    with pytest.raises(UnusablePerson, match=r"vertices: shape \(8, 3\), expected \(9, 3\)"):
        check_outputs(o, type(TOPOLOGY)(TOPOLOGY.faces, TOPOLOGY.parents, 9, TOPOLOGY.joint_names))
    behind = type(o)(**{**{f.name: getattr(o, f.name) for f in fields(o)}, "cam_crop": -o.cam_crop})
    with pytest.raises(UnusablePerson, match="not physical: depth"):
        decode_person(behind, box, K, np.eye(3), (W, H))


def test_xyzw_quaternions_are_ros_order():
    half = math.sqrt(0.5)
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(matrix_to_quaternion_xyzw(rz90), [0.0, 0.0, half, half], atol=1e-12)
    np.testing.assert_allclose(matrix_to_quaternion_xyzw(np.eye(3)[None]), [[0, 0, 0, 1]], atol=1e-12)


def test_numpy_xyzw_conversions_match_the_torch_rotations():
    """The hosts' numpy conversions (per frame, per IMU reading) agree with the network's torch ones,
    including the four Shepperd branches (half-turns about each axis) and a batch."""
    import torch

    from whmr_core.gravity import _xyzw_to_matrix
    from whmr_core.rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_to_matrix

    rng = np.random.default_rng(3)
    rotvecs = np.concatenate([rng.normal(size=(64, 3)), math.pi * np.eye(3), np.zeros((1, 3))])
    mats = axis_angle_to_matrix(torch.as_tensor(rotvecs)).numpy()
    want = np.roll(matrix_to_quaternion(torch.as_tensor(mats)).numpy(), -1, axis=-1)
    np.testing.assert_allclose(matrix_to_quaternion_xyzw(mats), want, atol=1e-12)
    for m, q in zip(mats, want, strict=True):  # one matrix at a time: the scalar path
        np.testing.assert_allclose(matrix_to_quaternion_xyzw(m), q, atol=1e-12)
    for q in rng.normal(size=(16, 4)):  # any norm: both normalise
        ref = quaternion_to_matrix(torch.as_tensor(np.roll(q, 1))).numpy()
        np.testing.assert_allclose(_xyzw_to_matrix(q), ref, atol=1e-12)
    with pytest.raises(ValueError, match="matrix: expected shape"):
        matrix_to_quaternion_xyzw(np.eye(4))


@pytest.mark.parametrize("crop_hw", [(128, 128), (256, 192)])
def test_training_and_runtime_give_the_network_the_same_crop(crop_hw):
    """Training: the augmentation's square crop (crop_matrix, no augmentation) cut to the network's
    window (network_crops). Inference: extract_crops. Same image and box -> the same network input."""
    import cv2

    from whmr_core.crops import extract_crops, normalise_pixels
    from whmr_core.data.augment import crop_matrix
    from whmr_core.data.batch import network_crops

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    centres, sides = square_boxes(np.array([[100.0, 50.0, 180.0, 230.0]]), crop_hw, 1.2)
    res = max(crop_hw)
    m = crop_matrix(centres[0], float(sides[0]), 0.0, res)
    square = cv2.warpAffine(image, m, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    training = network_crops(crop_hw, torch.from_numpy(normalise_pixels(square))[None]).numpy()
    runtime = extract_crops(image, centres, sides, crop_hw)
    assert training.shape == runtime.shape == (1, 3, *crop_hw)
    np.testing.assert_allclose(training, runtime, atol=1e-5)
    # And the inverse: crop pixels back to image pixels.
    uv = rng.uniform(0, min(crop_hw) - 1, size=(10, 2))
    window = np.array([(res - crop_hw[1]) // 2, (res - crop_hw[0]) // 2])  # network_crops' offset
    back = np.linalg.solve(m[:, :2], (uv + window - m[:, 2]).T).T
    np.testing.assert_allclose(crop_to_image(uv, centres[0], float(sides[0]), crop_hw), back, atol=1e-9)


def _imports(package: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_layering_core_knows_no_ros_and_export_never_imports_runtime():
    core = _imports(ROOT / "whmr_core")
    ros = {
        f: sorted(n for n in names if n.split(".")[0] in ("whmr_ros", "rclpy")) for f, names in core.items()
    }
    assert not {f: n for f, n in ros.items() if n}
    export = {f: names for f, names in core.items() if f.startswith("whmr_core/export/")}
    runtime = {
        f: sorted(n for n in names if n.startswith("whmr_core.runtime")) for f, names in export.items()
    }
    assert export and not {f: n for f, n in runtime.items() if n}
