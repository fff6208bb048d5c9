"""SMPL semantics of the shipped free body model (both resolutions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from whmr_core.body import load_body_model, shipped_model_path

VARIANTS = ("lowres", "full")
L_HIP, R_HIP, L_KNEE, L_ANKLE, L_SHOULDER, R_SHOULDER, L_ELBOW, L_WRIST, R_WRIST = (
    1,
    2,
    4,
    7,
    16,
    17,
    18,
    20,
    21,
)
L_HAND, R_HAND = 22, 23


@pytest.fixture(scope="module", params=VARIANTS)
def model(request):
    return load_body_model(variant=request.param)


def pose_with(joint: int, axis_angle: list[float]) -> torch.Tensor:
    """(1,69) body pose with one joint rotated (body_pose excludes the root)."""
    pose = torch.zeros(1, 69)
    pose[0, 3 * (joint - 1) : 3 * joint] = torch.tensor(axis_angle)
    return pose


def forward(model, **kw):
    with torch.no_grad():
        out = model(**kw)
    return out.vertices[0].numpy(), out.joints[0].numpy()


def test_rest_height_and_t_pose(model):
    v, j = forward(model)
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.85, height
    # Arms along +/-x: shoulder -> wrist is horizontal and lateral.
    for shoulder, wrist, sign in ((L_SHOULDER, L_WRIST, 1.0), (R_SHOULDER, R_WRIST, -1.0)):
        d = j[wrist] - j[shoulder]
        assert sign * d[0] / np.linalg.norm(d) > 0.99
    # Head up, feet down, face forward (+z): the nose is in front of the head joint.
    assert j[15, 1] > j[0, 1] > j[L_ANKLE, 1]
    assert j[24, 2] > j[15, 2] + 0.05  # smplx extra joint 24 is the nose


def test_left_limbs_at_positive_x(model):
    _, j = forward(model)
    for left in (L_HIP, L_KNEE, L_ANKLE, L_SHOULDER, L_ELBOW, L_WRIST, L_HAND):
        assert j[left, 0] > 0.03, left
        assert j[left + 1, 0] < -0.03  # its right twin (SMPL numbers right = left + 1)


def test_left_shoulder_rotation_moves_only_the_left_hand(model):
    v0, _ = forward(model)
    v1, _ = forward(model, body_pose=pose_with(L_SHOULDER, [0.0, 0.0, -math.pi / 3]))  # arm down
    part = model.lbs_weights.argmax(1).numpy()
    moved = np.linalg.norm(v1 - v0, axis=1)
    assert moved[part == L_HAND].min() > 0.2
    assert moved[(part == R_HAND) | (part == R_WRIST)].max() < 1e-6
    assert moved[v0[:, 0] < -0.05].max() < 1e-6  # nothing on the right side of the body moves
    assert v1[part == L_HAND, 1].mean() < v0[part == L_HAND, 1].mean() - 0.2  # and the hand went down


def test_knee_flexion_bends_backwards(model):
    _, j0 = forward(model)
    _, j1 = forward(model, body_pose=pose_with(L_KNEE, [math.pi / 2, 0.0, 0.0]))
    shin0, shin1 = j0[L_ANKLE] - j0[L_KNEE], j1[L_ANKLE] - j1[L_KNEE]
    assert shin1[2] < -0.8 * np.linalg.norm(shin0)  # the ankle swings behind the knee
    assert abs(shin1[1]) < 0.1 * np.linalg.norm(shin0)


def test_first_shape_component_changes_size(model):
    heights = []
    for b0 in (-2.0, 0.0, 2.0):
        betas = torch.zeros(1, 10)
        betas[0, 0] = b0
        v, _ = forward(model, betas=betas)
        heights.append(v[:, 1].max() - v[:, 1].min())
    assert abs(heights[2] - heights[0]) > 0.05, heights  # +/-2 sigma of an adult population
    assert min(heights) > 1.3 and max(heights) < 2.2


def test_joint_regressor_matches_anny_skeleton(model):
    """Held-out anny bodies (shipped in the model file): regressed joints within a few millimetres."""
    with np.load(shipped_model_path(model.source_path.split("_")[-1][:-4]), allow_pickle=False) as data:
        betas, reference = torch.from_numpy(data["reference_betas"]), data["reference_joints"]
    with torch.no_grad():
        zeros = torch.zeros(len(betas), 3)
        joints = model(betas=betas, global_orient=zeros, body_pose=zeros.repeat(1, 23)).joints[:, :24].numpy()
    err = np.linalg.norm(joints - reference, axis=-1)
    assert err.mean() < 0.006, err.mean(0)
    assert err.max() < 0.03, err.max(0)


def test_batch_and_lowres_shape_space_agree():
    """Both resolutions share betas: the same betas give the same skeleton and about the same size."""
    betas = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    outs = {}
    for variant in VARIANTS:
        with torch.no_grad():
            out = load_body_model(variant=variant, batch_size=4)(betas=betas)
        outs[variant] = (out.vertices.numpy(), out.joints[:, :24].numpy())
    assert np.abs(outs["lowres"][1] - outs["full"][1]).max() < 0.01
    h = {k: v[0][..., 1].max(1) - v[0][..., 1].min(1) for k, v in outs.items()}
    assert np.abs(h["lowres"] - h["full"]).max() < 0.02


def test_no_smplh_vertex_ids_on_lowres():
    """smplx's default SMPL-H indices would crash on 1.2k vertices; ours are in range and on the face."""
    model = load_body_model(variant="lowres")
    idx = model.vertex_joint_selector.extra_joints_idxs
    assert idx.max() < model.v_template.shape[0]
    _, j = forward(model)
    nose, reye, leye, rear, lear = j[24:29]
    assert leye[0] > 0 > reye[0] and lear[0] > 0 > rear[0]
    assert nose[2] > leye[2] > lear[2]
