"""Metrics against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from whmr_core import metrics as M
from whmr_core.rotations import axis_angle_to_matrix


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


SKEL = t([[[0.0, 0.0, 0.0], [0.0, -0.5, 0.0], [0.2, -0.4, 0.1], [-0.2, -0.4, -0.1], [0.1, 0.5, 0.0]]])


def test_mpjpe_by_hand():
    moved = SKEL + t([1.0, 2.0, 3.0])
    assert float(M.mpjpe(moved, SKEL)) == pytest.approx(0.0, abs=1e-12)
    off = SKEL.clone()
    off[0, 4, 0] += 0.05  # one of five joints off by 5 cm -> 1 cm mean
    assert float(M.mpjpe(off, SKEL)) == pytest.approx(0.01)


def test_pa_mpjpe_removes_similarity_transform():
    r = axis_angle_to_matrix(t([[0.3, -1.2, 0.5]]))
    transformed = 1.7 * SKEL @ r.transpose(1, 2) + t([0.3, -0.1, 4.0])
    assert float(M.pa_mpjpe(transformed, SKEL)) == pytest.approx(0.0, abs=1e-9)
    assert float(M.mpjpe(transformed, SKEL)) > 0.05


def test_procrustes_does_not_reflect():
    mirrored = SKEL * t([-1.0, 1.0, 1.0])
    aligned = M.procrustes_align(mirrored, SKEL)
    # The best proper rotation cannot undo a mirror: the error stays > 0.
    assert float(M.pa_mpjpe(mirrored, SKEL)) > 1e-3
    centred = aligned - aligned.mean(1, keepdim=True)
    assert torch.isfinite(centred).all()


def test_rotation_angle_and_focal_error():
    a = axis_angle_to_matrix(t([[0.0, 0.0, 0.0]]))
    b = axis_angle_to_matrix(t([[0.0, math.radians(30), 0.0]]))
    assert float(M.rotation_angle_deg(a, b)) == pytest.approx(30.0)
    assert float(M.relative_focal_error(t([1100.0]), t([1000.0]))) == pytest.approx(0.1)


def test_world_metrics_count_orientation():
    tilt = axis_angle_to_matrix(t([[math.radians(10), 0.0, 0.0]]))
    tilted = SKEL @ tilt.transpose(1, 2)
    assert float(M.w_mpjpe(tilted, SKEL)) > 0.01  # world orientation error is measured
    assert float(M.pa_mpjpe(tilted, SKEL)) == pytest.approx(0.0, abs=1e-9)
    root = SKEL[:, 0]
    assert float(M.w_pve(SKEL + 1.0, SKEL, root + 1.0, root)) == pytest.approx(0.0, abs=1e-12)


def test_pve_compares_meshes_as_they_are():
    """The paper's PVE: no alignment, so a translated mesh counts its offset; with roots it does not."""
    moved = SKEL + t([0.03, 0.04, 0.0])
    assert float(M.pve(moved, SKEL)) == pytest.approx(0.05)
    assert float(M.pve(moved, SKEL, moved[:, 0], SKEL[:, 0])) == pytest.approx(0.0, abs=1e-12)


def test_h36m_protocols_pick_their_joints():
    from whmr_core.body.regressors import H36M_NAMES
    from whmr_core.evaluation import PROTOCOLS, protocol_joints

    h36m = torch.arange(17, dtype=torch.float64)[None, :, None].expand(1, 17, 3) + 1.0
    j14 = protocol_joints(h36m, PROTOCOLS["3dpw"])
    assert j14.shape == (1, 14, 3) and PROTOCOLS["h36m"].joints == "h36m14"
    # Centred at the pelvis (index 0, value 1, so joint k reads k), and the 14 joints are all but
    # pelvis, spine and neck/nose.
    picked = {H36M_NAMES[int(i)] for i in j14[0, :, 0].tolist()}
    assert picked == set(H36M_NAMES) - {"pelvis", "spine", "neck_nose"}
    j17 = protocol_joints(h36m, PROTOCOLS["mpi-inf-3dhp"])
    assert j17.shape == (1, 17, 3) and {int(i) for i in j17[0, :, 0].tolist()} == set(range(17))
    assert PROTOCOLS["agora"].joints == "body24" and not PROTOCOLS["agora"].uses_h36m


def test_joint_regressor_files_are_checked(tmp_path):
    import numpy as np

    from whmr_core.evaluation import load_joint_regressor

    good = tmp_path / "good.npy"
    np.save(good, np.full((17, 10), 0.1))
    assert load_joint_regressor(good, 10).shape == (17, 10)
    with pytest.raises(ValueError, match=r"expected shape \(17, 12\) for this body, got \(17, 10\)"):
        load_joint_regressor(good, 12)
    crafted = tmp_path / "crafted.npy"
    np.save(crafted, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="cannot read"):
        load_joint_regressor(crafted, 10)
    bad = tmp_path / "nan.npy"
    np.save(bad, np.full((17, 10), np.nan))
    with pytest.raises(ValueError, match="non-finite"):
        load_joint_regressor(bad, 10)
