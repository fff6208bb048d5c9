"""Properties of the geometry and rotation helpers: round trips, orthonormality, hand-computed cases,
gradients, dtype preservation and bad-input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from whmr_core import geometry as G
from whmr_core import rotations as R

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
vec3 = st.tuples(finite, finite, finite)
quat = st.tuples(finite, finite, finite, finite).filter(lambda q: sum(x * x for x in q) > 1e-2)


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def assert_rotation(m: torch.Tensor, tol: float = 1e-9) -> None:
    eye = torch.eye(3, dtype=m.dtype).expand_as(m)
    np.testing.assert_allclose((m.transpose(-1, -2) @ m).numpy(), eye.numpy(), atol=tol)
    np.testing.assert_allclose(torch.linalg.det(m).numpy(), np.ones(m.shape[:-2]), atol=tol)


# --- rotations ---------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(vec3, min_size=1, max_size=4))
def test_axis_angle_round_trip(vs):
    aa = t64(vs)
    # Keep angles in [0, pi) so the rotation vector is unique.
    ang = torch.linalg.vector_norm(aa, dim=-1, keepdim=True)
    aa = torch.where(ang > 3.1, aa / ang * 3.1, aa)
    m = R.axis_angle_to_matrix(aa)
    assert_rotation(m)
    np.testing.assert_allclose(R.matrix_to_axis_angle(m).numpy(), aa.numpy(), atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(st.lists(quat, min_size=1, max_size=4))
def test_quaternion_round_trip(qs):
    q = t64(qs)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    m = R.quaternion_to_matrix(q)
    assert_rotation(m)
    back = R.matrix_to_quaternion(m)
    # q and -q are the same rotation; with w >= 0 they agree unless w ~ 0.
    err = torch.minimum((back - q).abs().amax(-1), (back + q).abs().amax(-1))
    assert float(err.max()) < 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*([finite] * 6)), min_size=1, max_size=4))
def test_rot6d_gives_rotation_and_round_trips(xs):
    x = t64(xs)
    a1, a2 = x.reshape(-1, 3, 2).unbind(-1)
    # Skip degenerate inputs (parallel or zero columns): Gram-Schmidt is undefined there.
    if float(torch.linalg.cross(a1, a2).norm(dim=-1).min()) < 1e-3:
        return
    m = R.rot6d_to_matrix(x)
    assert_rotation(m)
    np.testing.assert_allclose(R.rot6d_to_matrix(R.matrix_to_rot6d(m)).numpy(), m.numpy(), atol=1e-10)


def test_rot6d_layout_is_first_two_columns():
    m = R.axis_angle_to_matrix(t64([[0.3, -0.2, 0.9]]))
    six = R.matrix_to_rot6d(m)
    np.testing.assert_allclose(six.reshape(3, 2).numpy(), m[0, :, :2].numpy())


def test_orthonormalise_fixes_a_perturbed_rotation():
    m = R.axis_angle_to_matrix(t64([[0.5, 0.1, -0.7]]))
    noisy = m + 1e-3 * torch.randn(1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fixed = R.orthonormalise(noisy)
    assert_rotation(fixed)
    assert float((fixed - m).abs().max()) < 5e-3


def test_axis_angle_known_case_and_zero():
    m = R.axis_angle_to_matrix(t64([[0.0, 0.0, math.pi / 2], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(m[0].numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(m[1].numpy(), np.eye(3), atol=0)


def test_rotation_gradients_are_finite_at_identity():
    aa = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    R.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    q = t64([[1.0, 0.0, 0.0, 0.0]]).requires_grad_()
    R.matrix_to_axis_angle(R.quaternion_to_matrix(q)).sum().backward()
    assert torch.isfinite(q.grad).all()


def test_cross_matches_torch():
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    np.testing.assert_allclose(R.cross(a, b).numpy(), torch.linalg.cross(a, b).numpy(), atol=1e-14)


# --- camera rotation from gravity ----------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(vec3.filter(lambda v: sum(x * x for x in v) > 1e-3))
def test_camera_rotation_properties(g):
    g = t64([g])
    rc = G.camera_rotation_from_gravity(g)
    assert_rotation(rc)
    gu = g / g.norm()
    np.testing.assert_allclose(rc[0, :, 1].numpy(), gu[0].numpy(), atol=1e-12)  # y_G is gravity
    # Gravity expressed in G is straight down +y_G.
    np.testing.assert_allclose((rc[0].T @ gu[0]).numpy(), [0, 1, 0], atol=1e-12)
    # z_G is the camera's forward axis projected onto the horizontal plane (no yaw): x_G has no z_C part.
    if abs(float(gu[0, 2])) < 0.9999:
        assert abs(float(rc[0, 2, 0])) < 1e-12
        assert float(rc[0, 2, 2]) > 0


def test_level_camera_gives_identity():
    np.testing.assert_allclose(G.camera_rotation_from_gravity(t64([[0.0, 9.81, 0.0]]))[0].numpy(), np.eye(3))


def test_pitched_and_rolled_cameras_by_hand():
    th = math.radians(30)  # camera pitched down by 30 deg: gravity leans towards +z_C
    rc = G.camera_rotation_from_gravity(t64([[0.0, math.cos(th), math.sin(th)]]))[0]
    want = [[1, 0, 0], [0, math.cos(th), -math.sin(th)], [0, math.sin(th), math.cos(th)]]
    np.testing.assert_allclose(rc.numpy(), want, atol=1e-12)
    ph = math.radians(10)  # camera rolled: gravity leans towards -x_C (image rotated clockwise)
    rc = G.camera_rotation_from_gravity(t64([[-math.sin(ph), math.cos(ph), 0.0]]))[0]
    want = [[math.cos(ph), -math.sin(ph), 0], [math.sin(ph), math.cos(ph), 0], [0, 0, 1]]
    np.testing.assert_allclose(rc.numpy(), want, atol=1e-12)


def test_camera_looking_straight_down_is_the_limit():
    down = G.camera_rotation_from_gravity(t64([[0.0, 0.0, 1.0]]))[0]
    near = G.camera_rotation_from_gravity(t64([[0.0, 1e-7, 1.0]]))[0]
    assert_rotation(down[None])
    np.testing.assert_allclose(down.numpy(), near.numpy(), atol=1e-6)


# --- camera model consistency ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.floats(0.3, 1.5),
    st.floats(-0.3, 0.3),
    st.floats(-0.3, 0.3),
    st.floats(0.5, 9.5),
    st.floats(50, 1800),
    st.floats(50, 1000),
    st.floats(30, 800),
)
def test_root_projects_where_the_weak_perspective_camera_puts_it(s, tx, ty, tz, cx, cy, b):
    """Eq. 2 + 3 + 4: the body origin lands in the full image exactly where the crop camera draws it."""
    wh = t64([[1920.0, 1080.0]])
    cam = t64([[s, tx, ty]])
    centre, size, tz_ = t64([[cx, cy]]), t64([b]), t64([tz])
    f = G.focal_from_depth(cam[:, 0], size, tz_)
    t = G.full_image_translation(cam, centre, size, wh, tz_)
    p = G.perspective_project(torch.zeros(1, 1, 3, dtype=torch.float64), t, f, G.image_centre(wh))
    crop = G.weak_perspective_project(torch.zeros(1, 1, 3, dtype=torch.float64), cam)
    np.testing.assert_allclose(p[0, 0].numpy(), (centre + crop[:, 0] * size / 2)[0].numpy(), rtol=1e-10)


def test_principal_point_and_focal_pair():
    pts = t64([[[0.1, -0.2, 0.0]]])
    t = t64([[0.0, 0.0, 2.0]])
    p = G.perspective_project(pts, t, t64([[500.0, 400.0]]), t64([[320.0, 240.0]]))
    np.testing.assert_allclose(p[0, 0].numpy(), [320 + 500 * 0.05, 240 - 400 * 0.1])
    t2 = G.full_image_translation(
        t64([[1.0, 0.0, 0.0]]),
        t64([[330.0, 240.0]]),
        t64([100.0]),
        t64([[640.0, 480.0]]),
        t64([2.0]),
        principal_point=t64([[310.0, 240.0]]),
    )
    np.testing.assert_allclose(t2[0].numpy(), [0.4, 0.0, 2.0])


def test_gradients_flow_through_the_full2_path():
    cam = t64([[0.8, 0.05, -0.1]]).requires_grad_()
    tz = t64([4.0]).requires_grad_()
    pts = torch.randn(1, 5, 3, dtype=torch.float64, requires_grad=True)
    size, centre, wh = t64([200.0]), t64([[700.0, 500.0]]), t64([[1280.0, 720.0]])
    f = G.focal_from_depth(cam[:, 0], size, tz)
    t = G.full_image_translation(cam, centre, size, wh, tz)
    p = G.normalise_full_image(G.perspective_project(pts, t, f, G.image_centre(wh)), wh)
    p.square().sum().backward()
    for x in (cam, tz, pts):
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(
        lambda c, z: G.full_image_translation(c, centre, size, wh, z),
        (cam.detach().requires_grad_(), tz.detach().requires_grad_()),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_are_preserved(dtype):
    wh = torch.tensor([[640.0, 480.0]], dtype=dtype)
    assert (
        G.glob_info(torch.tensor([[300.0, 200.0]], dtype=dtype), torch.tensor([100.0], dtype=dtype), wh).dtype
        == dtype
    )
    assert G.pseudo_focal(wh).dtype == dtype
    assert G.camera_rotation_from_gravity(torch.tensor([[0.1, 1.0, 0.2]], dtype=dtype)).dtype == dtype
    assert R.axis_angle_to_matrix(torch.zeros(2, 3, dtype=dtype)).dtype == dtype


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: G.glob_info(t64([[1.0, 2.0, 3.0]]), t64([1.0]), t64([[640.0, 480.0]])), "bbox_center"),
        (lambda: G.glob_info(t64([[1.0, 2.0]]), t64([0.0]), t64([[640.0, 480.0]])), "bbox_size"),
        (lambda: G.focal_from_depth(t64([1.0]), t64([-5.0]), t64([3.0])), "bbox_size"),
        (lambda: G.camera_rotation_from_gravity(t64([[0.0, 0.0, 0.0]])), "gravity_cam"),
        (lambda: G.camera_rotation_from_gravity(t64([[float("nan"), 1.0, 0.0]])), "gravity_cam"),
        (
            lambda: G.perspective_project(
                t64([[[0.0, 0.0, float("inf")]]]), t64([[0.0, 0.0, 1.0]]), t64([1.0]), t64([[0.0, 0.0]])
            ),
            "points",
        ),
        (
            lambda: G.perspective_project(
                t64([[[0.0, 0.0, 1.0]]]), t64([[0.0, 0.0, 1.0]]), t64([0.0]), t64([[0.0, 0.0]])
            ),
            "focal",
        ),
        (lambda: G.weak_perspective_project(t64([[[0.0, 0.0, 1.0]]]), t64([[1.0, 0.0]])), "cam_crop"),
        (lambda: G.pseudo_focal(torch.tensor([[640, 480]])), "image_wh"),
        (
            lambda: G.full_image_translation(
                t64([[0.0, 0.0, 0.0]]), t64([[1.0, 1.0]]), t64([10.0]), t64([[64.0, 48.0]]), t64([2.0])
            ),
            "cam_crop",
        ),
        (lambda: G.normalise_full_image(t64([[[1.0, 2.0]], [[1.0, 2.0]]]), t64([[64.0, 48.0]])), "batch"),
        (lambda: R.rot6d_to_matrix(t64([[1.0, 0.0, 0.0]])), "rot6d"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
