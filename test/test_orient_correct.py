"""OrientCorrect's two bases: the paper's residual on R_b^c ("camera") and on R_c^T R_b^c ("calibrated")."""

from __future__ import annotations

import pytest
import torch

from whmr_core import geometry
from whmr_core.model import build_model
from whmr_core.model.config import ConfigError, config_from_dict, config_from_stored
from whmr_core.model.orient_correct import OrientCorrect
from whmr_core.model_io import checkpoint_info, shipped_checkpoint
from whmr_core.rotations import axis_angle_to_matrix

# Two tilted cameras (gravity in the camera frame) and two camera-frame roots.
GRAVITY = torch.tensor([[0.0, 1.0, 0.5], [0.3, 1.0, -0.2]])
CAM_ROOT = axis_angle_to_matrix(torch.tensor([[0.2, 2.5, -0.1], [-0.4, 0.3, 0.6]]))


def _module(base: str, zero: bool, rotation: str = "rot6d") -> OrientCorrect:
    torch.manual_seed(0)
    m = OrientCorrect(feat_dim=8, hidden=16, rotation=rotation, base=base).eval()
    if zero:
        with torch.no_grad():
            m.fc[-1].weight.zero_()
            m.fc[-1].bias.zero_()
    return m


def _run(m: OrientCorrect) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    feat, gi = torch.randn(2, 8, generator=g), torch.randn(2, 5, generator=g)
    return m(feat, gi, CAM_ROOT, geometry.camera_rotation_from_gravity(GRAVITY))


@pytest.mark.parametrize("rotation", ["rot6d", "matrix"])
def test_zero_residual_gives_each_base_exactly(rotation):
    r_c = geometry.camera_rotation_from_gravity(GRAVITY)
    calib = r_c.transpose(1, 2) @ CAM_ROOT
    torch.testing.assert_close(_run(_module("calibrated", True, rotation)), calib, atol=1e-6, rtol=0)
    torch.testing.assert_close(_run(_module("camera", True, rotation)), CAM_ROOT, atol=1e-6, rtol=0)
    # The two differ by the camera tilt (here tens of degrees), so the test tells them apart.
    assert float((calib - CAM_ROOT).abs().max()) > 0.2


@pytest.mark.parametrize("base", ["camera", "calibrated"])
def test_residual_moves_the_root_and_trains(base):
    m = _module(base, zero=False)
    with torch.no_grad():
        m.fc[-1].bias.copy_(torch.tensor([0.0, 0.3, 0.2, 0.0, -0.1, 0.1]))
    zero = _run(_module(base, zero=True))
    r = _run(m)
    assert float((r - zero).abs().max()) > 0.05
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)
    r.square().sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.fc.parameters())


def test_network_calibrated_with_zero_residual_is_calibration_only(net_body):
    cfg = config_from_dict({"base": "small-cpu", "orient": {"base": "calibrated"}})
    torch.manual_seed(0)
    model = build_model(cfg, net_body).eval()
    last = model.orient_correct.fc[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        crops = torch.randn(2, 3, *model.crop_hw, generator=torch.Generator().manual_seed(0))
        gi = geometry.glob_info(
            torch.tensor([[600.0, 400.0]] * 2),
            torch.tensor([220.0, 260.0]),
            torch.tensor([[1280.0, 720.0]] * 2),
        )
        r_c = geometry.camera_rotation_from_gravity(GRAVITY)
        out = model(crops, gi, r_c)
    calib = r_c.transpose(1, 2)
    torch.testing.assert_close(out.world_root, calib @ out.cam_root, atol=1e-6, rtol=0)
    joints = (out.joints - out.joints[:, :1]) @ calib.transpose(1, 2)  # the evaluation's baseline
    torch.testing.assert_close(out.world_joints, joints, atol=1e-5, rtol=0)


def test_base_option_and_shipped_checkpoint_meaning():
    with pytest.raises(ConfigError, match=r"orient.base: expected one of \['camera', 'calibrated'\]"):
        config_from_dict({"base": "small-cpu", "orient": {"base": "world"}})
    with pytest.raises(ValueError, match="OrientCorrect base: one of camera, calibrated, got 'gravity'"):
        OrientCorrect(8, 16, base="gravity")
    assert config_from_dict({"base": "small-cpu"}).orient.base == "camera"
    shipped = shipped_checkpoint()
    if shipped is None:
        pytest.skip("no shipped checkpoint in this checkout")
    # The shipped checkpoint predates the option: it was trained with the paper's base and reads as such.
    assert config_from_stored(checkpoint_info(shipped)["model"]).orient.base == "camera"
