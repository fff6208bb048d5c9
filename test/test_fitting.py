"""Keypoint-guided fitting (whmr_core.fitting): the fitted body reprojects onto given keypoints, the
fallbacks return the network's body exactly, the priors pull implausible poses back, mirrors are found.

Synthetic cases with known truth: bodies posed from whmr's pose generator, projected with a known K
(keypoints = projection + 2 px noise), the "network" body a perturbed copy of the truth.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from whmr_core.body.keypoints import COCO17_FLIP_PERM
from whmr_core.data.poses import sample_betas, sample_pose
from whmr_core.fitting import (
    BodyFitter,
    FitConfig,
    FittedOutputs,
    KeypointBody,
    PosePrior,
    joint_limit_energy,
    mirror_bodies,
)
from whmr_core.fitting.priors import joint_limits_rad
from whmr_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle

K = np.array([[1000.0, 0.0, 640.0], [0.0, 1000.0, 360.0], [0.0, 0.0, 1.0]])
FACING_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # upright, facing the camera (optical frame)


@pytest.fixture(scope="module")
def model():
    from whmr_core.body import load_body_model

    return load_body_model(variant="lowres")


@pytest.fixture(scope="module")
def fitter(model):
    return BodyFitter(model)


@pytest.fixture(scope="module")
def scene(fitter):
    """Four people (walking, sitting, reaching, waving) 4-5.5 m away, their keypoints, a perturbed start."""
    rng = np.random.default_rng(0)
    n = 4
    pose = np.stack([sample_pose(rng, f) for f in ("walking", "sitting", "reaching", "waving")])
    pose[:, 0] = 0.0
    rot = axis_angle_to_matrix(torch.tensor(pose, dtype=torch.float32))
    yaw = torch.tensor([[0.0, rng.uniform(-0.5, 0.5), 0.0] for _ in range(n)], dtype=torch.float32)
    rot[:, 0] = FACING_CAMERA @ axis_angle_to_matrix(yaw)
    betas = torch.tensor(np.stack([sample_betas(rng) for _ in range(n)]), dtype=torch.float32)
    t = torch.tensor([[-1.0 + 0.6 * i, 0.2, 4.0 + 0.5 * i] for i in range(n)])
    with torch.no_grad():
        points = fitter.body(rot, betas) + t[:, None]
    uv = points[..., :2] / points[..., 2:] * 1000.0 + torch.tensor([640.0, 360.0])
    keypoints = (uv + torch.tensor(rng.normal(0.0, 2.0, uv.shape), dtype=torch.float32)).numpy()
    # The "network": 0.15 rad on every body joint, 0.1 rad on the root, 4 % too deep, 8 cm aside, other
    # betas. (The fit trusts the network's depth: on real photos 2D keypoints moved it the wrong way.)
    pose_net = pose.copy()
    pose_net[:, 1:] += rng.normal(0.0, 0.15, pose_net[:, 1:].shape)
    rot_net = axis_angle_to_matrix(torch.tensor(pose_net, dtype=torch.float32))
    tilt = axis_angle_to_matrix(torch.tensor(rng.normal(0.0, 0.1, (n, 3)), dtype=torch.float32))
    rot_net[:, 0] = tilt @ rot[:, 0]
    t_net = t * torch.tensor([1.0, 1.0, 1.04]) + torch.tensor([0.08, -0.05, 0.0])
    betas_net = betas + torch.tensor(rng.normal(0.0, 0.5, betas.shape), dtype=torch.float32)
    return {
        "rot": rot.numpy(),
        "betas": betas.numpy(),
        "t": t.numpy(),
        "points": points.numpy(),
        "keypoints": keypoints,
        "conf": np.full((n, 17), 0.9, np.float32),
        "rot_net": rot_net.numpy(),
        "betas_net": betas_net.numpy(),
        "t_net": t_net.numpy(),
    }


def _net(scene):
    return scene["rot_net"], scene["betas_net"], scene["t_net"]


def _assert_network_body(result, i, scene):
    assert not result.fitted[i]
    assert np.array_equal(result.rotmats[i], scene["rot_net"][i].astype(np.float64))
    assert np.array_equal(result.betas[i], scene["betas_net"][i].astype(np.float64))
    assert np.array_equal(result.translation[i], scene["t_net"][i].astype(np.float64))


def test_keypoint_body_is_the_network_coco_regressor(model):
    """KeypointBody's 17 points are the network's COCO keypoints (coco_regressor on the BodyLayer mesh)."""
    from whmr_core.body import body_assets
    from whmr_core.model.body_layer import BodyLayer

    assets = body_assets(model)
    layer = BodyLayer(model, assets)
    gen = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(0.5 * torch.randn(3, 24, 3, generator=gen))
    betas = torch.randn(3, 10, generator=gen)
    with torch.no_grad():
        verts, _ = layer(rot, betas)
        want = assets.coco_regressor.float() @ verts
        got = KeypointBody(model)(rot, betas)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_keypoint_body_raises_the_hips_to_where_pose_models_put_them(model):
    """With ``hip_lift`` the two hip points are the hip joints moved by lift x (pelvis joint - hip joints'
    midpoint) of the posed mesh (joints regressed from its vertices); every other point is unchanged."""
    from whmr_core.body import body_assets
    from whmr_core.body.keypoints import COCO17_NAMES
    from whmr_core.model.body_layer import BodyLayer

    gen = torch.Generator().manual_seed(1)
    rot = axis_angle_to_matrix(0.4 * torch.randn(2, 24, 3, generator=gen))
    betas = torch.randn(2, 10, generator=gen)
    with torch.no_grad():
        plain = KeypointBody(model)(rot, betas)
        lifted = KeypointBody(model, hip_lift=1.5)(rot, betas)
        verts, _ = BodyLayer(model, body_assets(model))(rot, betas)
        joints = model.J_regressor.float() @ verts
    hips = [COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip")]
    lift = 1.5 * (joints[:, 0] - 0.5 * (joints[:, 1] + joints[:, 2]))  # SMPL: 0 pelvis, 1/2 hips
    torch.testing.assert_close(lifted[:, hips], plain[:, hips] + lift[:, None], atol=1e-5, rtol=0)
    others = [k for k in range(17) if k not in hips]
    torch.testing.assert_close(lifted[:, others], plain[:, others], atol=1e-6, rtol=0)
    assert float(lift.norm(dim=-1).min()) > 0.05  # a real move: centimetres, not float noise


def test_fit_reprojects_onto_the_keypoints(fitter, scene):
    r = fitter(*_net(scene), scene["keypoints"], scene["conf"], K)
    assert r.fitted.all() and r.fallback_reason == (None,) * 4
    assert r.init_source == ("network",) * 4 and not r.mirrored.any()
    before, after = r.reprojection_px_before, r.reprojection_px_after
    # The start misses by 24-31 px (mean), the fit lands within about two noise levels (2 px noise).
    assert (before > 20).all()
    assert (after < 8.0).all() and np.median(after) < 6.0
    # The recomputed error agrees with an independent projection of the fitted body.
    with torch.no_grad():
        pts = fitter.body(
            torch.tensor(r.rotmats, dtype=torch.float32), torch.tensor(r.betas, dtype=torch.float32)
        )
    cam = pts.double().numpy() + r.translation[:, None]
    uv = cam[..., :2] / cam[..., 2:] * 1000.0 + np.array([640.0, 360.0])
    np.testing.assert_allclose(np.linalg.norm(uv - scene["keypoints"], axis=-1).mean(1), after, rtol=1e-3)
    # Closer to the truth in 3D as well (hip-centred keypoints).
    start = fitter.body(torch.tensor(scene["rot_net"]), torch.tensor(scene["betas_net"])).detach().numpy()

    def rel(p):
        return p - p[:, 11:13].mean(1, keepdims=True)

    err_start = np.linalg.norm(rel(start) - rel(scene["points"]), axis=-1).mean(1)
    err_fit = np.linalg.norm(rel(pts.numpy()) - rel(scene["points"]), axis=-1).mean(1)
    assert err_fit.mean() < 0.8 * err_start.mean()
    # Depth stays the network's to within 3 % (w_depth): 2D keypoints only give it through the body's size.
    assert (np.abs(r.translation[:, 2] / scene["t_net"][:, 2] - 1) < 0.03).all()
    # Rotations stay rotations.
    rr = r.rotmats @ np.swapaxes(r.rotmats, -1, -2)
    np.testing.assert_allclose(rr, np.broadcast_to(np.eye(3), rr.shape), atol=1e-5)


def test_axis_angle_input_gives_the_same_fit(fitter, scene):
    aa = matrix_to_axis_angle(torch.tensor(scene["rot_net"][:1])).numpy()
    a = fitter(scene["rot_net"][:1], scene["betas_net"][:1], scene["t_net"][:1], scene["keypoints"][:1],
               scene["conf"][:1], K)  # fmt: skip
    b = fitter(aa, scene["betas_net"][:1], scene["t_net"][:1], scene["keypoints"][:1], scene["conf"][:1], K)
    np.testing.assert_allclose(a.reprojection_px_after, b.reprojection_px_after, rtol=1e-3)


def test_too_few_confident_keypoints_fall_back_to_the_network_body(fitter, scene):
    conf = scene["conf"].copy()
    conf[1, 5:] = 0.1  # below the 0.3 threshold: 5 confident left
    keypoints = scene["keypoints"].copy()
    keypoints[2] = np.nan  # nothing usable
    r = fitter(*_net(scene), keypoints, conf, K)
    assert r.fitted.tolist() == [True, False, False, True]
    assert r.fallback_reason[1].startswith("too few confident keypoints (5")
    assert r.fallback_reason[2].startswith("too few confident keypoints (0")
    _assert_network_body(r, 1, scene)
    _assert_network_body(r, 2, scene)
    assert np.isnan(r.reprojection_px_before[2]) and r.reprojection_px_after[1] == r.reprojection_px_before[1]
    person = r.person(1)
    assert not person.fitted and person.fallback_reason == r.fallback_reason[1]


@pytest.mark.parametrize(
    "camera, reason",
    [
        (np.array([[np.nan, 0, 640], [0, 1000, 360], [0, 0, 1.0]]), "camera K is not a camera"),
        (np.array([[0.0, 0, 640], [0, 1000, 360], [0, 0, 1.0]]), "camera K is not a camera"),
        (np.array([[1e7, 0, 640], [0, 1e7, 360], [0, 0, 1.0]]), "fit d"),  # diverges / does not reach
        (np.array([[1000.0, 0, 1e6], [0, 1000, 360], [0, 0, 1.0]]), "fit d"),
    ],
)
def test_absurd_camera_falls_back_to_the_network_body(fitter, scene, camera, reason):
    r = fitter(*_net(scene), scene["keypoints"], scene["conf"], camera)
    for i in range(4):
        assert r.fallback_reason[i].startswith(reason), r.fallback_reason[i]
        _assert_network_body(r, i, scene)
        assert np.isfinite(r.rotmats[i]).all()


def test_bad_shapes_raise_naming_the_input(fitter, scene):
    with pytest.raises(ValueError, match="keypoints: expected shape"):
        fitter(*_net(scene), scene["keypoints"][:, :12], scene["conf"], K)
    with pytest.raises(ValueError, match="betas: expected shape"):
        fitter(
            scene["rot_net"], scene["betas_net"][:, :5], scene["t_net"], scene["keypoints"], scene["conf"], K
        )
    with pytest.raises(ValueError, match="K: expected"):
        fitter(*_net(scene), scene["keypoints"], scene["conf"], K[:2])
    with pytest.raises(ValueError, match="warm_start: expected 4"):
        fitter(*_net(scene), scene["keypoints"], scene["conf"], K, warm_start=[None])


def test_joint_limit_energy_is_the_squared_excess():
    lo, hi = (x[1:] for x in joint_limits_rad())
    pose = torch.zeros(1, 23, 3)
    assert float(joint_limit_energy(pose, lo, hi)) == 0.0  # the rest pose is inside every range
    knee = 3  # joint 4 (left knee) in the 23 body joints; flexion x in [0, 150] degrees
    pose[0, knee, 0] = -0.2  # bent backwards by 0.2 rad
    pose[0, knee, 1] = float(hi[knee, 1]) + 0.1  # twisted 0.1 rad past its range
    torch.testing.assert_close(joint_limit_energy(pose, lo, hi), torch.tensor([0.2**2 + 0.1**2]))


def test_pose_prior_pulls_an_extreme_pose_back():
    prior = PosePrior()
    rng = np.random.default_rng(3)
    usual = torch.tensor(np.stack([sample_pose(rng, "standing")[1:] for _ in range(4)]), dtype=torch.float32)
    extreme = usual.clone()
    extreme[:, 3, 0] = -1.2  # left knee bent backwards
    extreme[:, 15, 2] = 1.5  # left shoulder pushed up past the head
    e_usual, e_extreme = prior(usual), prior(extreme)
    assert (e_usual >= 0).all() and (e_extreme > e_usual + 20).all()
    # Gradient steps on the prior alone bring the joints back towards the generator's poses.
    x = extreme.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        prior(x).sum().backward()
        opt.step()
    assert (prior(x.detach()) < 0.5 * e_extreme).all()
    assert (x.detach()[:, 3, 0] > -0.6).all() and (x.detach()[:, 15, 2] < 1.2).all()


def test_mirror_bodies_is_the_depth_ambiguity_twin(model, scene):
    rot = torch.tensor(scene["rot"])
    twin = mirror_bodies(rot)
    torch.testing.assert_close(twin @ twin.transpose(-1, -2), torch.eye(3).expand_as(twin), atol=1e-5, rtol=0)
    betas = torch.tensor(scene["betas"])
    body = KeypointBody(model)  # the body's own points (the fitter's raised hips add the pelvis's asymmetry)
    with torch.no_grad():
        a, b = body(rot, betas), body(twin, betas)
    a = a - a[:, 11:13].mean(1, keepdim=True)
    b = b - b[:, 11:13].mean(1, keepdim=True)
    flipped = a[:, list(COCO17_FLIP_PERM)]
    # Keypoint k of the twin sits where keypoint flip(k) was, its depth reflected (the body model's
    # template is mirror-symmetric to a millimetre).
    torch.testing.assert_close(b[..., :2], flipped[..., :2], atol=2e-3, rtol=0)
    torch.testing.assert_close(b[..., 2], -flipped[..., 2], atol=2e-3, rtol=0)


def test_mirrored_keypoints_are_detected_and_fitted(fitter, scene):
    """Keypoints with left and right swapped against the body: the fit starts from the body's twin."""
    kp = scene["keypoints"][:, list(COCO17_FLIP_PERM)]
    r = fitter(scene["rot"], scene["betas"], scene["t"], kp, scene["conf"], K)
    assert r.mirrored.all() and r.init_source == ("mirrored",) * 4
    assert (r.reprojection_px_before > 40).all() and (r.reprojection_px_after < 9).all()
    # The true assignment is not called mirrored.
    r = fitter(scene["rot"], scene["betas"], scene["t"], scene["keypoints"], scene["conf"], K)
    assert not r.mirrored.any() and (r.reprojection_px_after < 5).all()


def test_warm_start_is_used_when_it_fits_better(fitter, scene):
    first = fitter(*_net(scene), scene["keypoints"], scene["conf"], K)
    warm = [first.person(0), None, first.person(2), None]
    r = fitter(*_net(scene), scene["keypoints"], scene["conf"], K, warm_start=warm)
    assert r.init_source == ("warm_start", "network", "warm_start", "network")
    assert r.reprojection_px_after[0] <= first.reprojection_px_after[0] + 0.5
    # A warm start from somewhere else (a track that jumped) loses against the network body.
    far = dataclasses.replace(
        first.person(1), translation=first.person(1).translation + np.array([1.5, 0, 0])
    )
    r = fitter(*_net(scene), scene["keypoints"], scene["conf"], K, warm_start=[None, far, None, None])
    assert r.init_source[1] == "network"


def test_fit_config_rejects_nonsense():
    with pytest.raises(ValueError, match="iterations"):
        FitConfig(iterations=0)
    with pytest.raises(ValueError, match="w_shape"):
        FitConfig(w_shape=float("nan"))
    with pytest.raises(ValueError, match="keypoints_3d_align"):
        FitConfig(keypoints_3d_align="shoulders")


def test_fitted_outputs_repose_the_network_outputs(model, fitter, scene):
    from whmr_core.graph_io import PersonOutputs

    fitted_outputs = FittedOutputs(model)
    r = fitter(*_net(scene), scene["keypoints"], scene["conf"], K)
    # A network output for person 0 (only the fields the re-posing reads matter here).
    tilt = axis_angle_to_matrix(torch.tensor([0.1, 0.0, 0.05])).double().numpy()
    cam_root = scene["rot_net"][0, 0].astype(np.float64)
    net = {
        "rotmats": scene["rot_net"][0],
        "betas": scene["betas_net"][0],
        "translation": scene["t_net"][0],
        "cam_root": cam_root,
        "world_root": tilt @ cam_root,
        "cam_crop": [0.9, 0.0, 0.0],
        "tz": 4.0,
        "focal": 1.0,
    }
    zeros = {"vertices": (1229, 3), "joints": (24, 3), "world_vertices": (1229, 3), "world_joints": (24, 3)}
    o = PersonOutputs(
        **{k: np.asarray(v, np.float64) for k, v in net.items()}, **{k: np.zeros(v) for k, v in zeros.items()}
    )
    out = fitted_outputs(o, r.person(0))
    np.testing.assert_array_equal(out.rotmats, r.rotmats[0])
    np.testing.assert_array_equal(out.translation, r.translation[0])
    np.testing.assert_allclose(out.world_root @ out.cam_root.T, tilt, atol=1e-6)  # OrientCorrect kept
    # The mesh's COCO keypoints are the fitted ones the fitter reprojected.
    from whmr_core.body import body_assets

    coco = body_assets(model).coco_regressor.double().numpy() @ out.vertices
    joints = model.J_regressor.double().numpy() @ out.vertices  # the fitter raises the hips by its lift
    coco[11:13] += fitter.config.coco_hip_lift * (joints[0] - 0.5 * (joints[1] + joints[2]))
    coco = coco + out.translation
    uv = coco[:, :2] / coco[:, 2:] * 1000.0 + np.array([640.0, 360.0])
    err = np.linalg.norm(uv - scene["keypoints"][0], axis=-1).mean()
    assert abs(err - r.reprojection_px_after[0]) < 0.05
    np.testing.assert_allclose(out.world_joints[0], 0.0, atol=1e-9)  # pelvis-centred
    # A fallback leaves the outputs untouched.
    unfitted = dataclasses.replace(r.person(0), fitted=False, fallback_reason="test")
    assert fitted_outputs(o, unfitted) is o


def test_batched_levenberg_marquardt_rows_are_independent_and_converge():
    from whmr_core.fitting.levenberg_marquardt import levenberg_marquardt

    # Per row Rosenbrock's valley as least squares, r = (10 (y - x^2), 1 - x): minimum 0 at (1, 1).
    # Rows start at different places; Gauss-Newton alone overshoots from (-1.2, 1), damping must work.
    def linearise(x):
        r = torch.stack([10 * (x[:, 1] - x[:, 0] ** 2), 1 - x[:, 0]], 1)
        jac = torch.zeros(len(x), 2, 2, dtype=x.dtype)
        jac[:, 0, 0], jac[:, 0, 1], jac[:, 1, 0] = -20 * x[:, 0], 10.0, -1.0
        e = (r * r).sum(1)
        return e, (jac * r[..., None]).sum(1), jac.transpose(1, 2) @ jac

    x0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0]], dtype=torch.float64)
    x, e0, e, its = levenberg_marquardt(linearise, x0, 40)
    torch.testing.assert_close(x, torch.ones(3, 2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert its == 40 and (e < 1e-12).all() and (e0 > 0.9).all()
    alone, _, _, _ = levenberg_marquardt(linearise, x0[1:2], 40)
    torch.testing.assert_close(alone[0], x[1], atol=0, rtol=0)

    # A row whose energy is not finite stays where it started.
    def with_nan(x):
        e, g, h = linearise(x)
        return e + torch.tensor([0.0, float("nan"), 0.0], dtype=x.dtype), g, h

    x, _, e, _ = levenberg_marquardt(with_nan, x0, 10)
    assert torch.equal(x[1], x0[1]) and torch.isnan(e[1]) and (e[[0, 2]] < e0[[0, 2]]).all()


def _with_correctives(model):
    """A copy of ``model`` whose pose correctives are random (whmr's free bodies have none; SMPL has)."""
    import copy

    twin = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    twin.posedirs = 0.01 * torch.randn(twin.posedirs.shape, generator=gen)
    return twin


@pytest.mark.parametrize("correctives", [False, True], ids=["free body", "with pose correctives"])
def test_keypoint_body_derivatives_match_autograd(model, correctives):
    """The analytic derivatives of the points (per turn of each joint through a map M, per beta) are
    autograd's through the forward pass, with and without pose correctives."""
    from whmr_core.fitting.so3 import exp, matmul3

    body = KeypointBody(_with_correctives(model) if correctives else model).double()
    assert body.has_correctives == correctives
    gen = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(0.5 * torch.randn(2, 24, 3, generator=gen, dtype=torch.float64))
    betas = torch.randn(2, 10, generator=gen, dtype=torch.float64)
    maps = exp(torch.randn(2, 24, 3, generator=gen, dtype=torch.float64))  # any 3x3 per joint
    points, d_rot, d_betas = body.linearised(rot, betas, maps)
    torch.testing.assert_close(points, body(rot, betas))

    def turned(u):
        local = (maps * u[..., None, :]).sum(-1)  # M_j u_j
        return body(matmul3(rot, exp(local)), betas)

    want = torch.autograd.functional.jacobian(turned, torch.zeros(2, 24, 3, dtype=torch.float64))
    want = torch.stack([want[i, :, :, i] for i in range(2)])  # each person's own unknowns
    torch.testing.assert_close(d_rot, want, atol=1e-6, rtol=0)
    want_b = torch.autograd.functional.jacobian(lambda b: body(rot, b), betas)
    torch.testing.assert_close(
        d_betas, torch.stack([want_b[i, :, :, i] for i in range(2)]), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("mode_3d", ["centroid", "hips"])
def test_fit_objective_linearisation_is_the_energy_gradient(fitter, scene, mode_3d):
    """J^T r is half the gradient of the energy (E = sum r^2: the robust terms by IRLS weights, whose
    gradient is the robust term's), with 3D keypoints (both alignments, unequal weights), the upright term
    and joints over their limits; E matches too."""
    from whmr_core.fitting.objective import FitObjective, FitTargets

    m = 3
    gen = torch.Generator().manual_seed(0)
    d = lambda a: torch.as_tensor(np.asarray(a[:m]), dtype=torch.float64)  # noqa: E731
    prior = fitter.prior
    chol = prior.precision_chol[:m].double()
    lo, hi = (x[1:].double() for x in joint_limits_rad())
    theta = 0.3 * torch.randn(m, 23, 3, generator=gen, dtype=torch.float64)
    theta[0, 3, 0] = float(hi[3, 0]) + 0.4  # over a limit
    targets = FitTargets(
        keypoints=d(scene["keypoints"]),
        weights=d(scene["conf"]) * torch.tensor([0.0] + [1.0] * 16, dtype=torch.float64),
        size=torch.tensor([300.0, 250.0, 400.0], dtype=torch.float64),
        camera=torch.as_tensor(K, dtype=torch.float64).expand(m, 3, 3),
        theta_start=theta + 0.1,
        betas_start=d(scene["betas_net"]),
        depth_start=d(scene["t_net"])[:, 2] * 1.1,
        prior_mean=prior.means[:m].double(),
        prior_precision=chol @ chol.transpose(-1, -2),
        prior_const=prior.nll_const[:m].double(),
        limits_lo=lo,
        limits_hi=hi,
        sigma=0.1,
        min_depth=0.05,
        w_prior=1e-2,
        w_limits=0.1,
        w_pose=1e-3,
        w_shape=1e-4,
        w_depth=0.3,
        keypoints_3d=d(scene["points"]) + 0.05 * torch.randn(m, 17, 3, generator=gen, dtype=torch.float64),
        weights_3d=torch.rand(m, 17, generator=gen, dtype=torch.float64),
        mode_3d=mode_3d,
        up=torch.nn.functional.normalize(torch.randn(m, 3, generator=gen, dtype=torch.float64), dim=-1),
        sigma_up=0.3,
        w_up=0.5,
    )
    root = torch.as_tensor(np.asarray(scene["rot_net"][:m, 0]), dtype=torch.float64)
    objective = FitObjective(fitter.body64, targets, root)
    x = objective.pack(
        0.2 * torch.randn(m, 3, generator=gen, dtype=torch.float64),
        theta,
        d(scene["betas_net"]),
        d(scene["t_net"]),
    )
    e, g, h = objective.linearise(x)
    xr = x.clone().requires_grad_(True)
    energy = objective.energy(xr)
    (grad,) = torch.autograd.grad(energy.sum(), xr)
    torch.testing.assert_close(e, energy.detach())
    torch.testing.assert_close(2 * g, grad, atol=1e-7, rtol=1e-6)
    assert torch.allclose(h, h.transpose(1, 2)) and (torch.linalg.eigvalsh(h) > 0).all()


def test_3d_keypoints_fix_what_2d_cannot(fitter, scene):
    """Camera-axis 3D keypoints (any origin, 2 cm noise) bring the body's hip-centred shape closer to the
    truth than the 2D keypoints alone; the network body's depth-flipped twin is found and undone."""
    rng = np.random.default_rng(0)
    k3 = scene["points"] + np.array([0.3, -1.0, 2.0]) + rng.normal(0.0, 0.02, scene["points"].shape)

    def err_mm(r):
        with torch.no_grad():
            p = fitter.body(torch.tensor(r.rotmats).float(), torch.tensor(r.betas).float()).numpy()

        def rel(q):
            return q - q[:, 11:13].mean(1, keepdims=True)

        return 1000 * np.linalg.norm(rel(p) - rel(scene["points"]), axis=-1).mean(1)

    r2 = fitter(*_net(scene), scene["keypoints"], scene["conf"], K)
    r3 = fitter(*_net(scene), scene["keypoints"], scene["conf"], K, keypoints_3d=k3)
    assert r3.fitted.all() and err_mm(r3).mean() < 0.8 * err_mm(r2).mean()
    twin = mirror_bodies(torch.tensor(scene["rot"])).numpy()
    r = fitter(twin, scene["betas"], scene["t"], scene["keypoints"], scene["conf"], K, keypoints_3d=k3)
    assert r.mirrored.all() and (err_mm(r) < 30).all()


def test_3d_keypoints_of_another_skeleton_compared_about_their_centroid(model, fitter, scene):
    """3D keypoints whose hips are defined elsewhere than the body's hip joints (BlazePose's: ~8 cm higher,
    2.5 cm outside) and whose origin is arbitrary: compared about their weighted mean, the fitted body's
    points land nearer the truth than compared at the hips' midpoint, which moved every other target by
    the hips' difference; the centroid energy does not see a translation of the keypoints."""
    from whmr_core.fitting.objective import FitObjective

    rng = np.random.default_rng(3)
    k3 = scene["points"] - scene["t"][:, None] + rng.normal(0.0, 0.02, scene["points"].shape)
    for k, side in ((11, 1.0), (12, -1.0)):  # the body's +x is its left, +y its up
        k3[:, k] += np.einsum("nij,j->ni", scene["rot"][:, 0], [0.025 * side, 0.08, 0.0])

    def err_mm(r):
        with torch.no_grad():
            p = fitter.body(torch.tensor(r.rotmats).float(), torch.tensor(r.betas).float()).numpy()
        truth = scene["points"] - scene["t"][:, None]
        rel = [q - q[:, 11:13].mean(1, keepdims=True) for q in (p, truth)]
        return 1000 * np.linalg.norm(rel[0] - rel[1], axis=-1).mean(1)

    errors = {}
    for align in ("centroid", "hips"):
        f = fitter if align == "centroid" else BodyFitter(model, FitConfig(keypoints_3d_align="hips"))
        r = f(
            *_net(scene), scene["keypoints"], scene["conf"], K, keypoints_3d=k3 + np.array([0.5, -2.0, 3.0])
        )
        assert r.fitted.all()
        errors[align] = err_mm(r)
    assert errors["centroid"].mean() < 0.6 * errors["hips"].mean(), errors  # measured: 18 vs 46 mm
    d = torch.float64
    gen = torch.Generator().manual_seed(0)
    t = torch.tensor(scene["t"], dtype=d)
    inputs = {"keypoints": torch.zeros(4, 17, 2, dtype=d), "weights": torch.ones(4, 17, dtype=d),
              "size": torch.ones(4, dtype=d), "camera": torch.eye(3, dtype=d).expand(4, 3, 3),
              "betas": torch.tensor(scene["betas"], dtype=d), "translation": t}  # fmt: skip
    weights_3d = torch.rand(4, 17, generator=gen, dtype=d)
    with torch.no_grad():
        pts = fitter.body64(torch.tensor(scene["rot"], dtype=d), inputs["betas"])
        root = torch.tensor(scene["rot"][:, 0], dtype=d)
        e = []
        for shift in (0.0, torch.tensor([1.0, -2.0, 0.5], dtype=d)):
            tg = fitter._targets(
                torch.arange(4), inputs, torch.zeros(4, 23, 3, dtype=d), torch.zeros(4, dtype=torch.long),
                (torch.tensor(k3, dtype=d) + shift, weights_3d),
            )  # fmt: skip
            e.append(FitObjective(fitter.body64, tg, root).keypoint_energy(pts, t))
    torch.testing.assert_close(e[0], e[1])


def _torso_tilt_deg(fitter, result, up):
    with torch.no_grad():
        p = fitter.body(torch.tensor(result.rotmats).float(), torch.tensor(result.betas).float()).numpy()
    torso = p[:, 5:7].mean(1) - p[:, 11:13].mean(1)  # hips' midpoint -> shoulders' midpoint
    return np.degrees(np.arccos(torso @ up / np.linalg.norm(torso, axis=-1)))


def test_known_up_prefers_upright_torsos_without_overruling_the_keypoints(model, scene):
    """With the camera's up given, the fitted torsos lean less than without it, stay within a few degrees of
    the truth where the keypoints show the lean, and a person lying on the floor stays lying (the term is
    robust: bounded, so keypoints that say "lying" win). The up is checked like every input."""
    from whmr_core.fitting.so3 import exp as _exp
    from whmr_core.fitting.so3 import matmul3

    fitter = BodyFitter(model, FitConfig(w_upright=0.01))
    up = np.array([0.0, -1.0, 0.0])  # the scene's level camera: y down
    lean = axis_angle_to_matrix(torch.tensor([[-0.35, 0.0, 0.0]]))[0].numpy()  # spine1 20 deg forward
    start = scene["rot"].copy()
    start[:, 3] = lean @ start[:, 3]
    truth = _torso_tilt_deg(fitter, SimpleNamespace(rotmats=scene["rot"], betas=scene["betas"]), up)
    free = fitter(start, scene["betas"], scene["t"], scene["keypoints"], scene["conf"], K)
    held = fitter(start, scene["betas"], scene["t"], scene["keypoints"], scene["conf"], K, up=up)
    assert free.fitted.all() and held.fitted.all()
    tilt_free, tilt_held = _torso_tilt_deg(fitter, free, up), _torso_tilt_deg(fitter, held, up)
    assert (tilt_held < tilt_free).all() and (np.abs(tilt_held - truth) < 3).all(), (
        truth,
        tilt_free,
        tilt_held,
    )

    rot, betas, t = (torch.tensor(scene[k]) for k in ("rot", "betas", "t"))
    lying = rot.clone()
    lying[:, 0] = matmul3(_exp(torch.tensor([0.0, 0.0, float(np.radians(90))])), rot[:, 0])
    with torch.no_grad():
        x = fitter.body(lying, betas) + t[:, None]
    kp = (x[..., :2] / x[..., 2:] * 1000.0 + torch.tensor([640.0, 360.0])).numpy()
    r = fitter(lying.numpy(), scene["betas"], scene["t"], kp, scene["conf"], K, up=up)
    assert (
        r.fitted.all() and (r.reprojection_px_after < 3).all() and (_torso_tilt_deg(fitter, r, up) > 80).all()
    )

    for bad in (np.zeros(3), np.array([np.nan, 1.0, 0.0]), np.ones((2, 3))):
        with pytest.raises(ValueError, match="up"):
            fitter(start, scene["betas"], scene["t"], scene["keypoints"], scene["conf"], K, up=bad)


def test_garbage_never_gives_a_non_finite_body(fitter, scene):
    """Random keypoints anywhere (confident), a near-rotation start, an empty frame: finite bodies only."""
    rng = np.random.default_rng(7)
    rot = scene["rot_net"] + rng.normal(0.0, 0.01, scene["rot_net"].shape).astype(
        np.float32
    )  # not quite SO(3)
    r = fitter(rot, scene["betas_net"], scene["t_net"], scene["keypoints"], scene["conf"], K)
    assert r.fitted.all()
    rr = r.rotmats @ np.swapaxes(r.rotmats, -1, -2)  # the start was not quite rotations, the fit is
    np.testing.assert_allclose(rr, np.broadcast_to(np.eye(3), rr.shape), atol=1e-5)
    for _ in range(3):
        kp = rng.uniform([-500, -500], [1800, 1200], (4, 17, 2))
        r = fitter(rot, scene["betas_net"], scene["t_net"], kp, scene["conf"], K)
        for a in (r.rotmats, r.betas, r.translation):
            assert np.isfinite(a).all()
        assert all(
            (reason is None) == fitted for reason, fitted in zip(r.fallback_reason, r.fitted, strict=True)
        )
    empty = fitter(np.zeros((0, 24, 3, 3)), np.zeros((0, 10)), np.zeros((0, 3)), np.zeros((0, 17, 2)),
                   np.zeros((0, 17)), K)  # fmt: skip
    assert len(empty) == 0 and empty.rotmats.shape == (0, 24, 3, 3) and empty.fallback_reason == ()


def test_fit_works_under_inference_mode(fitter, scene):
    """Hosts run networks under torch.inference_mode; the fit (autograd inside) must still run there, on
    numpy or on tensors made in inference mode, with the same result."""
    args = (*_net(scene), scene["keypoints"], scene["conf"], K)
    want = fitter(*args)
    with torch.inference_mode():
        got = fitter(*args)
        got_t = fitter(*(torch.as_tensor(np.asarray(a)) for a in args))
    for r in (got, got_t):
        assert r.fitted.all()
        np.testing.assert_allclose(r.rotmats, want.rotmats, atol=1e-5)
        np.testing.assert_allclose(r.translation, want.translation, atol=1e-5)


def test_turn_check_finds_a_person_upside_down_or_lying(fitter, scene):
    """Keypoints of the true bodies turned 90 / 180 degrees in the image plane, the network's upright: the
    fit starts from the turned body and lands on the keypoints."""
    from whmr_core.fitting.so3 import exp as _exp
    from whmr_core.fitting.so3 import matmul3

    rot, betas, t = (torch.tensor(scene[k]) for k in ("rot", "betas", "t"))
    for turn in (90, 180):
        turned = rot.clone()
        turned[:, 0] = matmul3(_exp(torch.tensor([0.0, 0.0, float(np.radians(turn))])), rot[:, 0])
        with torch.no_grad():
            x = fitter.body(turned, betas) + t[:, None]
        kp = (x[..., :2] / x[..., 2:] * 1000.0 + torch.tensor([640.0, 360.0])).numpy()
        r = fitter(*_net(scene), kp, scene["conf"], K)
        assert r.init_source == (f"turned {turn}",) * 4
        assert (r.reprojection_px_before > 100).all() and (r.reprojection_px_after < 8).all()
