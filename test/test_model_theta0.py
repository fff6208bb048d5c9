"""Theta_0 from SPIN's mean-parameter file and the P variant's surface markers from a vertex-id file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whmr_core import geometry
from whmr_core.model import build_model
from whmr_core.model.config import config_from_dict
from whmr_core.model.theta0 import load_marker_ids, load_mean_params
from whmr_core.rotations import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix


def _inputs(n, crop_hw):
    g = torch.Generator().manual_seed(0)
    crops = torch.randn(n, 3, *crop_hw, generator=g)
    gi = geometry.glob_info(torch.tensor([[640.0, 360.0]]).repeat(n, 1), torch.full((n,), 250.0),
                            torch.tensor([[1280.0, 720.0]]).repeat(n, 1))  # fmt: skip
    return crops, gi


@pytest.fixture
def spin_file(tmp_path):
    """A file in SPIN's layout: a bent pose (6D, first two matrix columns row-major), betas, camera."""
    aa = torch.zeros(24, 3)
    aa[0] = torch.tensor([3.0, 0.0, 0.1])
    aa[18] = torch.tensor([0.0, 0.0, -0.8])  # left elbow
    pose6d = matrix_to_rot6d(axis_angle_to_matrix(aa))
    path = tmp_path / "smpl_mean_params.npz"
    betas = np.linspace(-0.5, 0.5, 10)  # float64, as SPIN's
    np.savez(
        path, pose=pose6d.reshape(-1).numpy(), shape=betas, cam=np.array([0.85, 0.02, -0.03], np.float32)
    )
    return path, pose6d, betas


@pytest.mark.parametrize("rotation", ["rot6d", "matrix"])
def test_mean_parameter_file_is_theta0(net_body, spin_file, rotation):
    path, pose6d, betas = spin_file
    cfg = config_from_dict(
        {"base": "small-cpu", "mean_params": str(path), "regressor": {"init_gain": 0.0, "rotation": rotation}}
    )
    torch.manual_seed(0)
    model = build_model(cfg, net_body).eval()
    with torch.no_grad():
        out = model(*_inputs(2, model.crop_hw))
    it = out.iterations[0]  # zero output layers: iteration 0 returns Theta_0 (+ zero-initialised biases)
    torch.testing.assert_close(it.rotmats, rot6d_to_matrix(pose6d).expand(2, -1, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(it.betas, torch.tensor(betas, dtype=torch.float32).expand(2, -1))
    torch.testing.assert_close(it.cam_crop, torch.tensor([[0.85, 0.02, -0.03]]).expand(2, -1))
    # Theta_0 is kept in the weights: a network built without the file and given them is the same.
    fresh = build_model(
        config_from_dict({"base": "small-cpu", "regressor": {"rotation": rotation}}), net_body
    )
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.mean_pose6d, pose6d)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"pose": np.zeros(144), "shape": np.zeros(10)}, r"missing \['cam'\]"),
        ({"pose": np.zeros(138), "shape": np.zeros(10), "cam": np.ones(3)}, r"pose has shape \(138,\)"),
        ({"pose": np.zeros(144), "shape": np.zeros(16), "cam": np.ones(3)}, r"10 betas"),
        ({"pose": np.zeros(144), "shape": np.zeros(10), "cam": np.ones(3)}, "degenerate 6D"),
        ({"pose": np.tile([1.0, 0, 0, 1, 0, 0], 24), "shape": np.zeros(10), "cam": -np.ones(3)}, "scale"),
    ],
)
def test_bad_mean_parameter_files_are_refused(tmp_path, arrays, needle):
    path = tmp_path / "mean.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=needle):
        load_mean_params(path, 24, 10)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        load_mean_params(tmp_path / "junk.npz", 24, 10)


def test_marker_file_sets_the_sampled_points(net_body, tmp_path):
    _, assets = net_body
    nv = assets.template.shape[0]
    ids = np.array([5, 17, 40, 41, 99, 150, 260, nv - 1])
    np.save(tmp_path / "markers.npy", ids)
    (tmp_path / "markers.txt").write_text(", ".join(map(str, ids)))
    for f in ("markers.npy", "markers.txt"):
        torch.testing.assert_close(load_marker_ids(tmp_path / f, nv), torch.from_numpy(ids))
    cfg = config_from_dict(
        {"base": "small-cpu", "variant": "param", "markers": str(tmp_path / "markers.npy")}
    )
    torch.manual_seed(0)
    model = build_model(cfg, net_body).eval()
    with torch.no_grad():
        out = model(*_inputs(1, model.crop_hw))
    assert torch.equal(model.marker_ids, torch.from_numpy(ids))
    torch.testing.assert_close(out.iterations[0].sparse_vertices, out.iterations[0].vertices[:, ids])
    assert out.iterations[-1].sample_points.shape == (1, len(ids), 2)
    # The ids travel in the weights (a checkpoint rebuilds without the file); the fallback does not store any.
    assert "marker_ids" in model.state_dict()
    fallback = build_model(config_from_dict({"base": "small-cpu", "variant": "param"}), net_body)
    assert "marker_ids" not in fallback.state_dict()
    assert torch.equal(fallback.marker_ids, assets.marker_ids)  # farthest-point samples of the body


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (np.array([1, 2, 2]), "repeat"),
        (np.array([1, 2, 10_000]), "outside the body's"),
        (np.array([1.5, 2.0]), "integers"),
        (np.zeros((2, 2), dtype=int), "flat list"),
    ],
)
def test_bad_marker_files_are_refused(tmp_path, content, needle):
    np.save(tmp_path / "m.npy", content)
    with pytest.raises(ValueError, match=needle):
        load_marker_ids(tmp_path / "m.npy", 384)


def test_markers_survive_a_checkpoint_without_the_file(tmp_path, monkeypatch):
    from whmr_core.body import body_assets, load_body_model
    from whmr_core.checkpoint import save_checkpoint
    from whmr_core.model.config import config_to_dict
    from whmr_core.model_io import build_from_checkpoint

    body = load_body_model(variant="lowres")
    ids = np.array([3, 30, 300, 1000])
    np.save(tmp_path / "markers.npy", ids)
    cfg = config_from_dict(
        {"base": "small-cpu", "variant": "param", "markers": str(tmp_path / "markers.npy")}
    )
    model = build_model(cfg, (body, body_assets(body)))
    info = {"name": cfg.name, "model": config_to_dict(cfg), "body": "lowres"}
    save_checkpoint(tmp_path / "ck", model.state_dict(), config=info)
    (tmp_path / "markers.npy").unlink()
    again = build_from_checkpoint(tmp_path / "ck")
    assert torch.equal(again.marker_ids, torch.from_numpy(ids))
